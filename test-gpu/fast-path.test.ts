// The CUDA training fast path against the plain path it replaces: packed flash attention, the
// fused AdamW kernel, and lossAndBackward with packing and gradient checkpointing in bf16.
import assert from "node:assert/strict";
import { test } from "node:test";
import { parseModelConfig } from "../src/hf/config.js";
import { randomCausalLM } from "../src/model/loader.js";
import { addLora, loraParameters } from "../src/model/lora.js";
import * as torch from "../src/torch/index.js";
import { lossAndBackward } from "../src/train/backprop.js";
import { makeBatch, packedBatch, paddedBatch, usesFlashPacking } from "../src/train/batches.js";
import { AdamW } from "../src/train/optim.js";
import { trainEveryWeight } from "../src/train/trainer.js";
import { assertClose, values } from "../test/helpers.js";

const cuda = "cuda:0";
const maxAbs = (a: number[], b: number[]) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);

test("this build has the fast CUDA kernels", () => {
  assert.equal(torch.fastKernelsAvailable(), true);
});

test("RMSNorm on CUDA in bf16 (ATen's fused kernels where PyTorch has them) matches the float64 formula, forward and backward", () => {
  torch.manualSeed(9);
  const x64 = torch.randn([3, 37, 256], { dtype: "float64" }).mul(3);
  const w64 = torch.randn([256], { dtype: "float64" }).mul(0.5).add(1);
  const dy64 = torch.randn([3, 37, 256], { dtype: "float64" });
  const run = (x0: torch.Tensor, w0: torch.Tensor, dy: torch.Tensor) => {
    const x = x0.detach().requiresGrad_();
    const w = w0.detach().requiresGrad_();
    const y = torch.rmsNorm(x, w, 1e-6);
    y.backward(dy);
    return [y, x.grad!, w.grad!].map((t) => values(t.to("float32").to("cpu")));
  };
  const ref = run(x64, w64, dy64);
  const got = run(x64.to("bfloat16").to(cuda), w64.to("bfloat16").to(cuda), dy64.to("bfloat16").to(cuda));
  ["output", "input gradient", "weight gradient"].forEach((what, i) => {
    const scale = ref[i].reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    const diff = maxAbs(got[i], ref[i]) / scale;
    // bf16 inputs hold 8 bits: their rounding alone moves the results by up to ~1 % of the largest
    assert.ok(diff < 0.02, `${what}: max difference ${diff} of the largest value`);
    assert.ok(scale > 0.1, `${what}: nothing to compare (${scale})`);
  });
});

test("packed flash attention equals causal SDPA run on each sample alone, forward and backward", () => {
  torch.manualSeed(4);
  const lens = [5, 17, 9],
    H = 8,
    Hkv = 2,
    D = 64,
    T = 31;
  const q = torch.randn([T, H, D], { device: cuda }).to("bfloat16").requiresGrad_();
  const k = torch.randn([T, Hkv, D], { device: cuda }).to("bfloat16").requiresGrad_();
  const v = torch.randn([T, Hkv, D], { device: cuda }).to("bfloat16").requiresGrad_();
  const w = torch.randn([T, H, D], { device: cuda });
  const cu = torch.tensor([0, 5, 22, 31], { dtype: "int32", device: cuda });
  const out = torch.flashAttentionVarlen(q, k, v, cu, 17);
  out.float().mul(w).sum().backward();
  const got = [out, q.grad!, k.grad!, v.grad!].map((t) => values(t.float()));
  const [q2, k2, v2] = [q, k, v].map((t) => t.detach().float().requiresGrad_());
  let at = 0;
  const parts = lens.map((n) => {
    const sl = (t: torch.Tensor) => t.narrow(0, at, n).transpose(0, 1).unsqueeze(0); // [1, H, n, D]
    const y = torch.scaledDotProductAttention(sl(q2), sl(k2), sl(v2), { causal: true }).squeeze(0).transpose(0, 1);
    at += n;
    return y;
  });
  const ref = torch.cat(parts, 0);
  ref.mul(w).sum().backward();
  const want = [ref, q2.grad!, k2.grad!, v2.grad!].map((t) => values(t));
  got.forEach((g, i) => {
    assert.ok(maxAbs(g, want[i]) < 0.06, `tensor ${i}: max abs diff ${maxAbs(g, want[i])}`);
  });
});

test("fused AdamW takes the same steps as the op-by-op AdamW", () => {
  torch.manualSeed(5);
  const make = () => [torch.randn([16, 32], { device: cuda }), torch.randn([32, 4], { device: cuda })].map((t) => t.requiresGrad_());
  const a = make();
  const b = a.map((t) => t.detach().clone().requiresGrad_());
  const fused = new AdamW(a, { lr: 1e-2, weightDecay: 0.1, fused: true });
  const plain = new AdamW(b, { lr: 1e-2, weightDecay: 0.1, fused: false });
  for (let s = 0; s < 5; s++) {
    const grads = a.map((p) => torch.randn(p.shape, { device: cuda }));
    a.forEach((p, i) => {
      p.grad = grads[i];
    });
    b.forEach((p, i) => {
      p.grad = grads[i].clone();
    });
    fused.step();
    plain.step();
  }
  a.forEach((p, i) => {
    assertClose(values(p), values(b[i]), 1e-6, 1e-5, `param ${i}`);
  });
  assert.equal(fused.stepCount(0), 5);
});

test("AdamW.stepAll: fused optimizers with the same hyperparameters share the kernel's calls and take the steps they take alone", () => {
  torch.manualSeed(6);
  const make = () => [torch.randn([16, 32], { device: cuda }), torch.randn([32, 4], { device: cuda })].map((t) => t.requiresGrad_());
  // Three optimizers (two at one learning rate, one at another), stepped together and alone.
  const together = [make(), make(), make()];
  const alone = together.map((ps) => ps.map((t) => t.detach().clone().requiresGrad_()));
  const lrs = [1e-2, 1e-2, 3e-3];
  const opts = (ps: torch.Tensor[][]) => ps.map((p, k) => new AdamW(p, { lr: lrs[k], weightDecay: 0.1, fused: true }));
  const [shared, single] = [opts(together), opts(alone)];
  for (let s = 0; s < 3; s++) {
    together.forEach((ps, k) =>
      ps.forEach((p, i) => {
        const g = torch.randn(p.shape, { device: cuda });
        p.grad = g;
        alone[k][i].grad = g.clone();
      }),
    );
    AdamW.stepAll(shared);
    for (const o of single) o.step();
  }
  together.forEach((ps, k) => ps.forEach((p, i) => assert.deepEqual(values(p), values(alone[k][i]), `optimizer ${k}, param ${i}`)));
  assert.deepEqual(
    shared.map((o) => o.stepCount(1)),
    [3, 3, 3],
  );
});

test("bf16 lossAndBackward: packed flash (its row padded or not) + checkpointing agree with the padded plain path", () => {
  const config = parseModelConfig({
    model_type: "qwen2",
    hidden_size: 256,
    intermediate_size: 512,
    num_hidden_layers: 4,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    vocab_size: 1000,
    max_position_embeddings: 512,
    rope_theta: 10000,
    rms_norm_eps: 1e-6,
    tie_word_embeddings: false,
  });
  const samples = [40, 130, 77, 9].map((n, j) => ({
    ids: Array.from({ length: n }, (_, i) => (i * 31 + j * 7) % 1000),
    lossMask: Array(n).fill(true),
    truncated: false,
  }));
  // 256 tokens: a multiple of 64 is not padded, one of 100 gets a 44-token padding sequence.
  const run = (packed: boolean, recompute: "none" | "all", lengthMultiple = 64) => {
    torch.manualSeed(6);
    const model = randomCausalLM(config, { dtype: "bfloat16", device: cuda, std: 0.05 });
    const loras = addLora(model, { rank: 8, alpha: 16, targets: "all-linear" }, "gaussian");
    torch.noGrad(() => {
      for (const l of loras.values()) l.B.normal_(0, 0.02);
    });
    const b = packed ? packedBatch(samples, cuda, true, { padId: 0, lengthMultiple }) : paddedBatch(samples, 0, cuda);
    if (packed) assert.equal(b.ids.size(1), lengthMultiple === 100 ? 300 : 256);
    const loss = lossAndBackward(model, b, { recompute }).loss.item();
    return { loss, grads: loraParameters(loras).flatMap((p) => values(p.grad!)) };
  };
  const ref = run(false, "none");
  for (const [packed, ckpt, multiple] of [
    [true, "none", 64],
    [true, "none", 100],
    [true, "all", 100],
    [false, "all", 64],
  ] as const) {
    const r = run(packed, ckpt, multiple);
    assert.ok(Math.abs(r.loss - ref.loss) / ref.loss < 2e-3, `loss ${r.loss} vs ${ref.loss}`);
    const scale = ref.grads.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    const diff = maxAbs(r.grads, ref.grads) / scale;
    assert.ok(diff < 0.03, `packed ${packed} ckpt ${ckpt} multiple ${multiple}: max grad diff ${diff} of the largest gradient`);
  }
});

test("a memory budget recomputes layers only when the budget is tight", () => {
  const config = parseModelConfig({
    model_type: "qwen2",
    hidden_size: 1024,
    intermediate_size: 4096,
    num_hidden_layers: 8,
    num_attention_heads: 8,
    num_key_value_heads: 2,
    vocab_size: 2000,
    max_position_embeddings: 4096,
    rope_theta: 10000,
    rms_norm_eps: 1e-6,
    tie_word_embeddings: false,
  });
  torch.manualSeed(7);
  const model = randomCausalLM(config, { dtype: "bfloat16", device: cuda });
  addLora(model, { rank: 8, alpha: 16, targets: ["q_proj", "v_proj"] }, "random");
  const samples = [1000, 1000].map((n) => ({
    ids: Array.from({ length: n }, (_, i) => i % 2000),
    lossMask: Array(n).fill(true),
    truncated: false,
  }));
  const b = packedBatch(samples, cuda, true);
  const base = torch.cuda.memory().allocated;
  const roomy = lossAndBackward(model, b, { recompute: { budgetBytes: base + 8 * 2 ** 30 } });
  roomy.loss.dispose();
  torch.cuda.resetPeakMemory();
  const tight = lossAndBackward(model, b, { recompute: { budgetBytes: base + 300 * 2 ** 20 } });
  tight.loss.dispose();
  const peak = torch.cuda.memory().peakAllocated;
  assert.equal(roomy.recomputed, 0);
  assert.ok(tight.recomputed >= 4, `recomputed ${tight.recomputed}`);
  assert.ok(peak <= base + 300 * 2 ** 20 + 64 * 2 ** 20, `peak ${(peak - base) / 2 ** 20} MiB over the weights`);
});

test("packed batches use the flash kernel only for 16-bit models: a float32 model trains on packed batches on CUDA", () => {
  assert.equal(usesFlashPacking(cuda, "float32"), false);
  assert.equal(usesFlashPacking(cuda, "bfloat16"), torch.fastKernelsAvailable());
  assert.equal(usesFlashPacking("cpu", "bfloat16"), false);
  const config = parseModelConfig({
    model_type: "qwen2",
    hidden_size: 64,
    intermediate_size: 128,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    vocab_size: 100,
    max_position_embeddings: 128,
    rope_theta: 10000,
    rms_norm_eps: 1e-6,
    tie_word_embeddings: false,
  });
  const samples = [12, 30].map((n) => ({
    ids: Array.from({ length: n }, (_, i) => i % 100),
    lossMask: Array(n).fill(true),
    truncated: false,
  }));
  torch.manualSeed(8);
  const model = randomCausalLM(config, { dtype: "float32", device: cuda });
  trainEveryWeight(model);
  const packed = lossAndBackward(model, makeBatch(samples, { padId: 0, device: cuda, packing: true, dtype: "float32" }), {
    recompute: "none",
  });
  const padded = lossAndBackward(model, makeBatch(samples, { padId: 0, device: cuda, packing: false, dtype: "float32" }), {
    recompute: "none",
  });
  assert.ok(Math.abs(packed.loss.item() - padded.loss.item()) < 1e-4, `packed ${packed.loss.item()} vs padded ${padded.loss.item()}`);
});
