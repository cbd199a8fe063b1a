import assert from "node:assert/strict";
import { test } from "node:test";
import { blockCausalMask } from "../../src/data/format.js";
import { loadCausalLM } from "../../src/model/loader.js";
import * as torch from "../../src/torch/index.js";
import { epochOrder, packedBatch, paddedBatch } from "../../src/train/batches.js";

const modelDir = new URL("../../../test/fixtures/golden/qwen2-tiny", import.meta.url).pathname;

const sample = (ids: number[], promptLen: number) => ({ ids, lossMask: ids.map((_, i) => i >= promptLen), truncated: false });

test("a packed batch gives the same loss as the padded batch of the same samples", () => {
  const model = loadCausalLM(modelDir);
  const samples = [sample([1, 2, 3, 4, 5, 6, 7], 3), sample([9, 8, 7, 6], 1), sample([11, 12, 13, 14, 15, 16, 17, 18, 19, 20], 4)];
  const padded = paddedBatch(samples, 0, "cpu");
  const packed = packedBatch(samples, "cpu");
  assert.equal(padded.targets, packed.targets);
  assert.equal(padded.targets, 4 + 3 + 6);
  assert.equal(packed.tokens, 21);
  assert.deepEqual(packed.options.positionIds!.toArray(), [[0, 1, 2, 3, 4, 5, 6, 0, 1, 2, 3, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9]]);
  const a = torch.noGrad(() => model.loss(padded.ids, padded.labels, padded.options).item());
  const b = torch.noGrad(() => model.loss(packed.ids, packed.labels, packed.options).item());
  assert.ok(Math.abs(a - b) < 1e-5, `padded ${a} vs packed ${b}`);
});

test("a packed row for flash attention is padded to the length multiple by a sequence of its own that predicts nothing", () => {
  const model = loadCausalLM(modelDir);
  const samples = [sample([1, 2, 3, 4, 5, 6, 7], 3), sample([9, 8, 7, 6], 1), sample([11, 12, 13, 14, 15, 16, 17, 18, 19, 20], 4)];
  const plain = packedBatch(samples, "cpu", true, { padId: 5, lengthMultiple: 1 });
  const padded = packedBatch(samples, "cpu", true, { padId: 5, lengthMultiple: 8 });
  assert.equal(plain.ids.size(1), 21);
  assert.equal(padded.ids.size(1), 24);
  assert.deepEqual((padded.ids.toArray() as number[][])[0].slice(21), [5, 5, 5]);
  assert.deepEqual((padded.options.positionIds!.toArray() as number[][])[0].slice(19), [8, 9, 0, 1, 2]);
  assert.deepEqual(padded.options.packed!.cuSeqlens.toArray(), [0, 7, 11, 21, 24]);
  assert.deepEqual(plain.options.packed!.cuSeqlens.toArray(), [0, 7, 11, 21]);
  assert.equal(padded.options.packed!.maxSeqlen, 10);
  // The same real tokens and targets: the padding counts in neither.
  assert.equal(padded.tokens, 21);
  assert.equal(padded.targets, plain.targets);
  assert.deepEqual(padded.targetIds.toArray(), plain.targetIds.toArray());
  assert.deepEqual(padded.targetIndex.toArray(), plain.targetIndex.toArray());
  // A row already at a multiple is left alone; without flash attention nothing is padded.
  assert.equal(packedBatch(samples, "cpu", true, { padId: 5, lengthMultiple: 7 }).ids.size(1), 21);
  assert.equal(packedBatch(samples, "cpu", false, { padId: 5, lengthMultiple: 8 }).ids.size(1), 21);
  // The block-causal layout the CPU runs gives the same loss padded as not (the padding sees only itself).
  const mask = (b: typeof plain) => {
    const T = b.ids.size(1);
    const cu = b.options.packed!.cuSeqlens.toArray() as number[];
    return torch.fromBytes(blockCausalMask(cu), [1, 1, T, T], "bool", "cpu");
  };
  const loss = (b: typeof plain) =>
    torch.noGrad(() => model.loss(b.ids, b.labels, { positionIds: b.options.positionIds, mask: mask(b) }).item());
  assert.ok(Math.abs(loss(plain) - loss(padded)) < 1e-6, `${loss(plain)} vs ${loss(padded)}`);
});

test("epoch order is a seeded permutation that changes between epochs", () => {
  const a = epochOrder(20, 42, 0);
  assert.deepEqual(
    [...a].sort((x, y) => x - y),
    Array.from({ length: 20 }, (_, i) => i),
  );
  assert.deepEqual(epochOrder(20, 42, 0), a);
  assert.notDeepEqual(epochOrder(20, 42, 1), a);
  assert.notDeepEqual(epochOrder(20, 43, 0), a);
});
