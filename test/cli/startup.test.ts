// Commands that need no tensors start light: `--help` of every command and flag errors load no
// native addon (libtorch's, resvg's), none of the large packages (vega, the tokenizers, yaml) and
// none of the modules that compute (torch, model, report, lowrank, stats, the pipeline); `info`
// loads libtorch only where its libtorch has CUDA (for the devices) or the build's record does not
// describe the addon. Each command line runs in its own process with hooks that record every
// module it loads: ESM loads (a module.register hook), CommonJS loads (require.cache at exit) and
// addons (process.dlopen). The time itself is measured, not tested here (bench/README.md).
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { buildProgram } from "../../src/cli/main.js";
import { buildRecord } from "../../src/torch/build-record.js";
import { addonPath } from "../../src/torch/native.js";
import { tempDir } from "../helpers.js";

const bin = new URL("../../../bin/svdlora.js", import.meta.url).pathname;
const dir = tempDir("startup");
const hooks = path.join(dir, "hooks.mjs");
const preload = path.join(dir, "record-loads.mjs");
fs.writeFileSync(
  hooks,
  `import fs from "node:fs";
export async function load(url, context, next) {
  fs.appendFileSync(process.env.SVDLORA_LOAD_LOG, url + "\\n");
  return next(url, context);
}
`,
);
fs.writeFileSync(
  preload,
  `import fs from "node:fs";
import { createRequire, register } from "node:module";
const log = (line) => fs.appendFileSync(process.env.SVDLORA_LOAD_LOG, line + "\\n");
register(${JSON.stringify(new URL(`file://${hooks}`).href)});
const dlopen = process.dlopen;
process.dlopen = function (module, file, ...rest) {
  log("dlopen " + file);
  return dlopen.call(this, module, file, ...rest);
};
const cache = createRequire(import.meta.url).cache;
process.on("exit", () => log(Object.keys(cache).map((f) => "require " + f).join("\\n")));
`,
);

/** Runs one command line with the hooks; returns its exit code, output and every module it loaded. */
function loads(args: string[], env: NodeJS.ProcessEnv = {}): { code: number | null; stdout: string; stderr: string; loaded: string[] } {
  const logFile = path.join(dir, `${[...args, ...Object.values(env)].join("_").replace(/[^\w-]/g, "")}.log`);
  const r = spawnSync(process.execPath, ["--import", preload, bin, ...args], {
    encoding: "utf8",
    env: { ...process.env, ...env, SVDLORA_LOAD_LOG: logFile },
  });
  const loaded = fs.existsSync(logFile) ? fs.readFileSync(logFile, "utf8").split("\n").filter(Boolean) : [];
  return { code: r.status, stdout: r.stdout, stderr: r.stderr, loaded };
}

const HEAVY = [
  /^dlopen /,
  /node_modules\/(vega[\w-]*|@resvg|@huggingface|yaml|cli-progress)\//,
  /dist\/src\/(torch\/(?!native\.js)|model\/|report\/|lowrank\/(?!inits\/methods\.js)|stats\/)/,
  /dist\/src\/pipeline\/(?!settings\.js)/,
];

function assertLight(args: string[], expectCode: number, output: RegExp): void {
  const r = loads(args);
  assert.equal(r.code, expectCode, `${args.join(" ")}: ${r.stderr}`);
  assert.match(r.stdout + r.stderr, output, args.join(" "));
  // The hooks saw the command's own modules (so an empty list cannot pass for a light start).
  assert.ok(r.loaded.some((l) => l.endsWith("dist/src/cli/main.js")) && r.loaded.some((l) => l.includes("commander")), r.loaded.join("\n"));
  const heavy = r.loaded.filter((l) => HEAVY.some((p) => p.test(l)));
  assert.deepEqual(heavy, [], `svdlora ${args.join(" ")} loaded what it does not need`);
}

test("--help of svdlora and of every command loads nothing heavy", () => {
  const commands = buildProgram({ io: { stdout: { write: () => true }, stderr: { write: () => true }, interactive: false } }).commands.map(
    (c) => c.name(),
  );
  assert.ok(commands.includes("bench") && commands.includes("train") && commands.length >= 11, `${commands}`);
  assertLight(["--help"], 0, /Usage: svdlora/);
  for (const command of commands) assertLight([command, "--help"], 0, new RegExp(`Usage: svdlora ${command}`));
});

test("flag errors load nothing heavy", () => {
  assertLight(["train", "--lora-rank", "x"], 1, /--lora-rank <n>' argument 'x' is invalid/);
  assertLight(["bench", "--steps", "0"], 1, /--steps <n>' argument '0' is invalid/);
  assertLight(["run", "--steps", "9"], 1, /--steps 9: use all, or step numbers 1-4/);
  assertLight(["trian"], 1, /unknown command 'trian'/);
});

const ranInfo = (r: { loaded: string[] }) => r.loaded.some((l) => l.endsWith("dist/src/torch/system-info.js"));
const addons = (r: { loaded: string[] }) => r.loaded.filter((l) => l.startsWith("dlopen "));

test("info on a libtorch without CUDA loads no addon: the build's record answers", (t) => {
  const record = buildRecord();
  assert.ok(record, "build/libtorch.json does not describe the addon: run `node scripts/build-native.mjs`");
  if (record.torch.cuda) return t.skip("this libtorch has CUDA: info loads the addon for the devices");
  for (const args of [["info", "--json"], ["info"]]) {
    const r = loads(args);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(ranInfo(r), `the hooks saw info's own module:\n${r.loaded.join("\n")}`);
    assert.deepEqual(addons(r), [], `svdlora ${args.join(" ")}`);
    assert.ok(r.stdout.includes(record.addon.buildInfo.torchVersion), r.stdout);
  }
});

test("where the build's record does not describe the addon, info loads it (the hooks see it) and prints the same", () => {
  // The same addon with a byte more: it loads as before, but its sha256 is not the recorded one.
  const other = path.join(dir, "other.node");
  fs.writeFileSync(other, Buffer.concat([fs.readFileSync(addonPath()), Buffer.from([0])]));
  const usual = loads(["info", "--json"]);
  const loaded = loads(["info", "--json"], { SVDLORA_ADDON: other });
  assert.equal(loaded.code, 0, loaded.stderr);
  assert.deepEqual(addons(loaded), [`dlopen ${other}`]);
  assert.ok(ranInfo(loaded));
  assert.deepEqual(JSON.parse(loaded.stdout), JSON.parse(usual.stdout));
});
