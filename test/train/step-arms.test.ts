// One optimizer step of concurrent arms (train/step.ts optimizerSteps on a model carrying arms)
// against each arm's step alone: the arms' losses, gradient norms, clipping and updates are
// computed for all of them at once, and each arm must still get its own. The arms here differ in
// what those shared computations must keep apart: micro-batch counts (so their loss weights differ,
// and not every arm has a share of every micro-batch), clipping maxima (one clips, one is within
// its maximum, one has none) and learning rates. On the CPU with one BLAS thread (as the tests run)
// an arm's numbers are bitwise its own; otherwise within 1e-5.
import assert from "node:assert/strict";
import { test } from "node:test";
import type { Encoded } from "../../src/data/types.js";
import { ArmGenerators } from "../../src/model/arms.js";
import { loadCausalLM } from "../../src/model/loader.js";
import { type LoraSettings, addLora, armAdapters, loraParameters } from "../../src/model/lora.js";
import * as torch from "../../src/torch/index.js";
import type { BatchOptions } from "../../src/train/batches.js";
import { singleProcess } from "../../src/train/data-parallel.js";
import { AdamW } from "../../src/train/optim.js";
import { type StepResult, optimizerStep, optimizerSteps, rankMicroBatch } from "../../src/train/step.js";
import { values } from "../helpers.js";

const modelDir = new URL("../../../test/fixtures/golden/qwen2-tiny", import.meta.url).pathname;
const ONE_THREAD = torch.getNumThreads() === 1;
const lora: LoraSettings = { rank: 4, alpha: 8, dropout: 0, targets: ["q_proj", "v_proj"] };
const batch: BatchOptions = { padId: 0, device: "cpu", packing: false, dtype: "float32" };
const dp = singleProcess("cpu");

// Made-up samples of different lengths, targets from position 2 on.
const samples = (n: number, seed: number): Encoded[] =>
  Array.from({ length: n }, (_, i) => {
    const length = 8 + ((seed * 5 + i * 3) % 9);
    return {
      ids: Array.from({ length }, (_, t) => (seed * 29 + i * 13 + t * 7) % 300),
      lossMask: Array.from({ length }, (_, t) => t >= 2),
      truncated: false,
    };
  });

// Each arm: its seed, micro-batches (of 2 samples), learning rate and clipping maximum.
const ARMS = [
  { seed: 1, micro: 2, lr: 1e-2, maxGradNorm: 1e-3 },
  { seed: 2, micro: 1, lr: 5e-3, maxGradNorm: undefined },
  { seed: 3, micro: 3, lr: 1e-2, maxGradNorm: 100 },
];
const microOf = (arm: (typeof ARMS)[number]) =>
  Array.from({ length: arm.micro }, (_, j) => rankMicroBatch(samples(2, 10 * arm.seed + j), arm.micro, dp, batch));

// Random init leaves B = 0: give B values, the same alone and together, so every factor learns.
function nudge(Bs: torch.Tensor[], seed: number): void {
  torch.manualSeed(100 + seed);
  torch.noGrad(() => Bs.forEach((B) => B.normal_(0, 0.05)));
}

/** Two steps of each arm alone: its step results and its factors after them. */
function alone(arm: (typeof ARMS)[number]): { steps: StepResult[]; factors: number[][] } {
  const model = loadCausalLM(modelDir);
  torch.manualSeed(arm.seed);
  const loras = addLora(model, lora, "random");
  nudge(
    [...loras.values()].map((l) => l.B),
    arm.seed,
  );
  const params = loraParameters(loras);
  const optimizer = new AdamW(params, { lr: arm.lr });
  const steps = [0, 1].map(() =>
    optimizerStep(model, optimizer, microOf(arm), { recompute: "none", lr: arm.lr, maxGradNorm: arm.maxGradNorm }),
  );
  const factors = params.map(values);
  optimizer.dispose();
  torch.dispose([...params, ...model.namedWeights().values()]);
  return { steps, factors };
}

/** Two steps of the arms together. */
function together(): { steps: StepResult[][]; factors: number[][][] } {
  const model = loadCausalLM(modelDir);
  const generators = new ArmGenerators("cpu");
  const adapters = ARMS.map((arm) => {
    torch.manualSeed(arm.seed);
    const a = armAdapters(model, lora, "random");
    nudge(
      [...a.values()].map((x) => x.lora.B),
      arm.seed,
    );
    generators.add();
    return a;
  });
  model.attachArms(adapters, generators);
  const params = adapters.map((a) => [...a.values()].flatMap((x) => x.lora.parameters()));
  const optimizers = params.map((p, k) => new AdamW(p, { lr: ARMS[k].lr }));
  const steps = [0, 1].map(() =>
    optimizerSteps(
      model,
      ARMS.map((arm, k) => ({ optimizer: optimizers[k], micro: microOf(arm), lr: arm.lr, maxGradNorm: arm.maxGradNorm, arm: k })),
      { recompute: "none" },
    ),
  );
  const factors = params.map((p) => p.map(values));
  model.detachArms();
  for (const o of optimizers) o.dispose();
  torch.dispose([...params.flat(), ...model.namedWeights().values()]);
  return { steps: ARMS.map((_, k) => steps.map((s) => s[k])), factors };
}

const rel = (a: number, b: number) => (a === b ? 0 : Math.abs(a - b) / Math.max(Math.abs(b), 1e-30));

test("arms with different micro-batches, clipping and learning rates each take the steps they take alone", () => {
  const t = together();
  ARMS.forEach((arm, k) => {
    const a = alone(arm);
    const what = `arm ${k} (seed ${arm.seed})`;
    const pick = (s: StepResult) => [s.loss, s.gradNorm, s.tokens, s.targets, s.updated];
    if (ONE_THREAD) {
      assert.deepEqual(t.steps[k].map(pick), a.steps.map(pick), `${what}: step results`);
      assert.deepEqual(t.factors[k], a.factors, `${what}: factors after two steps`);
    } else {
      t.steps[k].forEach((s, i) => {
        assert.ok(rel(s.loss, a.steps[i].loss) <= 1e-5 && rel(s.gradNorm, a.steps[i].gradNorm) <= 1e-5, `${what}: step ${i}`);
      });
      t.factors[k].forEach((f, i) => {
        assert.ok(Math.max(...f.map((x, j) => rel(x, a.factors[i][j]))) <= 1e-4, `${what}: factor ${i}`);
      });
    }
  });
  // What the arms are meant to show: the first arm clips, the third does not, and the steps moved the factors.
  assert.ok(t.steps[0][0].gradNorm > ARMS[0].maxGradNorm! && t.steps[2][0].gradNorm < ARMS[2].maxGradNorm!, "clipping as meant");
  assert.ok(t.steps.every((s) => s.every((r) => r.updated)));
});
