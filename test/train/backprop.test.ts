import assert from "node:assert/strict";
import { test } from "node:test";
import { parseModelConfig } from "../../src/hf/config.js";
import { randomCausalLM } from "../../src/model/loader.js";
import { addLora, loraParameters } from "../../src/model/lora.js";
import * as torch from "../../src/torch/index.js";
import { type RecomputePolicy, evaluationLoss, countingGradients, gradientsAbove, lossAndBackward } from "../../src/train/backprop.js";
import { packedBatch, paddedBatch } from "../../src/train/batches.js";
import { assertClose, device, settledMemory, tinyQwen2, values } from "../helpers.js";

const config = parseModelConfig(tinyQwen2({ num_hidden_layers: 3 }));
const sample = (ids: number[], promptLen: number) => ({ ids, lossMask: ids.map((_, i) => i >= promptLen), truncated: false });
const samples = [sample([1, 2, 3, 4, 5, 6, 7], 3), sample([9, 8, 7, 6], 1), sample([11, 12, 13, 14, 15, 16, 17, 18, 19, 20], 4)];

function setup(dropout = 0) {
  torch.manualSeed(3);
  const model = randomCausalLM(config, { device, std: 0.2 });
  const loras = addLora(model, { rank: 4, alpha: 8, dropout, targets: "all-linear" }, "gaussian");
  // Non-zero B, so every factor gets a gradient.
  torch.noGrad(() => {
    for (const l of loras.values()) l.B.normal_(0, 0.1);
  });
  return { model, params: loraParameters(loras) };
}

const gradsOf = (params: torch.Tensor[]) => params.flatMap((p) => values(p.grad!));

function reference(dropout = 0, seed = 7) {
  const { model, params } = setup(dropout);
  const b = paddedBatch(samples, 0, device);
  torch.manualSeed(seed);
  const loss = model.loss(b.ids, b.labels, b.options);
  loss.mul(0.5).backward();
  return { loss: loss.item(), grads: gradsOf(params) };
}

for (const policy of ["none", "all", { keepLayers: 1 }] as RecomputePolicy[]) {
  test(`lossAndBackward (recompute ${JSON.stringify(policy)}) matches autograd through model.loss, padded and packed`, () => {
    const want = reference();
    for (const packed of [false, true]) {
      const { model, params } = setup();
      const b = packed ? packedBatch(samples, device) : paddedBatch(samples, 0, device);
      const r = lossAndBackward(model, b, { recompute: policy, gradScale: 0.5, lossChunk: 5 });
      assert.equal(r.recomputed, policy === "none" ? 0 : policy === "all" ? 3 : 2);
      assert.ok(Math.abs(r.loss.item() - want.loss) < 1e-5, `loss ${r.loss.item()} vs ${want.loss}`);
      assertClose(gradsOf(params), want.grads, 1e-6, 1e-4, `grads (packed ${packed})`);
    }
  });
}

test("recomputed layers replay the LoRA dropout masks of the first pass", () => {
  const want = reference(0.3, 11);
  const { model, params } = setup(0.3);
  const b = paddedBatch(samples, 0, device);
  torch.manualSeed(11);
  const r = lossAndBackward(model, b, { recompute: "all", gradScale: 0.5 });
  assert.ok(Math.abs(r.loss.item() - want.loss) < 1e-5);
  assertClose(gradsOf(params), want.grads, 1e-6, 1e-4, "grads");
  // And dropout really is on: another seed gives other gradients.
  const other = reference(0.3, 12);
  assert.notDeepEqual(other.grads, want.grads);
});

test("a batch without target tokens is refused", () => {
  const { model } = setup();
  const b = paddedBatch([sample([1, 2, 3], 3)], 0, device);
  assert.throws(() => lossAndBackward(model, b), /no target tokens/);
});

test("lossAndBackward leaves no tensors behind but the gradients", () => {
  const { model, params } = setup();
  const b = paddedBatch(samples, 0, device);
  lossAndBackward(model, b, { recompute: { keepLayers: 2 } }).loss.dispose();
  const before = torch.memory().count;
  for (const p of params) p.grad = null;
  lossAndBackward(model, b, { recompute: { keepLayers: 2 } }).loss.dispose();
  assert.equal(torch.memory().count, before);
});

test("a backward that fails part-way leaves nothing behind: the recomputed layers' saved dropout states are freed too", async () => {
  const { model, params } = setup(0.1);
  const b = paddedBatch(samples, 0, device);
  const before = await settledMemory();
  const fail = () => {
    throw new Error("stop here");
  };
  assert.throws(() => lossAndBackward(model, b, { recompute: "all", onLayersDone: fail }), /stop here/);
  for (const p of params) p.grad = null;
  assert.deepEqual(torch.memory(), before, "nothing left for the garbage collector to find");
});

test("evaluationLoss equals model.loss, padded and packed, in small loss chunks", () => {
  const { model } = setup();
  const want = torch.noGrad(() => {
    const b = paddedBatch(samples, 0, device);
    return model.loss(b.ids, b.labels, b.options).item();
  });
  for (const b of [paddedBatch(samples, 0, device), packedBatch(samples, device)]) {
    const before = torch.memory().count;
    const got = evaluationLoss(model, b, 4);
    assert.ok(Math.abs(got.item() - want) < 1e-5, `${got.item()} vs ${want}`);
    got.dispose();
    assert.equal(torch.memory().count, before);
  }
});

test("under a memory budget, the gradients of the head and the layers after the last kept one are counted against it", () => {
  // Layers 0–3 with 5, 0, 7 and 11 bytes of gradients to come, the head 3: keeping layers up to 1
  // leaves 7 + 11 + 3 to be allocated by the time backward reaches them.
  assert.deepEqual(gradientsAbove([5, 0, 7, 11, 3], 4), [21, 21, 14, 3]);
  assert.deepEqual(gradientsAbove([5, 0, 7, 11], 4), [18, 18, 11, 0], "no head entry: nothing for it");
  assert.deepEqual(gradientsAbove([], 3), [0, 0, 0], "none given: nothing reserved");
});

test("countingGradients: each decoder layer's trainable weights, the head's (final norm, lm_head), an untied embedding left out", () => {
  const model = randomCausalLM(parseModelConfig(tinyQwen2()), { device });
  const weights = model.namedWeights();
  const p = countingGradients({ budgetBytes: 2 ** 30 }, model, weights);
  assert.ok(typeof p === "object" && "gradientBytes" in p);
  const bytesOf = (keep: (name: string) => boolean) =>
    [...weights].filter(([name]) => keep(name)).reduce((n, [, w]) => n + w.numel() * 4, 0);
  assert.deepEqual(p.gradientBytes, [
    ...model.layers.map((_, i) => bytesOf((name) => name.startsWith(`model.layers.${i}.`))),
    bytesOf((name) => name === "lm_head.weight" || name === "model.norm.weight"),
  ]);
  assert.equal(model.config.tieWordEmbeddings, false, "this embedding is untied (left out above)");
  assert.equal(countingGradients("all", model, weights), "all", "other policies as they are");
});
