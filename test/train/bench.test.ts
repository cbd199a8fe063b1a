// The benchmark's shared part (src/train/bench.ts): the synthetic samples, the steps they are cut
// into (the same as scripts/bench_peft.py cuts them), the FLOP count, and a measured run on the CPU.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { parseModelConfig } from "../../src/hf/config.js";
import { randomCausalLM } from "../../src/model/loader.js";
import { addLora, loraParameters } from "../../src/model/lora.js";
import { PACKAGE_ROOT } from "../../src/paths.js";
import * as torch from "../../src/torch/index.js";
import {
  SAMPLE_LENGTHS,
  WARMUP_STEPS,
  benchSamples,
  benchSteps,
  matmulWeights,
  measureTraining,
  mfuPercent,
  samplesFor,
} from "../../src/train/bench.js";
import { InterruptedError } from "../../src/train/events.js";
import { AdamW } from "../../src/train/optim.js";
import { tempDir, tinyQwen2 } from "../helpers.js";

const config = (tied: boolean) => parseModelConfig(tinyQwen2({ max_position_embeddings: 700, tie_word_embeddings: tied }));

test("the synthetic samples: seeded, lengths in 150–600 (capped by maxLength), ids inside the vocabulary", () => {
  const a = benchSamples(60, 97, { seed: 5 });
  assert.equal(a.length, 60);
  assert.deepEqual(benchSamples(60, 97, { seed: 5 }), a, "the same seed gives the same tokens");
  assert.notDeepEqual(benchSamples(60, 97, { seed: 6 }), a);
  const lengths = a.map((s) => s.length);
  assert.ok(Math.min(...lengths) >= SAMPLE_LENGTHS.min && Math.max(...lengths) <= SAMPLE_LENGTHS.max, `${lengths}`);
  assert.ok(new Set(lengths).size > 30, "lengths spread over the range");
  const ids = a.flat();
  assert.ok(Math.min(...ids) >= 0 && Math.max(...ids) <= 96 && new Set(ids).size === 97);
  assert.ok(
    benchSamples(10, 97, { maxLength: 100 }).every((s) => s.length === 100),
    "a model shorter than the range",
  );
});

test("the steps: epochs over the samples in order, slices of the batch size, capped", () => {
  assert.deepEqual(benchSteps(10, 4), [
    [0, 4],
    [4, 8],
    [8, 10],
  ]);
  assert.deepEqual(benchSteps(5, 2, 2, 4), [
    [0, 2],
    [2, 4],
    [4, 5],
    [0, 2],
  ]);
  assert.equal(benchSteps(samplesFor(20, 4), 4).length, WARMUP_STEPS + 20, "samplesFor sizes a workload for the steps");
});

test("scripts/bench_peft.py cuts the same samples into the same steps", (t) => {
  const probe = spawnSync("python3", ["--version"]);
  if (probe.error) return t.skip("python3 is not installed: the PEFT script's steps are not checked");
  const dir = tempDir("bench-plan");
  const file = path.join(dir, "samples.json");
  fs.writeFileSync(file, JSON.stringify(benchSamples(11, 50, { maxLength: 3 })));
  for (const [batches, epochs, caps] of [
    [[4], 1, null],
    [[3, 5, 11, 20], 2, [7, 2, 3, 1]],
    [[1, 2], 3, [100, 9]],
  ] as [number[], number, number[] | null][]) {
    const args = ["--samples", file, "--plan", "--batch-size", batches.join(","), "--epochs", `${epochs}`];
    if (caps) args.push("--max-steps", caps.join(","));
    const r = spawnSync("python3", [path.join(PACKAGE_ROOT, "scripts/bench_peft.py"), ...args], { encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    const plans = JSON.parse(r.stdout) as { batch_size: number; steps: number[][] }[];
    assert.deepEqual(
      plans,
      batches.map((b, i) => ({ batch_size: b, steps: benchSteps(11, b, epochs, caps?.[i] ?? Infinity) })),
      args.join(" "),
    );
  }
});

test("N counts every matrix product a token goes through, the output projection also when tied", () => {
  for (const tied of [false, true]) {
    const model = randomCausalLM(config(tied));
    const layer = 32 * 32 + 32 + 2 * (32 * 16 + 16) + 32 * 32 + 3 * 32 * 64 + 2 * 32; // q (bias), k, v (bias), o, MLP, 2 norms
    assert.equal(matmulWeights(model), 2 * layer + 32 + 97 * 32, `tied ${tied}`); // + final norm + lm_head
    torch.dispose([...model.namedWeights().values()]);
  }
  assert.equal(mfuPercent(1000, 7e9, 989.4e12), (100 * 4 * 7e9 * 1000) / 989.4e12, "4N FLOPs per real token against the peak");
});

test("a measured run on the CPU: warm-up steps untimed, real and padded tokens counted from the samples", () => {
  torch.manualSeed(0);
  const model = randomCausalLM(config(false));
  const loras = addLora(model, { rank: 4, alpha: 8, targets: ["q_proj", "v_proj"] }, "random");
  const optimizer = new AdamW(loraParameters(loras), { lr: 1e-3 });
  const samples = benchSamples(samplesFor(2, 3), 97, { seed: 3, maxLength: 40 }).map((s, i) => s.slice(0, 20 + i));
  const steps = benchSteps(samples.length, 3);
  const steps0: number[] = [];
  const m = measureTraining(model, optimizer, samples, {
    steps,
    padId: 0,
    packing: false,
    recompute: "none",
    lr: 1e-3,
    events: { step: (s) => steps0.push(s.step) },
  });
  assert.equal(m.timedSteps, 2);
  assert.equal(m.losses.length, WARMUP_STEPS + 2);
  assert.ok(
    m.losses.every((l) => l > 3 && l < 6),
    `${m.losses}`,
  ); // about ln 97 = 4.6 for random weights
  assert.deepEqual(steps0, [1, 2, 3, 4, 5]);
  const timed = steps.slice(WARMUP_STEPS).map(([a, b]) => samples.slice(a, b));
  const real = timed.flat().reduce((n, s) => n + s.length, 0);
  const padded = timed.reduce((n, batch) => n + batch.length * Math.max(...batch.map((s) => s.length)), 0);
  assert.equal(m.tokensPerStep, real / 2);
  assert.ok(Math.abs(m.realTokensPerSecond * m.seconds - real) < 1e-6 * real);
  assert.ok(Math.abs(m.paddedTokensPerSecond / m.realTokensPerSecond - padded / real) < 1e-9);
  assert.equal(m.memoryKind, "host resident");
  assert.ok(m.peakMemoryBytes > 2 ** 20);

  const stop = new AbortController();
  stop.abort();
  assert.throws(
    () => measureTraining(model, optimizer, samples, { steps, padId: 0, packing: false, recompute: "none", lr: 1e-3, signal: stop.signal }),
    InterruptedError,
  );
  assert.throws(
    () => measureTraining(model, optimizer, samples, { steps: steps.slice(0, 3), padId: 0, packing: false, recompute: "none", lr: 1e-3 }),
    /3 steps leave none to time after the 3 warm-up steps/,
  );
  optimizer.dispose();
  torch.dispose([...loraParameters(loras), ...model.namedWeights().values()]);
});
