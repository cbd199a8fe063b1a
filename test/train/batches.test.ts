import assert from "node:assert/strict";
import { test } from "node:test";
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
