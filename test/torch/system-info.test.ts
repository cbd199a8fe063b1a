// systemInfo() without libtorch: the build's record (build/libtorch.json) against what the loaded
// addon reports, the thread count the record tells against libtorch's own, and a record that does
// not describe the addon, or a machine the build did not see, being ignored. The fresh-process
// checks run in processes of their own: this one may have loaded the addon for another test file.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { fileURLToPath, pathToFileURL } from "node:url";
import { type BuildRecord, buildRecord, machine, recordedThreads } from "../../src/torch/build-record.js";
import { buildInfo } from "../../src/torch/dtype.js";
import { tempDir } from "../helpers.js";

const root = fileURLToPath(new URL("../../../", import.meta.url));
const recordFile = path.join(root, "build/libtorch.json");
const REBUILD = "run `node scripts/build-native.mjs`: it records the addon it builds";

test("the build's record of the addon is what the addon reports of itself, less what depends on the machine", () => {
  const record = buildRecord();
  assert.ok(record, `${recordFile} does not describe the addon: ${REBUILD}`);
  const { cudaAvailable, parallelInfo, ...fixed } = buildInfo();
  assert.deepEqual(record.addon.buildInfo, fixed);
  // A CUDA build of the addon needs a libtorch with CUDA: the record never says no CUDA where there is.
  assert.ok(record.torch.cuda || !fixed.builtWithCuda);
  assert.ok(record.torch.cuda || !cudaAvailable);
});

test("a record that does not describe the addon is not used: none, an older one, another addon's", () => {
  const dir = tempDir("build-record");
  const real = JSON.parse(fs.readFileSync(recordFile, "utf8"));
  const write = (name: string, value: unknown) => {
    const file = path.join(dir, name);
    fs.writeFileSync(file, JSON.stringify(value));
    return file;
  };
  assert.deepEqual(buildRecord(write("same.json", real)), real, "a copy of the real record describes the addon");
  assert.equal(buildRecord(path.join(dir, "missing.json")), undefined);
  fs.writeFileSync(path.join(dir, "torn.json"), "{");
  assert.equal(buildRecord(path.join(dir, "torn.json")), undefined);
  const { addon, ...older } = real;
  assert.equal(buildRecord(write("older.json", older)), undefined);
  assert.equal(buildRecord(write("other.json", { ...real, addon: { ...addon, sha256: "0".repeat(64) } })), undefined);
});

test("recordedThreads: MKL_NUM_THREADS, else OMP_NUM_THREADS, where a positive number, else the default the build saw on this machine", () => {
  const record = buildRecord();
  assert.ok(record, `${recordFile} does not describe the addon: ${REBUILD}`);
  assert.deepEqual(record.addon.defaultThreads.machine, machine(), "the build saw this machine as build-record.ts sees it");
  const seen = record.addon.defaultThreads.count;
  assert.equal(recordedThreads(record, { MKL_NUM_THREADS: "3", OMP_NUM_THREADS: "1" }), 3);
  assert.equal(recordedThreads(record, { MKL_NUM_THREADS: "x", OMP_NUM_THREADS: "5" }), 5);
  assert.equal(recordedThreads(record, { OMP_NUM_THREADS: "4,2" }), 4, "a nested OpenMP list: its first level, as libtorch reads it");
  assert.equal(recordedThreads(record, { OMP_NUM_THREADS: "0" }), seen);
  assert.equal(recordedThreads(record, { OMP_NUM_THREADS: "many" }), seen);
  assert.equal(recordedThreads(record, {}), seen);
  // Seen on another machine: only the environment tells.
  const elsewhere: BuildRecord = {
    ...record,
    addon: { ...record.addon, defaultThreads: { count: seen, machine: { ...machine(), cpus: machine().cpus + 1 } } },
  };
  assert.equal(recordedThreads(elsewhere, {}), undefined);
  assert.equal(recordedThreads(elsewhere, { OMP_NUM_THREADS: "2" }), 2);
});

// A fresh process: systemInfo() first (from the record where it can), whether libtorch is loaded
// then, then systemInfo({ fromAddon: true }), and whether it is loaded after that.
function freshProcess(env: NodeJS.ProcessEnv) {
  const url = (f: string) => JSON.stringify(pathToFileURL(path.join(root, "dist/src/torch", f)).href);
  const script = `
    import fs from "node:fs";
    const { systemInfo } = await import(${url("system-info.js")});
    const { addonLoaded } = await import(${url("native.js")});
    // Both svdlora's flag and the process's own mappings: libtorch's library, whoever loaded it.
    const loaded = () => addonLoaded() || fs.readFileSync("/proc/self/maps", "utf8").includes("libtorch_cpu");
    const recorded = systemInfo();
    const loadedBefore = loaded();
    const fromAddon = systemInfo({ fromAddon: true });
    console.log(JSON.stringify({ recorded, loadedBefore, fromAddon, loadedAfter: loaded() }));`;
  const clean = { ...process.env };
  delete clean.OMP_NUM_THREADS;
  delete clean.MKL_NUM_THREADS;
  return JSON.parse(execFileSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8", env: { ...clean, ...env } }));
}

test("without CUDA, systemInfo() answers from the record without loading libtorch, as the loaded addon does", (t) => {
  const record = buildRecord();
  assert.ok(record, `${recordFile} does not describe the addon: ${REBUILD}`);
  if (record.torch.cuda) return t.skip("this libtorch has CUDA: systemInfo() loads the addon for the devices");
  if (!fs.existsSync("/proc/self/maps")) return t.skip("needs /proc/self/maps to see libtorch loaded");
  // libtorch's default threads, a count of OMP_NUM_THREADS other than that, and MKL's over OMP's.
  const seen = record.addon.defaultThreads.count;
  const other = seen === 1 ? 2 : 1;
  const cases: [NodeJS.ProcessEnv, number][] = [
    [{}, seen],
    [{ OMP_NUM_THREADS: String(other) }, other],
    [{ OMP_NUM_THREADS: "1", MKL_NUM_THREADS: "3" }, 3],
  ];
  for (const [env, threads] of cases) {
    const r = freshProcess(env);
    const what = JSON.stringify(env);
    assert.equal(r.loadedBefore, false, `${what}: libtorch stays unloaded`);
    assert.equal(r.loadedAfter, true, `${what}: fromAddon loads it`);
    assert.equal(r.fromAddon.cpu.torchThreads, threads, `${what}: libtorch's thread count`);
    assert.deepEqual(r.recorded, r.fromAddon, what);
  }
});
