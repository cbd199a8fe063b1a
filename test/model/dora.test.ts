// DoRA (PEFT's use_dora): the layer g ⊙ (W + s·B·A) x + b with g = m / ‖W + s·B·A‖ per output row.
// Against PEFT on the golden fixture scripts/golden/make_dora.py makes (skipped while it is absent):
// the magnitude PEFT starts from, and the first training step's loss and every gradient (A, B, m)
// of one prompt-masked, right-padded batch through svdlora's training pass, within 1e-5 in fp32.
// Without the fixture: the identities DoRA rests on, on the tiny golden Qwen2.
import assert from "node:assert/strict";
import fs from "node:fs";
import { test } from "node:test";
import { loadAdapter, loraScale } from "../../src/hf/peft.js";
import { loadSafetensors } from "../../src/hf/safetensors.js";
import { loadCausalLM } from "../../src/model/loader.js";
import { addLora, loadLora, mergeLora } from "../../src/model/lora.js";
import * as torch from "../../src/torch/index.js";
import { lossAndBackward } from "../../src/train/backprop.js";
import { paddedBatch } from "../../src/train/batches.js";
import { values } from "../helpers.js";

const golden = (p: string) => new URL(`../../../test/fixtures/golden/${p}`, import.meta.url).pathname;
const fixture = golden("qwen2-tiny-dora");
const ABSENT =
  "the DoRA fixture is absent: run `python3 scripts/golden/make_dora.py test/fixtures/golden/qwen2-tiny-dora` where torch, transformers and peft are installed, and commit it";
const maxDiff = (a: torch.Tensor, b: torch.Tensor) =>
  torch.tidy(() =>
    a
      .sub(b.to({ device: a.device }))
      .abs()
      .max()
      .item(),
  );
const ids = () => torch.tensor([[5, 17, 250, 3, 99, 42, 7, 7]], { dtype: "int64" });

test("DoRA matches PEFT: the starting magnitude, the first step's loss and the gradients of A, B and m (fp32, ≤ 1e-5)", {
  skip: fs.existsSync(`${fixture}/expected.safetensors`) ? false : ABSENT,
}, (t) => {
  const e = loadSafetensors(`${fixture}/expected.safetensors`);
  const { config, weights } = loadAdapter(fixture);
  assert.equal(config.use_dora, true);

  // The magnitude PEFT starts from, from the same A and B on the same base.
  const fresh = loadCausalLM(golden("qwen2-tiny"));
  const started = addLora(
    fresh,
    { rank: config.r, alpha: config.lora_alpha, targets: ["q_proj", "v_proj", "down_proj"], dora: true },
    (path) => ({
      A: weights.get(path)!.A,
      B: weights.get(path)!.B,
    }),
  );
  let worstStart = 0;
  for (const [path, l] of started) worstStart = Math.max(worstStart, maxDiff(l.magnitude!, e.get(`init_magnitude.${path}`)!));
  assert.ok(worstStart <= 1e-5, `starting magnitude max |Δ| ${worstStart}`);

  const model = loadCausalLM(golden("qwen2-tiny"));
  const loras = loadLora(model, config, weights);
  assert.equal(loras.size, 6);
  const labels = values(e.get("labels")!);
  const mask = values(e.get("attention_mask")!);
  const T = e.get("input_ids")!.shape[1];
  const samples = [0, 1].map((b) => {
    const length = mask.slice(b * T, (b + 1) * T).filter((m) => m === 1).length;
    const row = values(e.get("input_ids")!).slice(b * T, b * T + length);
    return { ids: row, lossMask: labels.slice(b * T, b * T + length).map((l) => l !== -100), truncated: false };
  });
  const { loss } = lossAndBackward(model, paddedBatch(samples, 0, "cpu"));
  const dLoss = Math.abs(loss.item() - e.get("loss")!.item());
  assert.ok(dLoss <= 1e-5, `loss ${loss.item()} vs PEFT ${e.get("loss")!.item()}`);
  let worst = 0;
  let checked = 0;
  for (const [path, l] of loras)
    for (const [key, param] of [
      [`lora_A.weight`, l.A],
      [`lora_B.weight`, l.B],
      ["lora_magnitude_vector", l.magnitude!],
    ] as const) {
      const want = e.get(`grad.base_model.model.${path}.${key}`)!;
      const d = maxDiff(param.grad!, want);
      assert.ok(d <= 1e-5, `${path} ${key}: gradient max |Δ| ${d}`);
      worst = Math.max(worst, d);
      checked++;
    }
  assert.equal(checked, 18);
  t.diagnostic(
    `starting m max |Δ| ${worstStart.toExponential(2)}; loss |Δ| ${dLoss.toExponential(2)}; gradients max |Δ| ${worst.toExponential(2)}`,
  );
});

test("DoRA from B = 0 starts at the base model; m trains; the merged weight gives the layer's output", () => {
  const model = loadCausalLM(golden("qwen2-tiny"));
  const before = torch.noGrad(() => model.forward(ids()));
  torch.manualSeed(0);
  const loras = addLora(model, { rank: 4, alpha: 8, targets: ["q_proj", "v_proj", "down_proj"], dora: true }, "random");
  assert.ok(
    maxDiff(
      torch.noGrad(() => model.forward(ids())),
      before,
    ) < 1e-5,
    "g = 1 while s·B·A = 0",
  );
  const q = loras.get("model.layers.0.self_attn.q_proj")!;
  const W = model.linears().get("model.layers.0.self_attn.q_proj")!.weight;
  assert.ok(maxDiff(q.magnitude!, W.norm(2, 1)) < 1e-6, "m starts as the row norms of W");
  assert.ok(q.magnitude!.requiresGrad);

  // Move B and m off their start, then check y = g ⊙ (W + s·B·A) x + b against the layer.
  torch.noGrad(() => {
    for (const l of loras.values()) {
      l.B.copy_(torch.randn(l.B.shape).mul(0.05));
      l.magnitude!.mul_(torch.rand(l.magnitude!.shape).mul(0.2).add(0.9));
    }
  });
  const linear = model.linears().get("model.layers.0.self_attn.q_proj")!;
  const x = torch.randn([3, 64]);
  const sum = W.add(q.B.matmul(q.A).mul(loraScale(8, 4, false)));
  const want = torch.linear(x, sum.mul(q.magnitude!.div(sum.norm(2, 1)).unsqueeze(1)), linear.bias);
  assert.ok(
    maxDiff(
      torch.noGrad(() => linear.forward(x)),
      want,
    ) < 1e-5,
  );

  // m's gradient: dL/dm = Σ_rows dL/dy ⊙ (W + s·B·A) x / ‖W + s·B·A‖ (the norm is not differentiated).
  const y = linear.forward(x);
  y.sum().backward();
  const expected = torch.noGrad(() => torch.linear(x, sum).div(sum.norm(2, 1)).sum(0));
  assert.ok(maxDiff(q.magnitude!.grad!, expected) < 1e-5);

  const adapted = torch.noGrad(() => model.forward(ids()));
  assert.equal(mergeLora(model), 6);
  assert.ok(
    maxDiff(
      torch.noGrad(() => model.forward(ids())),
      adapted,
    ) < 1e-4,
    "merging DoRA keeps the output",
  );
});
