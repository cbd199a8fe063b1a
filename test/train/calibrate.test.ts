// The calibration pass of the data-dependent inits on the small model of test/small-model.ts (EVA's,
// which redistributes ranks, on the embedded tiny model): which batches it reads, that each
// statistic is the one its init defines (checked against a direct computation), that layers reading
// one input share it, that statistics split into groups (a small memory budget) come out the same,
// and that the model is left as it was (no probe, no trainable weight, no gradient).
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { before, test } from "node:test";
import { loadDataset } from "../../src/data/dataset.js";
import { formatSamples } from "../../src/data/format.js";
import type { Encoded } from "../../src/data/types.js";
import { loadTokenizer } from "../../src/hf/tokenizer.js";
import { GradientMean, InputCovariance } from "../../src/lowrank/inits/index.js";
import { loadCausalLM } from "../../src/model/loader.js";
import { targetPaths } from "../../src/model/lora.js";
import type { CausalLM } from "../../src/model/qwen2.js";
import { EMBEDDED_MODEL, EMBEDDED_TRAIN } from "../../src/paths.js";
import * as torch from "../../src/torch/index.js";
import { epochOrder, paddedBatch } from "../../src/train/batches.js";
import { type CalibrationJob, calibrate, calibrationBatches, gradientPassPolicy } from "../../src/train/calibrate.js";
import { InterruptedError } from "../../src/train/events.js";
import { settledMemory, tempDir } from "../helpers.js";
import { smallModel } from "../small-model.js";

// Samples cut at 128 tokens (every prompt fits), which the statistics do not mind; EVA's fits go on
// until its components settle, which takes more batches of shorter samples: it reads them whole.
let train: Encoded[];
let whole: Encoded[];
let padId: number;
// The small model (a random one: the statistics are checked against direct computations) and its sizes.
const small = smallModel(tempDir("calibrate"));
const shape = JSON.parse(fs.readFileSync(path.join(small, "config.json"), "utf8"));
before(async () => {
  const tokenizer = await loadTokenizer(EMBEDDED_MODEL);
  padId = tokenizer.pad!.id;
  const samples = loadDataset(EMBEDDED_TRAIN).slice(0, 12);
  train = formatSamples(samples, tokenizer, { systemPrompt: "Answer.", maxLength: 128 }).encoded;
  whole = formatSamples(samples, tokenizer, { systemPrompt: "Answer.", maxLength: 1024 }).encoded;
});

const relative = (a: torch.Tensor, b: torch.Tensor) => torch.tidy(() => a.sub(b).norm().item() / b.norm().item());
const targets = ["q_proj", "v_proj"];

function job(model: CausalLM, name: CalibrationJob["method"]["name"], o: Partial<CalibrationJob> = {}): CalibrationJob {
  return {
    model,
    method: { name },
    targets: targetPaths(model, { rank: 4, alpha: 8, targets }),
    batches: calibrationBatches(train, { seed: 7, batchSize: 4, count: 2 }),
    batch: { padId, device: "cpu", packing: false, dtype: model.dtype },
    recompute: "none",
    rank: 4,
    alpha: 8,
    budgetBytes: null,
    ...o,
  };
}

/** Nothing of the pass is left on the model. */
function assertUntouched(model: CausalLM): void {
  for (const [path, linear] of model.linears()) {
    assert.equal(linear.probe, null, `${path}: probe cleared`);
    assert.equal(linear.weight.requiresGrad, false, `${path}: weight frozen again`);
    assert.equal(linear.weight.grad, null, `${path}: no gradient left`);
  }
}

test("the calibration batches are the run's first micro-batches, in its first epoch's order", () => {
  const batches = calibrationBatches(train, { seed: 7, batchSize: 4, count: 2 });
  const order = epochOrder(train.length, 7, 0);
  assert.deepEqual(
    batches.map((b) => b.map((s) => train.indexOf(s))),
    [order.slice(0, 4), order.slice(4, 8)],
  );
  assert.equal(calibrationBatches(train, { seed: 7, batchSize: 4, count: 99 }).length, 3, "at most the epoch's batches");
});

test("lora-ga's gradient: the mean over batches of dL/dW of each batch's mean token loss; the model left as it was", async () => {
  const model = loadCausalLM(small);
  const j = job(model, "lora-ga");
  const c = await calibrate(j);
  assertUntouched(model);
  assert.equal(c.batches, 2);
  assert.equal(
    c.tokens,
    j.batches.flat().reduce((n, s) => n + s.ids.length, 0),
  );
  // The same statistic from the model's own loss, batch by batch.
  const reference = loadCausalLM(small);
  const G = new GradientMean();
  const weights = j.targets.map((p) => [p, reference.linears().get(p)!.weight] as const);
  for (const [, w] of weights) w.requiresGrad_(true);
  for (const samples of j.batches) {
    const b = paddedBatch(samples, padId, "cpu");
    reference.loss(b.ids, b.labels).backward();
    for (const [p, w] of weights) {
      G.addGradient(p, w.grad!);
      w.grad = null;
    }
  }
  const worst = Math.max(...j.targets.map((p) => relative(c.context.gradient!(p), G.takeMean(p))));
  assert.ok(worst < 1e-5, `relative difference ${worst}`);
  c.dispose();
});

test("a pass leaves no tensor behind once its result is disposed (none waits for the garbage collector)", async () => {
  const model = loadCausalLM(small);
  for (const name of ["lora-ga", "lora-one", "corda-ipm", "eva"] as const) {
    const before = await settledMemory();
    const c = await calibrate(job(model, name));
    c.dispose();
    assert.deepEqual(torch.memory(), before, `${name}: live tensors before and after`);
  }
});

test("corda's covariance: one sequence per forward; v_proj shares q_proj's input and so its C", async () => {
  const model = loadCausalLM(small);
  const j = job(model, "corda-ipm");
  const c = await calibrate(j);
  assertUntouched(model);
  const q = "model.layers.1.self_attn.q_proj";
  const C = c.context.covariance!;
  assert.equal(relative(C("model.layers.1.self_attn.v_proj"), C(q)), 0);
  // q_proj's inputs, sequence by sequence, read through a probe of our own.
  const reference = new InputCovariance();
  const linear = model.linears().get(q)!;
  linear.probe = (x) => reference.add(q, x);
  for (const sample of j.batches.flat()) torch.noGrad(() => model.forward(torch.tensor([sample.ids], { dtype: "int64" })));
  linear.probe = null;
  assert.ok(relative(C(q), reference.takeMean(q)) < 1e-6);
  assert.ok(relative(C(q), C("model.layers.0.self_attn.q_proj")) > 0.01, "each layer its own");
  c.dispose();
});

test("statistics that do not fit the memory budget together are made in groups, one pass each, and come out the same", async () => {
  // One calibration batch: a pass per group is what is counted here.
  const batches = calibrationBatches(train, { seed: 7, batchSize: 4, count: 1 });
  const one = await calibrate(job(loadCausalLM(small), "corda-kpm", { batches }));
  // Room for one width × width float32 covariance at a time: a group per target (q_proj and v_proj of each layer).
  const width = shape.hidden_size;
  const split = await calibrate(job(loadCausalLM(small), "corda-kpm", { batches, budgetBytes: 2 * width * width * 4 }));
  const targets = 2 * shape.num_hidden_layers;
  assert.equal(one.passes, 1);
  assert.equal(split.passes, targets);
  assert.equal(split.tokens, targets * one.tokens);
  for (const p of job(loadCausalLM(small), "corda-kpm").targets)
    assert.ok(relative(split.context.covariance!(p), one.context.covariance!(p)) < 1e-6, p);
  await assert.rejects(
    calibrate(job(loadCausalLM(small), "corda-kpm", { budgetBytes: 1000 })),
    /the covariance of model\.layers\.0\.self_attn\.q_proj \(0\.00 GiB\) does not fit in the memory `maxMemory` leaves/,
  );
  one.dispose();
  split.dispose();
});

test("eva: ranks redistributed within the budget, v_proj shares q_proj's components, α follows the rank", async () => {
  const model = loadCausalLM(EMBEDDED_MODEL);
  const c = await calibrate(job(model, "eva", { batches: calibrationBatches(whole, { seed: 7, batchSize: 4, count: 2 }) }));
  assertUntouched(model);
  const eva = c.context.eva!;
  const ranks = [...eva.values()].map((l) => l.rank);
  assert.equal(
    ranks.reduce((a, b) => a + b, 0),
    8 * 4,
    "the budget: r per target",
  );
  assert.ok(
    ranks.some((r) => r !== 4),
    `redistributed: ${ranks}`,
  );
  for (const [path, l] of eva) {
    assert.equal(l.alpha, (8 * l.rank) / 4, `${path}: α · rank / r`);
    if (l.rank === 0) continue;
    const gram = l.A.matmul(l.A.T);
    assert.ok(torch.tidy(() => gram.sub(torch.eye(l.rank)).abs().max().item()) < 1e-4, `${path}: orthonormal components`);
  }
  const q = eva.get("model.layers.0.self_attn.q_proj")!;
  const v = eva.get("model.layers.0.self_attn.v_proj")!;
  const shared = Math.min(q.rank, v.rank);
  assert.equal(relative(v.A.narrow(0, 0, shared), q.A.narrow(0, 0, shared)), 0);
  assert.ok(c.batches >= 3, "a sharing forward, then at least two fits");
  c.dispose();
});

test("eva: each batch's inputs are kept after its first forward and later cycles run none; without room to keep them, forwards give the same result", async () => {
  const j = job(loadCausalLM(EMBEDDED_MODEL), "eva");
  const tokens = j.batches.map((b) => b.reduce((n, s) => n + s.ids.length, 0));
  const kept = await calibrate(j);
  assert.ok(kept.batches > 1 + 2 * j.batches.length, `cycled through the batches (${kept.batches} steps)`);
  assert.equal(kept.tokens, tokens[0] + tokens[0] + tokens[1], "the sharing forward, then one forward per batch");
  // A budget of one byte: nothing is kept, and the layers are fitted one per step.
  const rerun = await calibrate(job(loadCausalLM(EMBEDDED_MODEL), "eva", { budgetBytes: 1 }));
  assert.equal(rerun.batches, kept.batches);
  const steps = rerun.batches - 1;
  assert.equal(rerun.tokens, tokens[0] + Array.from({ length: steps }, (_, i) => tokens[i % 2]).reduce((a, b) => a + b, 0));
  for (const [path, l] of kept.context.eva!) {
    const other = rerun.context.eva!.get(path)!;
    assert.equal(other.rank, l.rank, `${path}: rank`);
    if (l.rank > 0) assert.ok(relative(other.A, l.A) < 1e-6, `${path}: A`);
  }
  kept.dispose();
  rerun.dispose();
});

test("a gradient pass under a memory budget counts the target weights' gradients, layer by layer, in its recomputation policy", () => {
  const model = loadCausalLM(EMBEDDED_MODEL);
  const j = job(model, "lora-ga", { recompute: { budgetBytes: 2 ** 30 } });
  const bytes = (layer: number) =>
    ["q_proj", "v_proj"].reduce((n, m) => n + model.linears().get(`model.layers.${layer}.self_attn.${m}`)!.weight.numel() * 4, 0);
  const layers = model.layers.map((_, i) => i);
  assert.deepEqual(gradientPassPolicy(j, j.targets), { budgetBytes: 2 ** 30, gradientBytes: [...layers.map(bytes), 0] });
  assert.deepEqual(
    gradientPassPolicy(j, j.targets.slice(0, 2)),
    { budgetBytes: 2 ** 30, gradientBytes: [...layers.map((i) => (i === 0 ? bytes(0) : 0)), 0] },
    "a group: its own (and nothing in the head)",
  );
  assert.equal(gradientPassPolicy(job(model, "lora-ga"), j.targets), "none", "no budget: the run's policy");
});

test("an abort stops the pass between batches, and the model is left as it was", async () => {
  const model = loadCausalLM(EMBEDDED_MODEL);
  const stop = new AbortController();
  stop.abort();
  await assert.rejects(calibrate(job(model, "lora-one", { signal: stop.signal })), InterruptedError);
  assertUntouched(model);
  await assert.rejects(calibrate(job(model, "olora")), /--init olora reads no calibration data/);
  await assert.rejects(
    calibrate(job(model, "eva", { rank: 400 })),
    /eva needs at least 800 answer tokens in a calibration batch \(2 × `loraRank`\), but the largest has \d+: raise `batchSize`/,
  );
});
