// Data-parallel training through c10d, on the CPU with Gloo: `svdlora train --gpus 2 --device cpu`
// runs two processes whose summed gradients must give the run of one process with the same global
// batch. Skipped when the addon was built without Gloo (Debian: libgloo-dev, installed by setup).
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { loadAdapter } from "../../src/hf/peft.js";
import * as torch from "../../src/torch/index.js";
import { shareOf } from "../../src/train/data-parallel.js";
import { readTrainingLog } from "../../src/train/log.js";
import { dataSubset, runCli, tempDir } from "../helpers.js";

const bin = new URL("../../../bin/svdlora.js", import.meta.url).pathname;
const train = new URL("../../../data/probability/train.json", import.meta.url).pathname;
const tmp = tempDir("dp");
const gloo = torch.distributed.backends().includes("gloo");
const heldOut = dataSubset(new URL("../../../data/probability/eval.json", import.meta.url).pathname, 4, tmp, "eval4.json");

function svdlora(...args: string[]) {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: "utf8", env: { ...process.env, RANK: "", WORLD_SIZE: "" } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr.trim() };
}

test("two CPU processes with --gpus 2 train the adapter one process trains on the same global batch", {
  skip: !gloo && "this build has no Gloo backend",
}, async () => {
  const data = dataSubset(train, 10, tmp, "train10.json");
  const common = ["train", "--train-data", data, "--eval-data", heldOut, "--epochs", "1", "--quiet", "--device", "cpu"];
  const one = await runCli(...common, "--batch-size", "4", "--output-dir", path.join(tmp, "one")); // one process: this one
  assert.equal(one.code, 0, one.stderr);
  const two = svdlora(...common, "--batch-size", "2", "--gpus", "2", "--output-dir", path.join(tmp, "two"));
  assert.equal(two.code, 0, two.stderr);
  // Rank 0 alone reports and writes.
  assert.equal(two.stdout.match(/^adapter:/gm)?.length, 1, two.stdout);
  const logs = ["one", "two"].map((d) => readTrainingLog(path.join(tmp, d, "training_log_random.csv")));
  assert.equal(logs[1].train.length, 2); // 10 samples, global batch 4: the remainder joins the last step (6, three on each rank)
  logs[1].train.forEach((row, i) => {
    const want = logs[0].train[i];
    assert.ok(Math.abs(row.loss - want.loss) <= 1e-5 * want.loss, `step ${row.step}: loss ${row.loss} vs ${want.loss}`);
    assert.ok(
      Math.abs(row.gradNorm! - want.gradNorm!) <= 1e-4 * want.gradNorm!,
      `step ${row.step}: grad norm ${row.gradNorm} vs ${want.gradNorm}`,
    );
    assert.equal(row.tokens, want.tokens);
  });
  const evals = logs.map((l) => l.eval[l.eval.length - 1].evalLoss);
  assert.ok(Math.abs(evals[1] - evals[0]) <= 1e-5 * evals[0], `eval loss after training ${evals[1]} vs ${evals[0]}`);
  // Adam divides by √v: elements whose gradient is ~0 move by ±lr on rounding noise alone, so the
  // factors are compared as a whole.
  const [a, b] = ["one", "two"].map((d) => loadAdapter(path.join(tmp, d, "final_model_random")).weights);
  for (const [name, w] of a)
    for (const k of ["A", "B"] as const) {
      const rel = torch.tidy(() => w[k].sub(b.get(name)![k]).norm().item() / w[k].norm().item());
      assert.ok(rel < 1e-2, `${name} ${k}: relative difference ${rel}`); // a missing or doubled gradient share is O(1)
    }
});

test("a launch with a bad rank variable fails in one line", () => {
  const r = spawnSync(process.execPath, [bin, "train", "--epochs", "1"], {
    encoding: "utf8",
    env: { ...process.env, RANK: "3", WORLD_SIZE: "2" },
  });
  assert.notEqual(r.status, 0);
  assert.match(r.stderr.trim(), /^svdlora: .*RANK=3 is not below WORLD_SIZE=2/);
});

test("shareOf splits a global batch into equal counts with even sizes, the same on every rank", () => {
  const batch = [600, 150, 400, 380, 200, 590, 170, 300];
  const shares = [0, 1].map((rank) => shareOf(batch, { rank, worldSize: 2, isMain: rank === 0, device: "cpu" }, (x) => x));
  assert.deepEqual([...shares[0], ...shares[1]].sort(), [...batch].sort());
  assert.deepEqual(
    shares.map((s) => s.length),
    [4, 4],
  );
  const sums = shares.map((s) => s.reduce((a, b) => a + b, 0));
  assert.ok(Math.abs(sums[0] - sums[1]) <= 100, `token loads ${sums}`);
  // A short batch: one item each for two of three ranks.
  const three = [0, 1, 2].map((rank) => shareOf(["a", "b"], { rank, worldSize: 3, isMain: rank === 0, device: "cpu" }));
  assert.deepEqual(three, [["a"], ["b"], []]);
  assert.deepEqual(shareOf([1, 2, 3], { rank: 0, worldSize: 1, isMain: true, device: "cpu" }), [1, 2, 3]);
});

test("Ctrl-C stops both ranks at the same step with a checkpoint; --resume finishes the run", {
  skip: !gloo && "this build has no Gloo backend",
}, async () => {
  const data = dataSubset(train, 16, tmp, "train16.json");
  const args = (out: string) => [
    "train",
    "--train-data",
    data,
    "--eval-data",
    heldOut,
    "--epochs",
    "2",
    "--batch-size",
    "2",
    "--gpus",
    "2",
    "--device",
    "cpu",
    "--save-steps",
    "1",
    "--quiet",
    "--output-dir",
    path.join(tmp, out),
  ];
  // Rows of the log while the run trains (in its staging folder), and of the finished run's log.
  const rows = (out: string, log = path.join(tmp, out, ".svdlora-partial-random", "training_log.csv")) =>
    fs.existsSync(log) ? readTrainingLog(log).train.length : 0;
  const checkpointStep = (out: string) =>
    JSON.parse(fs.readFileSync(path.join(tmp, out, "checkpoints", "random", "trainer_state.json"), "utf8")).step;
  const reference = svdlora(...args("ctrlc-reference"));
  assert.equal(reference.code, 0, reference.stderr);

  const child = spawn(process.execPath, [bin, ...args("ctrlc")], {
    stdio: ["ignore", "ignore", "pipe"],
    env: { ...process.env, RANK: "", WORLD_SIZE: "" },
  });
  let stderr = "";
  child.stderr.on("data", (d) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  while (rows("ctrlc") < 2 && child.exitCode === null) await new Promise((r) => setTimeout(r, 20));
  child.kill("SIGINT");
  assert.equal(await exited, 130, stderr);
  const stoppedAt = checkpointStep("ctrlc");
  assert.ok(stoppedAt >= 2 && stoppedAt < 8, `stopped after ${stoppedAt} of 8 steps`);
  // Both ranks report the same step.
  const steps = [...stderr.matchAll(/stopped at step (\d+)/g)].map((m) => Number(m[1]));
  assert.equal(steps.length, 2, stderr);
  assert.equal(steps[0], steps[1], stderr);

  const resumed = svdlora(...args("ctrlc"), "--resume");
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.equal(rows("ctrlc", path.join(tmp, "ctrlc", "training_log_random.csv")), 8);
  const [a, b] = ["ctrlc-reference", "ctrlc"].map((d) => loadAdapter(path.join(tmp, d, "final_model_random")).weights);
  for (const [name, w] of a)
    for (const k of ["A", "B"] as const) {
      const rel = torch.tidy(() => w[k].sub(b.get(name)![k]).norm().item() / w[k].norm().item());
      assert.ok(rel < 1e-5, `${name} ${k}: relative difference ${rel}`);
    }
});
