// Greedy decoding: a batch of prompts of different lengths (left-padded, padding masked, positions
// per prompt) gives each prompt exactly what it gives alone, and both agree with decoding by
// recomputing the whole sequence at every step without a cache.
import assert from "node:assert/strict";
import { test } from "node:test";
import { loadCausalLM } from "../../src/model/loader.js";
import * as torch from "../../src/torch/index.js";
import { settledMemory } from "../helpers.js";

const modelDir = new URL("../../../test/fixtures/golden/qwen2-tiny", import.meta.url).pathname;

/** Greedy decoding the slow way: the whole sequence through the model for every new token. */
function uncached(model: ReturnType<typeof loadCausalLM>, prompt: number[], n: number, stop: readonly number[]): number[] {
  const seq = [...prompt];
  const out: number[] = [];
  torch.noGrad(() => {
    while (out.length < n) {
      const next = torch.tidy(() => {
        const logits = model.forward(torch.tensor([seq], { dtype: "int64" }));
        return logits
          .select(1, seq.length - 1)
          .argmax(-1)
          .item();
      });
      if (stop.includes(next)) break;
      out.push(next);
      seq.push(next);
    }
  });
  return out;
}

test("a batch of prompts of different lengths decodes each as it decodes alone, and as recomputation without a cache does", () => {
  const model = loadCausalLM(modelDir);
  const prompts = [
    [5, 17, 250, 3, 99, 42, 7, 7, 11, 12, 13],
    [8, 9],
    [100, 200, 30, 40, 50],
  ];
  const stop = [7];
  const batch = model.generateBatch(prompts, { maxNewTokens: 10, stopTokenIds: stop, padId: 0 });
  for (const [i, p] of prompts.entries()) {
    assert.deepEqual(batch[i], model.generate(p, { maxNewTokens: 10, stopTokenIds: stop }), `prompt ${i}: batch vs alone`);
    assert.deepEqual(batch[i], uncached(model, p, 10, stop), `prompt ${i}: batch vs no cache`);
  }
  // The comparison means something only if the rows decoded tokens, of different lengths.
  assert.ok(
    batch.every((o) => o.length > 0),
    `every prompt decoded tokens: ${batch.map((o) => o.length)}`,
  );
  torch.dispose([...model.namedWeights().values()]);
});

test("decoding leaves no tensor behind: its masks and key/value cache are freed as it goes", async () => {
  const model = loadCausalLM(modelDir);
  const before = await settledMemory();
  const out = model.generateBatch(
    [
      [5, 17, 250, 3],
      [8, 9],
    ],
    { maxNewTokens: 4, stopTokenIds: [], padId: 0 },
  );
  assert.deepEqual(
    out.map((o) => o.length),
    [4, 4],
  );
  assert.deepEqual(torch.memory(), before);
  torch.dispose([...model.namedWeights().values()]);
});
