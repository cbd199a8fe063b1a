// Builds the libtorch addon with node-gyp: configures when libtorch changed (or on first build),
// otherwise lets make rebuild only what changed. First checks that the addon's TypeScript
// declaration matches its C++ registrations (scripts/check-native-api.mjs). Runs as the
// package's install script.
// build/libtorch.json records what the build was configured for (libtorch, Node, Gloo's headers)
// and the addon it made: its sha256, what its buildInfo() reports (less what depends on the
// machine it runs on) and libtorch's default thread count here, so that `svdlora info` need not
// load libtorch (src/torch/build-record.ts).
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { checkRepository } from "./check-native-api.mjs";
import { HOW_TO_INSTALL, findLibtorch } from "./libtorch.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");

function nodeGyp() {
  // npm tells scripts where its node-gyp is; outside npm, use the one bundled with npm.
  const candidates = [
    process.env.npm_config_node_gyp,
    join(dirname(process.execPath), "../lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js"),
  ];
  const found = candidates.find((p) => p && existsSync(p));
  if (!found) throw new Error("node-gyp not found: install it with `npm install -g node-gyp`");
  return found;
}

export function buildNative({ quiet = false } = {}) {
  const api = checkRepository(root);
  if (api?.problems.length) {
    for (const p of api.problems) console.error(`svdlora: ${p}`);
    console.error("svdlora: the native build stops here: make src/torch/native-api.ts and native/*.cc agree");
    return false;
  }
  const torch = findLibtorch();
  if (!torch) {
    console.error(`svdlora: ${HOW_TO_INSTALL}`);
    return false;
  }
  const stamp = join(root, "build/libtorch.json");
  // Gloo's headers decide whether the CPU data-parallel backend is compiled in (scripts/c10d.mjs).
  const configuration = { torch, node: process.version, glooHeaders: existsSync("/usr/include/gloo/config.h") };
  const { addon: recorded, ...configuredFor } = readJson(stamp) ?? {};
  const configured = existsSync(join(root, "build/Makefile")) && JSON.stringify(configuredFor) === JSON.stringify(configuration);
  const j = String(Math.max(1, Math.min(4, jobs())));
  const args = configured ? ["build", "-j", j] : ["rebuild", "-j", j];
  if (!quiet || !configured)
    console.error(
      `svdlora: building the native addon against libtorch ${torch.version} (${torch.source}${torch.cuda ? ", CUDA" : ", CPU"})…`,
    );
  const r = spawnSync(process.execPath, [nodeGyp(), ...args, ...nodeHeaders(), ...(configured ? ["--silent"] : [])], {
    cwd: root,
    stdio: ["ignore", quiet ? "ignore" : "inherit", "inherit"],
  });
  if (r.status !== 0) {
    console.error("svdlora: native build failed (see the compiler output above)");
    return false;
  }
  mkdirSync(join(root, "build"), { recursive: true });
  const addonFile = join(root, "build/Release/svdlora.node");
  const sha256 = createHash("sha256").update(readFileSync(addonFile)).digest("hex");
  const current =
    configured && recorded?.sha256 === sha256 && JSON.stringify(recorded.defaultThreads?.machine) === JSON.stringify(machine());
  const addon = current ? recorded : describeAddon(addonFile, sha256);
  writeFileSync(stamp, JSON.stringify({ ...configuration, ...(addon && { addon }) }));
  return true;
}

/**
 * What a freshly built addon reports of itself, less what depends on the machine it runs on, and
 * libtorch's default intra-op thread count (OMP_NUM_THREADS and MKL_NUM_THREADS unset) with what
 * that depends on: its rule changed between versions (half the logical CPUs on x86-64, then all
 * of them, then the physical cores, then those within the affinity mask), so it is seen here, not
 * computed. In a process of its own (loading libtorch takes about half a second); null if the
 * addon does not load.
 */
function describeAddon(file, sha256) {
  const script = `const os = require("node:os");
const addon = require(${JSON.stringify(file)});
const buildInfo = addon.buildInfo();
delete buildInfo.cudaAvailable;
delete buildInfo.parallelInfo;
process.stdout.write(JSON.stringify({ buildInfo, defaultThreads: { count: addon.getNumThreads(), machine: (${machine})() } }));`;
  const env = { ...process.env };
  delete env.OMP_NUM_THREADS;
  delete env.MKL_NUM_THREADS;
  const r = spawnSync(process.execPath, ["-e", script], { encoding: "utf8", env });
  if (r.status !== 0) {
    console.error(`svdlora: warning: the new addon does not load: ${r.stderr.trim().split("\n")[0]}`);
    return null;
  }
  return { sha256, ...JSON.parse(r.stdout) };
}

/** What libtorch's default thread count depends on: the CPUs, those this process may run on, their
 * model. As machine() in src/torch/build-record.ts, which compares it with the record. */
function machine() {
  return { cpus: os.cpus().length, available: os.availableParallelism(), model: os.cpus()[0]?.model ?? "" };
}

function readJson(file) {
  try {
    return JSON.parse(readFileSync(file, "utf8"));
  } catch {
    return null;
  }
}

function jobs() {
  return Number(process.env.JOBS) || (globalThis.navigator?.hardwareConcurrency ?? 2);
}

// Build against the headers of the running Node when it ships them: no download needed.
function nodeHeaders() {
  if (process.env.npm_config_nodedir) return [`--nodedir=${process.env.npm_config_nodedir}`];
  const prefix = join(dirname(process.execPath), "..");
  return existsSync(join(prefix, "include/node/node_api.h")) ? [`--nodedir=${prefix}`] : [];
}

if (import.meta.url === `file://${process.argv[1]}`) process.exit(buildNative() ? 0 : 1);
