// Data-parallel training through c10d, on the CPU with Gloo: `svdlora train --gpus 2 --device cpu`
// runs two processes whose summed gradients must give the run of one process with the same global
// batch. Skipped when the addon was built without Gloo (Debian: libgloo-dev, installed by setup).
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { freePort } from "../../src/cli/launch.js";
import { parseModelConfig } from "../../src/hf/config.js";
import { loadAdapter } from "../../src/hf/peft.js";
import { randomCausalLM } from "../../src/model/loader.js";
import { addLora, loraParameters } from "../../src/model/lora.js";
import * as torch from "../../src/torch/index.js";
import { lossAndBackward } from "../../src/train/backprop.js";
import { packedBatch } from "../../src/train/batches.js";
import { MIN_BUCKETS, bucketPlan, shareOf } from "../../src/train/data-parallel.js";
import { readTrainingLog } from "../../src/train/log.js";
import { dataSubset, tempDir, tinyQwen2 } from "../helpers.js";
import { smallModel } from "../small-model.js";

const bin = new URL("../../../bin/svdlora.js", import.meta.url).pathname;
const gradientSumWorker = new URL("./gradient-sum-worker.js", import.meta.url).pathname;
const train = new URL("../../../data/probability/train.json", import.meta.url).pathname;
const tmp = tempDir("dp");
const gloo = torch.distributed.backends().includes("gloo");

function svdlora(...args: string[]) {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: "utf8", env: { ...process.env, RANK: "", WORLD_SIZE: "" } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr.trim() };
}

// Samples cut at 128 tokens (every prompt fits): their length does not matter to what is compared here.
const MAX_LENGTH = ["--max-length", "128"];
// Training flags shared by the runs compared below (on the small model: its size does not matter to
// them either); the one-process run is the reference.
const common = () => {
  const data = dataSubset(train, 10, tmp, "train10.json");
  const model = smallModel(tmp);
  return [
    "train",
    "--base-model",
    model,
    "--train-data",
    data,
    "--eval-data",
    data,
    "--epochs",
    "1",
    ...MAX_LENGTH,
    "--quiet",
    "--device",
    "cpu",
  ];
};
let reference: string | null = null;
function oneProcess(): string {
  if (!reference) {
    const one = svdlora(...common(), "--batch-size", "4", "--output-dir", path.join(tmp, "one"));
    assert.equal(one.code, 0, one.stderr);
    reference = path.join(tmp, "one");
  }
  return reference;
}

/** The run in `dir` (batch 2 on each of 2 ranks) trained what one process with batch 4 trains. */
function assertSameTraining(dir: string): void {
  const logs = [oneProcess(), dir].map((d) => readTrainingLog(path.join(d, "training_log_random.csv")));
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
  const [a, b] = [oneProcess(), dir].map((d) => loadAdapter(path.join(d, "final_model_random")).weights);
  for (const [name, w] of a)
    for (const k of ["A", "B"] as const) {
      const rel = torch.tidy(() => w[k].sub(b.get(name)![k]).norm().item() / w[k].norm().item());
      assert.ok(rel < 1e-2, `${name} ${k}: relative difference ${rel}`); // a missing or doubled gradient share is O(1)
    }
}

test("two CPU processes with --gpus 2 train the adapter one process trains on the same global batch", {
  skip: !gloo && "this build has no Gloo backend",
}, () => {
  const two = svdlora(...common(), "--batch-size", "2", "--gpus", "2", "--output-dir", path.join(tmp, "two"));
  assert.equal(two.code, 0, two.stderr);
  // Rank 0 alone reports and writes.
  assert.equal(two.stdout.match(/^adapter:/gm)?.length, 1, two.stdout);
  assertSameTraining(path.join(tmp, "two"));
});

test("two machines (two launchers on this host, NNODES=2, one CPU worker each) train what one process trains", {
  skip: !gloo && "this build has no Gloo backend",
}, async () => {
  const port = await freePort();
  const out = path.join(tmp, "two-machines");
  const machine = (nodeRank: number) => {
    const env = {
      ...process.env,
      RANK: "",
      WORLD_SIZE: "",
      NNODES: "2",
      NODE_RANK: String(nodeRank),
      MASTER_ADDR: "127.0.0.1",
      MASTER_PORT: String(port),
    };
    const child = spawn(process.execPath, [bin, ...common(), "--batch-size", "2", "--gpus", "1", "--output-dir", out], { env });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) =>
      child.on("close", (code) => resolve({ code, stdout, stderr })),
    );
  };
  const [first, second] = await Promise.all([machine(0), machine(1)]);
  assert.equal(first.code, 0, first.stderr);
  assert.equal(second.code, 0, second.stderr);
  // Rank 0, on the first machine, alone reports and writes.
  assert.match(first.stdout, /^adapter:/m);
  assert.equal(second.stdout.trim(), "", second.stdout);
  assertSameTraining(out);
});

/** Runs `script` as ranks 0..n-1 of one group (as a launcher would); resolves with each rank's last stdout line as JSON. */
async function ranks(script: string, n: number): Promise<Record<string, any>[]> {
  const port = await freePort();
  return Promise.all(
    Array.from({ length: n }, (_, rank) => {
      const env = { ...process.env, RANK: String(rank), WORLD_SIZE: String(n), MASTER_ADDR: "127.0.0.1", MASTER_PORT: String(port) };
      const child = spawn(process.execPath, [script], { env, stdio: ["ignore", "pipe", "pipe"] });
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (d) => (stdout += d));
      child.stderr.on("data", (d) => (stderr += d));
      const killer = setTimeout(() => child.kill("SIGKILL"), 60000);
      return new Promise<Record<string, any>>((resolve, reject) =>
        child.on("close", (code) => {
          clearTimeout(killer);
          if (code !== 0) reject(new Error(`rank ${rank} exited with ${code}: ${stderr}`));
          else resolve(JSON.parse(stdout.trim().split("\n").pop()!));
        }),
      );
    }),
  );
}

test("gradients summed bucket by bucket during backward equal those summed after it, and one process's on the whole batch", {
  skip: !gloo && "this build has no Gloo backend",
}, async () => {
  for (const r of await ranks(gradientSumWorker, 2)) {
    // The embedded model's 4 layers, one bucket each (top first), all LoRA factors in them.
    assert.deepEqual(
      r.buckets.map((b: { first: number }) => b.first),
      [3, 2, 1, 0],
      `rank ${r.rank}`,
    );
    assert.equal(r.rest, 0);
    // Backward split where the buckets start: it finishes layer 3, 2, 1, then 0; each bucket starts there.
    assert.deepEqual(
      r.hooksDuring,
      [3, 2, 1, 0].map((first, k) => ({ first, startedBuckets: k + 1 })),
      `rank ${r.rank}`,
    );
    assert.deepEqual(r.hooksAfter, [{ first: 0, startedBuckets: 0 }], "without overlap, one segment and nothing started in backward");
    assert.equal(r.duringVsAfter, 0, `rank ${r.rank}: the same sums whenever they start`);
    assert.ok(r.smallestNorm > 0, "every factor has a gradient");
    assert.ok(r.afterVsAlone < 1e-5, `rank ${r.rank}: summed vs one process, relative difference ${r.afterVsAlone}`);
  }
});

function tenLayers() {
  torch.manualSeed(5);
  const config = parseModelConfig(tinyQwen2({ num_hidden_layers: 10 }));
  return randomCausalLM(config, { std: 0.2 });
}

test("gradient buckets are whole layers from the top, each at most 1/MIN_BUCKETS of them; weights outside the layers come last", () => {
  const model = tenLayers();
  const loras = addLora(model, { rank: 4, alpha: 8, targets: ["q_proj", "v_proj"] }, "gaussian");
  const plan = bucketPlan(model, loraParameters(loras));
  assert.equal(MIN_BUCKETS, 4);
  // 10 equal layers, at most 10/4 of them per bucket: 2 each, top first.
  assert.deepEqual(
    plan.layers.map((b) => [b.first, b.params.length]),
    [
      [8, 8],
      [6, 8],
      [4, 8],
      [2, 8],
      [0, 8],
    ],
  );
  assert.equal(plan.layers[0].params[0], loras.get("model.layers.9.self_attn.q_proj")!.A, "the top layer's first");
  assert.deepEqual(plan.rest, []);
  assert.equal(bucketPlan(model, loraParameters(loras)).layers.length, 5, "a new list of the same parameters gets the same plan");
  // A full fine-tune: the embeddings, the final norm and lm_head are in no layer.
  const weights = model.namedWeights();
  const full = bucketPlan(model, [...weights.values()]);
  assert.deepEqual(
    full.rest,
    ["model.embed_tokens.weight", "model.norm.weight", "lm_head.weight"].map((k) => weights.get(k)),
  );
  assert.equal(full.layers.flatMap((b) => b.params).length, weights.size - 3);
});

test("onLayersDone: when backward says layers ≥ first are done, their gradients are final; segmentStarts splits backward there, same gradients", () => {
  const model = tenLayers();
  const loras = addLora(model, { rank: 4, alpha: 8, targets: "all-linear" }, "gaussian");
  torch.noGrad(() => {
    for (const l of loras.values()) l.B.normal_(0, 0.1);
  });
  const layerOf = new Map([...loras].flatMap(([name, l]) => [l.A, l.B].map((p) => [p, Number(/layers\.(\d+)\./.exec(name)![1])] as const)));
  const batch = packedBatch(
    [
      { ids: [1, 2, 3, 4, 5, 6, 7], lossMask: [false, false, true, true, true, true, true], truncated: false },
      { ids: [9, 8, 7, 6, 5], lossMask: [false, true, true, true, true], truncated: false },
    ],
    "cpu",
  );
  const grads = () => [...layerOf.keys()].map((p) => Array.from(p.grad!.data() as Float32Array));
  const clear = () => {
    for (const p of layerOf.keys()) p.grad = null;
  };
  // Layers 0–3 kept (one segment), 4–9 recomputed one by one.
  torch.tidy(() => lossAndBackward(model, batch, { recompute: { keepLayers: 4 } }).loss);
  const whole = grads();
  clear();
  const firsts: number[] = [];
  const seen = new Map<torch.Tensor, number[]>();
  // The same, with the kept layers split at layer 2: backward reports there too.
  torch.tidy(
    () =>
      lossAndBackward(model, batch, {
        recompute: { keepLayers: 4 },
        segmentStarts: new Set([2, 7]),
        onLayersDone: (first) => {
          firsts.push(first);
          for (const [p, layer] of layerOf) if (layer >= first && !seen.has(p)) seen.set(p, Array.from(p.grad!.data() as Float32Array));
        },
      }).loss,
  );
  assert.deepEqual(firsts, [9, 8, 7, 6, 5, 4, 2, 0]);
  assert.equal(seen.size, layerOf.size);
  for (const [p, early] of seen) assert.deepEqual(Array.from(p.grad!.data() as Float32Array), early, `layer ${layerOf.get(p)}`);
  const split = grads();
  whole.forEach((g, k) =>
    g.forEach((x, j) => assert.ok(Math.abs(x - split[k][j]) <= 1e-6 * (1 + Math.abs(x)), `gradient ${k}[${j}]: ${split[k][j]} vs ${x}`)),
  );
  clear();
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
  // The embedded model (the default), whose steps are long enough for Ctrl-C to land mid-run.
  const data = dataSubset(train, 16, tmp, "train16.json");
  const args = (out: string) => [
    "train",
    "--train-data",
    data,
    "--eval-data",
    dataSubset(train, 4, tmp, "train4.json"),
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
    ...MAX_LENGTH,
    "--quiet",
    "--output-dir",
    path.join(tmp, out),
  ];
  // Rows of the log while the run trains (in its staging folder), and of the finished run's log.
  const rows = (out: string, log = path.join(tmp, out, ".svdlora-partial-random", "training_log.csv")) =>
    fs.existsSync(log) ? readTrainingLog(log).train.length : 0;
  const checkpointStep = (out: string) =>
    JSON.parse(fs.readFileSync(path.join(tmp, out, "checkpoints", "random", "trainer_state.json"), "utf8")).global_step;
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
