// Crash safety: a training process killed with SIGKILL at a random moment, then resumed, ends
// with an adapter bitwise identical to an uninterrupted run; Ctrl-C saves a checkpoint and exits.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { before, test } from "node:test";
import { EMBEDDED_EVAL, EMBEDDED_TRAIN } from "../../src/paths.js";
import { dataSubset, runCli, tempDir } from "../helpers.js";

const bin = new URL("../../../bin/svdlora.js", import.meta.url).pathname;
const dir = tempDir("resume");
const subset = (from: string, n: number, name: string) => dataSubset(from, n, dir, name);
const trainData = subset(EMBEDDED_TRAIN, 16, "train.json");
const evalData = subset(EMBEDDED_EVAL, 4, "eval.json");
const args = (out: string) => [
  "train",
  "--train-data",
  trainData,
  "--eval-data",
  evalData,
  "--epochs",
  "2",
  "--batch-size",
  "4",
  "--learning-rate",
  "1e-3",
  "--save-steps",
  "1",
  "--max-length", // samples cut at 128 tokens (every prompt fits): 8 steps of a few hundred ms
  "128",
  "--quiet",
  "--output-dir",
  out,
];
const adapterBytes = (out: string) => fs.readFileSync(path.join(out, "final_model_random", "adapter_model.safetensors"));
// While a run trains, its log is in its staging folder; it moves into place when the run ends.
const trainRows = (out: string) => {
  const log = path.join(out, ".svdlora-partial-random", "training_log.csv");
  return fs.existsSync(log)
    ? fs
        .readFileSync(log, "utf8")
        .split("\n")
        .filter((l) => /^\d+,[^,]*,[^,]+,/.test(l)).length
    : 0;
};
const lossColumn = (out: string) =>
  fs
    .readFileSync(path.join(out, "training_log_random.csv"), "utf8")
    .split("\n")
    .map((l) => l.split(",").slice(0, 3).join(","));

/** Starts a run and sends `signal` once `rows` training rows are logged, after a random delay. */
async function interruptedRun(
  out: string,
  rows: number,
  signal: NodeJS.Signals,
): Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }> {
  const child = spawn(process.execPath, [bin, ...args(out)], { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (d) => (stderr += d));
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on("exit", (code, sig) => resolve({ code, signal: sig })),
  );
  while (trainRows(out) < rows && child.exitCode === null) await new Promise((r) => setTimeout(r, 20));
  await new Promise((r) => setTimeout(r, Math.random() * 300));
  child.kill(signal);
  return { ...(await done), stderr: stderr.trim() };
}

const reference = path.join(dir, "reference");

// The uninterrupted run and the resumes run in this process (the interrupted runs need one of their own).
before(async () => {
  const r = await runCli(...args(reference));
  assert.equal(r.code, 0, r.stderr);
});

test("a finished run is its files alone: its checkpoint went with the commit", () => {
  assert.ok(fs.existsSync(path.join(reference, "train_summary_random.json")));
  assert.ok(!fs.existsSync(path.join(reference, "checkpoints")));
});

test("SIGKILL at a random moment, then --resume: the adapter is bitwise identical", async () => {
  const out = path.join(dir, "killed");
  const killed = await interruptedRun(out, 3, "SIGKILL");
  assert.equal(killed.signal, "SIGKILL", "the run was still going when killed");
  assert.equal(fs.existsSync(path.join(out, "final_model_random")), false);
  const resumed = await runCli(...args(out), "--resume");
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.match(resumed.stdout, /resumed from the checkpoint at step [1-8]/);
  assert.ok(adapterBytes(out).equals(adapterBytes(reference)), "adapter differs from the uninterrupted run");
  // The log reads as one run: the same steps and losses as the reference.
  assert.deepEqual(lossColumn(out), lossColumn(reference));
});

test("Ctrl-C saves a checkpoint and exits with 130; --resume finishes the same run", async () => {
  const out = path.join(dir, "sigint");
  const r = await interruptedRun(out, 2, "SIGINT");
  assert.equal(r.code, 130, r.stderr);
  assert.match(r.stderr, /^svdlora: stopping at the next step boundary \(Ctrl-C again to stop at once\)$/m);
  assert.match(
    r.stderr,
    /^svdlora: stopped at step \d+: checkpoint saved in .*checkpoints\/random; continue with the same settings and --resume$/m,
  );
  // Resuming with other settings is refused in one line, and leaves the checkpoint to resume from.
  const other = await runCli(...args(out).map((a) => (a === "1e-3" ? "2e-3" : a)), "--resume");
  assert.notEqual(other.code, 0);
  assert.match(
    other.stderr,
    /^svdlora: error: checkpoint .* was made with other settings \(learningRate: 0\.001 then, 0\.002 now\): resume with the same settings/,
  );
  const resumed = await runCli(...args(out), "--resume");
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.ok(adapterBytes(out).equals(adapterBytes(reference)));
  // A finished run has nothing to resume.
  const again = await runCli(...args(out), "--resume");
  assert.match(
    again.stderr,
    /^svdlora: error: the run named random in .* is complete: there is nothing to resume; replace it with --overwrite$/,
  );
});

test("SIGTERM (timeout, kill, a scheduler) stops at a step boundary with a checkpoint, as Ctrl-C does", async () => {
  const out = path.join(dir, "sigterm");
  const r = await interruptedRun(out, 2, "SIGTERM");
  assert.equal(r.code, 130, r.stderr);
  assert.match(r.stderr, /^svdlora: stopping at the next step boundary \(a second SIGTERM to stop at once\)$/m);
  assert.match(
    r.stderr,
    /^svdlora: stopped at step \d+: checkpoint saved in .*checkpoints\/random; continue with the same settings and --resume$/m,
  );
});
