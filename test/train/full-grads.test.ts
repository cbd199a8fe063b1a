// Training every weight (a full fine-tune): lossAndBackward, with and without recomputation and in
// small loss chunks, gives every weight its gradient — the embeddings, lm_head (by hand, beside the
// chunked loss) and tied embeddings (both contributions in one tensor) — the same as autograd
// through the whole model, and the same as transformers (golden files of
// scripts/golden/make_full_grads.py). Its steps leave no tensor behind.
import assert from "node:assert/strict";
import fs from "node:fs";
import { test } from "node:test";
import { loadSafetensors } from "../../src/hf/safetensors.js";
import { loadCausalLM } from "../../src/model/loader.js";
import * as torch from "../../src/torch/index.js";
import { type RecomputePolicy, lossAndBackward } from "../../src/train/backprop.js";
import { paddedBatch } from "../../src/train/batches.js";
import { singleProcess } from "../../src/train/data-parallel.js";
import { AdamW } from "../../src/train/optim.js";
import { optimizerStep, rankMicroBatch } from "../../src/train/step.js";
import { trainEveryWeight } from "../../src/train/trainer.js";
import { assertClose, settledMemory, values } from "../helpers.js";

const golden = (p: string) => new URL(`../../../test/fixtures/golden/${p}`, import.meta.url).pathname;

// Two samples, the first with a 4-token prompt, the second with a 2-token prompt and 8 tokens in all.
const raw = [
  [17, 250, 3, 99, 42, 7, 7, 11, 12, 13, 14, 15],
  [8, 9, 100, 200, 30, 40, 50, 60],
];
const samples = raw.map((ids, i) => ({ ids, lossMask: ids.map((_, t) => t >= (i === 0 ? 4 : 2)), truncated: false }));

type Sample = (typeof samples)[number];

function gradients(kind: string, how: "autograd" | RecomputePolicy, batch: Sample[] = samples): Map<string, number[]> {
  const model = loadCausalLM(golden(`${kind}-tiny`));
  const params = trainEveryWeight(model);
  const b = paddedBatch(batch, 0, "cpu");
  if (how === "autograd") model.loss(b.ids, b.labels).backward();
  else lossAndBackward(model, b, { recompute: how, lossChunk: 5 }).loss.dispose();
  const out = new Map([...params].map(([name, p]) => [name, values(p.grad!)]));
  torch.dispose([...params.values()]);
  return out;
}

for (const kind of ["qwen2", "llama"]) {
  test(`${kind}: every weight's gradient from the fast path equals autograd through the whole model`, () => {
    const want = gradients(kind, "autograd");
    assert.ok(want.has("model.embed_tokens.weight") && want.has("model.norm.weight"));
    assert.equal(want.has("lm_head.weight"), kind === "qwen2", "Llama ties lm_head to the embeddings");
    for (const policy of ["none", "all"] as RecomputePolicy[]) {
      const got = gradients(kind, policy);
      assert.deepEqual([...got.keys()], [...want.keys()]);
      for (const [name, g] of got) assertClose(g, want.get(name)!, 1e-6, 1e-4, `${policy}: ${name}`);
    }
  });

  const file = golden(`full-grads/${kind}.safetensors`);
  test(`${kind}: every weight's gradient matches transformers`, {
    skip: !fs.existsSync(file) && "no golden file: run scripts/golden/make_full_grads.py",
  }, () => {
    const e = loadSafetensors(file);
    // The golden batch as samples: real tokens up to the first padded label of the right-padded row; targets where labels ≠ −100.
    const rows = (name: string) => (e.get(name)!.toArray() as (number | bigint)[][]).map((r) => r.map(Number));
    const [ids, labels] = [rows("input_ids"), rows("labels")];
    const lengths = [12, 8];
    const batch = ids.map((row, i) => ({
      ids: row.slice(0, lengths[i]),
      lossMask: labels[i].slice(0, lengths[i]).map((l) => l !== -100),
      truncated: false,
    }));
    const got = gradients(kind, "none", batch);
    for (const [name, g] of got) {
      const ref = e.get(`grad.${name}`);
      assert.ok(ref, `the golden file has ${name}`);
      assertClose(g, values(ref), 1e-6, 1e-4, name);
    }
    torch.dispose(e);
  });
}

test("full fine-tune steps leave no tensor behind: the same live tensors after every step, and none once freed", async () => {
  const before = await settledMemory();
  const model = loadCausalLM(golden("llama-tiny")); // tied: lm_head's gradient by hand joins the embeddings' from autograd
  const params = trainEveryWeight(model);
  const optimizer = new AdamW([...params.values()]);
  const micro = [rankMicroBatch(samples, 1, singleProcess("cpu"), { padId: 0, device: "cpu", packing: false, dtype: "float32" })];
  // Each step under another recomputation policy, with the gradients clipped.
  const live = (["none", { keepLayers: 1 }, "all"] as RecomputePolicy[]).map((recompute) => {
    assert.ok(optimizerStep(model, optimizer, micro, { recompute, lr: 1e-3, maxGradNorm: 1e-3 }).updated);
    return torch.memory();
  });
  assert.deepEqual(live, [live[0], live[0], live[0]], "live tensors at each step");
  optimizer.dispose();
  torch.dispose([...params.values()]);
  assert.deepEqual(torch.memory(), before, "live tensors before and after");
});
