// Parity with the reference implementation: golden files made by transformers 5.17 and peft 0.21
// (scripts/golden/make_golden.py) for tiny random Qwen2 and Llama configs, checked in fp32 (on the
// GPU too with SVDLORA_TEST_DEVICE=cuda).
import assert from "node:assert/strict";
import { test } from "node:test";
import { loadAdapter } from "../../src/hf/peft.js";
import { loadSafetensors } from "../../src/hf/safetensors.js";
import { loadCausalLM } from "../../src/model/loader.js";
import { adapterConfigFor, loadLora, loraParameters } from "../../src/model/lora.js";
import * as torch from "../../src/torch/index.js";
import { lossAndBackward } from "../../src/train/backprop.js";
import { paddedBatch } from "../../src/train/batches.js";
import { device, values } from "../helpers.js";

const golden = (p: string) => new URL(`../../../test/fixtures/golden/${p}`, import.meta.url).pathname;

const maxAbsDiff = (a: torch.Tensor, b: torch.Tensor) =>
  torch.tidy(() =>
    a
      .sub(b.to({ device: a.device }))
      .abs()
      .max()
      .item(),
  );
const load = (dir: string) => loadCausalLM(golden(dir), { device });

for (const kind of ["qwen2", "llama"]) {
  test(`${kind}: logits of a tiny random model match transformers within 1e-4`, () => {
    const model = load(`${kind}-tiny`);
    const expected = loadSafetensors(golden(`${kind}-tiny/expected.safetensors`));
    const logits = torch.noGrad(() => model.forward(expected.get("input_ids")!.to({ device })));
    assert.deepEqual(logits.shape, expected.get("logits")!.shape);
    const diff = maxAbsDiff(logits, expected.get("logits")!);
    assert.ok(diff <= 1e-4, `max abs diff ${diff}`);
  });
}

test("a PEFT adapter loads with the same logits, loss and LoRA gradients as in peft", () => {
  const model = load("qwen2-tiny");
  const { config, weights } = loadAdapter(golden("qwen2-tiny-lora"));
  const loras = loadLora(model, config, weights);
  assert.equal(loras.size, 2 * 3); // 2 layers × q_proj, v_proj, down_proj
  const e = loadSafetensors(golden("qwen2-tiny-lora/expected.safetensors"));
  const ids = e.get("input_ids")!.to({ device }),
    labels = e.get("labels")!.to({ device });

  // Logits where the batch is not padding (padded positions differ by design: right padding
  // needs no mask under causal attention, so we do not compute the reference's masked rows).
  const logits = torch.noGrad(() => model.forward(ids));
  const real = e.get("attention_mask")!;
  const valid = values(real);
  const got = values(logits),
    want = values(e.get("logits")!);
  const V = logits.size(-1);
  let worst = 0;
  valid.forEach((m, pos) => {
    if (!m) return;
    for (let v = 0; v < V; v++) worst = Math.max(worst, Math.abs(got[pos * V + v] - want[pos * V + v]));
  });
  assert.ok(worst <= 1e-4, `logits max abs diff ${worst}`);

  const refLoss = e.get("loss")!.item();
  const checkGradients = (what: string) => {
    let checked = 0;
    for (const [path, lora] of loras) {
      for (const [factor, param] of [
        ["A", lora.A],
        ["B", lora.B],
      ] as const) {
        const ref = e.get(`grad.base_model.model.${path}.lora_${factor}.weight`)!;
        const rel = torch.tidy(() => param.grad!.to({ device: "cpu" }).sub(ref).norm().item() / ref.norm().item());
        assert.ok(rel <= 1e-4, `${what}: ${path} lora_${factor}: relative gradient error ${rel}`);
        checked++;
      }
    }
    assert.equal(checked, 12);
    for (const p of loraParameters(loras)) p.grad = null;
  };
  const loss = model.loss(ids, labels);
  assert.ok(Math.abs(loss.item() - refLoss) / refLoss <= 1e-4, `loss ${loss.item()} vs ${refLoss}`);
  loss.backward();
  checkGradients("model.loss");

  // The training path (chunked loss, gradient by hand, every layer recomputed) on the same samples.
  const idRows = values(e.get("input_ids")!),
    labelRows = values(e.get("labels")!),
    L = ids.size(1);
  const samples = valid.reduce<{ ids: number[]; lossMask: boolean[]; truncated: boolean }[]>((out, _, b) => {
    if (b % L !== 0) return out;
    const n = valid.slice(b, b + L).filter(Boolean).length;
    out.push({ ids: idRows.slice(b, b + n), lossMask: labelRows.slice(b, b + n).map((l) => l !== -100), truncated: false });
    return out;
  }, []);
  const r = lossAndBackward(model, paddedBatch(samples, 0, device), { recompute: "all", lossChunk: 3 });
  assert.ok(Math.abs(r.loss.item() - refLoss) / refLoss <= 1e-4, `lossAndBackward: loss ${r.loss.item()} vs ${refLoss}`);
  checkGradients("lossAndBackward");
  assert.equal(loraParameters(loras).length, 12);
  assert.equal(adapterConfigFor({ rank: 4, alpha: 8, targets: ["q_proj"] }, "x").r, 4);
});
