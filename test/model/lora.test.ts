import assert from "node:assert/strict";
import { test } from "node:test";
import { loadCausalLM } from "../../src/model/loader.js";
import { moduleInit } from "../../src/lowrank/inits/index.js";
import { addLora, mergeLora } from "../../src/model/lora.js";
import * as torch from "../../src/torch/index.js";
import { values } from "../helpers.js";

const modelDir = new URL("../../../test/fixtures/golden/qwen2-tiny", import.meta.url).pathname;
const ids = () => torch.tensor([[5, 17, 250, 3, 99, 42, 7, 7]], { dtype: "int64" });
const maxDiff = (a: torch.Tensor, b: torch.Tensor) => torch.tidy(() => a.sub(b).abs().max().item());

test("random init: A within ±1/√in, B = 0, so the model is unchanged", () => {
  const model = loadCausalLM(modelDir);
  const before = torch.noGrad(() => model.forward(ids()));
  torch.manualSeed(0);
  const loras = addLora(model, { rank: 8, alpha: 16, targets: ["q_proj", "v_proj"] }, "random");
  assert.equal(loras.size, 4);
  for (const [path, l] of loras) {
    const bound = 1 / Math.sqrt(64);
    assert.ok(
      values(l.A).every((v) => Math.abs(v) <= bound),
      path,
    );
    assert.ok(
      values(l.A.abs()).some((v) => v > bound / 2),
      "A is not all small",
    );
    assert.ok(values(l.B).every((v) => v === 0));
    assert.equal(l.scaling, 2);
    assert.equal(l.A.requiresGrad, true);
  }
  assert.equal(
    maxDiff(
      torch.noGrad(() => model.forward(ids())),
      before,
    ),
    0,
  );
});

test("gaussian init has std 1/r; rsLoRA scales by α/√r; all-linear adapts the seven projections", () => {
  const model = loadCausalLM(modelDir);
  torch.manualSeed(1);
  const loras = addLora(model, { rank: 4, alpha: 8, rslora: true, targets: "all-linear" }, "gaussian");
  assert.equal(loras.size, 2 * 7);
  const a = values(loras.get("model.layers.0.mlp.gate_proj")!.A);
  const std = Math.sqrt(a.reduce((s, v) => s + v * v, 0) / a.length);
  assert.ok(Math.abs(std - 0.25) < 0.03, `std ${std}`);
  assert.equal(loras.get("model.layers.1.self_attn.o_proj")!.scaling, 8 / 2);
});

test("merging an adapter gives the same logits as running it beside the weights", () => {
  const model = loadCausalLM(modelDir);
  torch.manualSeed(2);
  const loras = addLora(model, { rank: 4, alpha: 4, targets: ["q_proj", "v_proj", "down_proj"] }, "random");
  for (const l of loras.values()) torch.noGrad(() => l.B.normal_(0, 0.05));
  const adapted = torch.noGrad(() => model.forward(ids()));
  const base = loadCausalLM(modelDir);
  assert.ok(
    maxDiff(
      adapted,
      torch.noGrad(() => base.forward(ids())),
    ) > 1e-3,
    "the adapter changes the output",
  );
  assert.equal(mergeLora(model), 6);
  assert.ok(
    maxDiff(
      torch.noGrad(() => model.forward(ids())),
      adapted,
    ) < 1e-5,
  );
});

test("PiSSA init keeps the model's function: residual weight + s·B·A = W", () => {
  const model = loadCausalLM(modelDir);
  const before = torch.noGrad(() => model.forward(ids()));
  const w0 = model.linears().get("model.layers.0.self_attn.q_proj")!.weight.clone();
  const loras = addLora(
    model,
    { rank: 8, alpha: 16, targets: ["q_proj", "v_proj"] },
    moduleInit({ name: "pissa" }, { rank: 8, alpha: 16 }),
  );
  const l = loras.get("model.layers.0.self_attn.q_proj")!;
  const w = model.linears().get("model.layers.0.self_attn.q_proj")!.weight;
  assert.ok(maxDiff(w.add(l.delta()), w0) < 1e-5);
  assert.ok(maxDiff(w, w0) > 1e-2, "the base weight became a residual");
  assert.ok(
    maxDiff(
      torch.noGrad(() => model.forward(ids())),
      before,
    ) < 1e-4,
  );
  // The factors hold the top singular directions: ‖s·B·A‖ equals the norm of the top-8 spectrum.
  const top = values(torch.svdvals(w0)).slice(0, 8);
  const norm = Math.sqrt(top.reduce((s, v) => s + v * v, 0));
  assert.ok(Math.abs(l.delta().norm().item() - norm) / norm < 1e-4);
});

test("LoRA settings are validated with clear messages", () => {
  const model = loadCausalLM(modelDir);
  assert.throws(
    () => addLora(model, { rank: 65, alpha: 16, targets: ["q_proj"] }, "random"),
    /rank 65 is larger than model\.layers\.0\.self_attn\.q_proj allows \(min\(in 64, out 64\) = 64\)/,
  );
  assert.throws(() => addLora(model, { rank: 0, alpha: 16, targets: ["q_proj"] }, "random"), /rank must be a positive integer/);
  assert.throws(() => addLora(model, { rank: 4, alpha: 0, targets: ["q_proj"] }, "random"), /alpha must be > 0/);
  assert.throws(() => addLora(model, { rank: 4, alpha: 4, targets: ["qq_proj"] }, "random"), /no module matches the LoRA targets/);
});

test("greedy generation with the key/value cache equals argmax decoding without it", () => {
  const model = loadCausalLM(modelDir);
  const prompt = [5, 17, 250, 3, 99];
  const cached = model.generate(prompt, { maxNewTokens: 8, stopTokenIds: [] });
  const plain: number[] = [];
  const seq = [...prompt];
  for (let i = 0; i < 8; i++) {
    const next = torch.noGrad(() =>
      torch.tidy(() =>
        model
          .forward(torch.tensor([seq], { dtype: "int64" }))
          .select(1, seq.length - 1)
          .argmax(-1)
          .item(),
      ),
    );
    plain.push(next);
    seq.push(next);
  }
  assert.deepEqual(cached, plain);
  assert.equal(model.generate(prompt, { maxNewTokens: 8, stopTokenIds: [plain[2]] }).length, 2);
});
