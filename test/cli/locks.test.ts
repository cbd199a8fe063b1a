// One svdlora process per output folder (docs/reliability.md, "Concurrency"): a second `train` or
// `run` into a folder that another process is writing fails at once in one line naming that
// process, and changes nothing there; a lock left by a process that is gone is taken over, and
// the command says so. The first process is real: stopped (SIGSTOP, SVDLORA_TEST_STOP_AT=1) just
// before its first file-system change, so it holds the lock while the second one runs here.
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import { EMBEDDED_TRAIN } from "../../src/paths.js";
import { dataSubset, deadPid, runCli, sameTree, spawnCli, tempDir, treeFiles } from "../helpers.js";
import { smallModel } from "../small-model.js";

const dir = tempDir("locks");
const trainData = dataSubset(EMBEDDED_TRAIN, 4, dir, "train.json");
// The small model, samples cut at 128 tokens (every prompt fits): the locks matter here, not the model's size or the samples' length.
const tiny = [
  "--base-model",
  smallModel(dir),
  "--train-data",
  trainData,
  "--epochs",
  "1",
  "--batch-size",
  "4",
  "--max-length",
  "128",
  "--quiet",
];

/** Whether the process is stopped (state T in /proc). */
const stopped = (pid: number) => {
  try {
    return /^\d+ \(.*\) T /.test(fs.readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
};

/**
 * Starts args in a process that stops just before its first file-system change (holding the
 * folder's lock), runs `second` here meanwhile, then lets the first one finish.
 */
async function whileHeld(args: string[], second: (pid: number) => Promise<void>): Promise<void> {
  let pid = 0;
  const first = spawnCli(args, { SVDLORA_TEST_STOP_AT: "1" }, (p) => (pid = p));
  const deadline = Date.now() + 60_000;
  while (!stopped(pid)) {
    assert.ok(Date.now() < deadline, "the first process did not reach its first change");
    await new Promise((r) => setTimeout(r, 20));
  }
  try {
    await second(pid);
  } finally {
    process.kill(pid, "SIGCONT");
  }
  const r = await first;
  assert.equal(r.code, 0, r.stderr);
}

const assertOneLine = (r: { code: number; stderr: string }, pattern: RegExp) => {
  assert.equal(r.code, 1);
  assert.equal(r.stderr.split("\n").length, 1, r.stderr);
  assert.match(r.stderr, pattern);
};

describe("two processes, one folder", () => {
  it("a second train into a folder that a train is writing fails naming it, and changes nothing", async () => {
    const out = path.join(dir, "train");
    await whileHeld(["train", ...tiny, "--output-dir", out], async (pid) => {
      const before = treeFiles(out);
      const r = await runCli("train", ...tiny, "--init", "gaussian", "--output-dir", out);
      assertOneLine(
        r,
        new RegExp(
          `^svdlora: error: ${out} is in use by another svdlora process \\(pid ${pid} on ${os.hostname()}, training run random, since [0-9T:.Z-]+\\): wait for it to finish or stop it$`,
        ),
      );
      assert.ok(sameTree(treeFiles(out), before), "the second process wrote nothing");
    });
    // The first run ends whole, and alone: no other run's files, no lock left.
    assert.deepEqual(fs.readdirSync(out).sort(), [
      "final_model_random",
      "plots",
      "tensorboard",
      "train_summary_random.json",
      "training_log_random.csv",
      "training_log_random.jsonl",
    ]);
  });

  it("a second run into an experiment folder that a run is writing fails naming it, and changes nothing", async () => {
    const exp = path.join(dir, "exp");
    await whileHeld(["run", "--steps", "1", ...tiny, "--output-dir", exp], async (pid) => {
      const before = treeFiles(exp);
      const r = await runCli("run", "--steps", "1", ...tiny, "--output-dir", exp);
      assertOneLine(
        r,
        new RegExp(`^svdlora: error: ${exp} is in use by another svdlora process \\(pid ${pid} on .*, svdlora run \\(steps 1\\),`),
      );
      assert.ok(sameTree(treeFiles(exp), before), "the second process wrote nothing");
    });
    assert.ok(fs.existsSync(path.join(exp, "training_results", "train_summary_random.json")));
    assert.ok(!fs.existsSync(path.join(exp, ".svdlora.lock")));
  });
});

describe("a stale lock (its process is gone)", () => {
  const stale = (folder: string) => {
    const pid = deadPid();
    fs.mkdirSync(folder, { recursive: true });
    const lock = { pid, host: os.hostname(), started: "2026-01-01T00:00:00.000Z", purpose: "training run random" };
    fs.writeFileSync(path.join(folder, ".svdlora.lock"), JSON.stringify(lock));
    return pid;
  };

  it("is taken over by train, which says so", async () => {
    const out = path.join(dir, "stale-train");
    const pid = stale(out);
    const r = await runCli("train", ...tiny, "--output-dir", out);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, `svdlora: took over ${out}'s lock from process ${pid} (training run random), which is gone`);
    assert.ok(!fs.existsSync(path.join(out, ".svdlora.lock")));
  });

  it("is taken over by run, which says so", async () => {
    const exp = path.join(dir, "stale-exp");
    const pid = stale(exp);
    const r = await runCli("run", "--steps", "1", ...tiny, "--output-dir", exp);
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stderr,
      new RegExp(`^svdlora: took over ${exp}'s lock from process ${pid} \\(training run random\\), which is gone$`, "m"),
    );
    assert.ok(!fs.existsSync(path.join(exp, ".svdlora.lock")));
  });

  it("held by a process on another host is not taken over", async () => {
    const out = path.join(dir, "other-host");
    fs.mkdirSync(out);
    const lock = { pid: deadPid(), host: "elsewhere", started: "2026-01-01T00:00:00.000Z", purpose: "training run random" };
    fs.writeFileSync(path.join(out, ".svdlora.lock"), JSON.stringify(lock));
    const r = await runCli("train", ...tiny, "--output-dir", out);
    assertOneLine(r, /is in use by another svdlora process \(pid \d+ on elsewhere, training run random, since 2026-01-01T00:00:00\.000Z\)/);
  });
});
