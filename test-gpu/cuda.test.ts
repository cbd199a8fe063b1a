// CUDA-only checks (the device-aware op tests also run on cuda via SVDLORA_TEST_DEVICE=cuda).
import assert from "node:assert/strict";
import { test } from "node:test";
import * as torch from "../src/torch/index.js";
import { assertClose, values } from "../test/helpers.js";

const cuda = "cuda:0";

test("a CUDA device is visible and named; memory statistics work before the first CUDA tensor", () => {
  assert.ok(torch.cuda.memory().allocated >= 0);
  assert.equal(torch.cuda.isAvailable(), true);
  const [d] = torch.cuda.devices();
  assert.ok(d.name.length > 0 && d.totalMemory > 1e9, JSON.stringify(d));
});

test("bf16 matmul on the GPU agrees with fp32 within bf16 rounding", () => {
  torch.manualSeed(1);
  const a = torch.randn([256, 512], { device: cuda });
  const b = torch.randn([512, 128], { device: cuda });
  const exact = values(a.matmul(b));
  const half = values(a.to("bfloat16").matmul(b.to("bfloat16")));
  // Inputs rounded to 8 mantissa bits: errors of about sqrt(512) * 2^-8 relative to unit entries.
  const maxErr = Math.max(...exact.map((v, i) => Math.abs(v - half[i])));
  assert.ok(maxErr < 1.0, `max abs error ${maxErr}`);
  assert.ok(maxErr > 0, "bf16 should differ from fp32 somewhere");
});

test("SDPA forward and backward in bf16 on the GPU match fp32 math", () => {
  torch.manualSeed(2);
  const shapeQ = [2, 8, 64, 64],
    shapeKV = [2, 2, 64, 64];
  const q32 = torch.randn(shapeQ, { device: cuda }),
    k32 = torch.randn(shapeKV, { device: cuda }),
    v32 = torch.randn(shapeKV, { device: cuda });
  const w = torch.randn(shapeQ, { device: cuda });
  const run = (dtype: torch.DType) => {
    const [q, k, v] = [q32, k32, v32].map((t) => t.to(dtype).detach().requiresGrad_());
    const out = torch.scaledDotProductAttention(q, k, v, { causal: true });
    out.float().mul(w).sum().backward();
    return [out, q.grad!, k.grad!, v.grad!].map((t) => values(t.float()));
  };
  const ref = run("float32");
  const bf = run("bfloat16");
  ["out", "dq", "dk", "dv"].forEach((name, i) => {
    const scale = Math.max(...ref[i].map(Math.abs));
    assertClose(bf[i], ref[i], 0.03 * scale, 0.03, name);
  });
});

test("CUDA memory statistics track allocations, peaks and the cache", () => {
  torch.cuda.synchronize();
  torch.cuda.emptyCache();
  torch.cuda.resetPeakMemory();
  const before = torch.cuda.memory();
  const t = torch.empty([1024, 1024], { device: cuda }); // 4 MiB
  const during = torch.cuda.memory();
  assert.equal(during.allocated - before.allocated, 4 * 2 ** 20);
  t.dispose();
  const after = torch.cuda.memory();
  assert.equal(after.allocated, before.allocated);
  assert.ok(after.peakAllocated >= before.allocated + 4 * 2 ** 20);
  assert.ok(after.reserved >= after.allocated);
  torch.cuda.emptyCache();
  assert.ok(torch.cuda.memory().reserved <= after.reserved);
});

test("CUDA seeding is reproducible", () => {
  torch.cuda.manualSeed(5);
  const a = values(torch.randn([16], { device: cuda }));
  torch.cuda.manualSeed(5);
  assert.deepEqual(values(torch.randn([16], { device: cuda })), a);
});

test("EVA's float64 step on the GPU (batched Cholesky QR, host eigenproblem) gives torch.svd_lowrank's result, and the CPU's", async () => {
  const { seededRandom, svdLowrank, svdLowrankRight } = await import("../src/lowrank/inits/index.js");
  torch.manualSeed(6);
  // 28 layers' stacked matrices of 7B-like shape (rows < features: the wide case), a decaying spectrum.
  const spread = torch.arange(0, 3584, 1, { dtype: "float64" }).add(1).rsqrt();
  const M = torch.randn([28, 1000, 3584], { dtype: "float64", device: cuda }).mul(spread.to(cuda));
  const want = svdLowrank(M, 64, 4, seededRandom(42));
  const got = svdLowrankRight(M, 64, 4, seededRandom(42));
  const cpu = svdLowrankRight(M.narrow(0, 0, 2).cpu(), 64, 4, seededRandom(42));
  const top = (t: torch.Tensor, dim: number) => t.narrow(dim, 0, 32);
  const rel = (a: torch.Tensor, b: torch.Tensor) => torch.tidy(() => a.sub(b).abs().max().item() / b.abs().max().item());
  assert.ok(rel(top(got.S, 1), top(want.S, 1)) < 1e-10, "S");
  const dots = top(got.V, 2).mul(top(want.V, 2)).sum(1).abs(); // |v·w| = 1: the same vectors up to sign
  assert.ok(torch.tidy(() => dots.sub(1).abs().max().item()) < 1e-8, "V up to sign");
  assert.ok(rel(top(cpu.S, 1), top(got.S.narrow(0, 0, 2).cpu(), 1)) < 1e-10, "the CPU's S");
});
