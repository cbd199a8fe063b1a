import assert from "node:assert/strict";
import { test } from "node:test";
import { GaussianSource, deriveSeed } from "../../src/lowrank/random.js";
import * as torch from "../../src/torch/index.js";

test("the seeded Gaussian stream is pinned (synthesized teachers stay reproducible across versions)", () => {
  const g = new GaussianSource(42);
  assert.deepEqual([g.normal(), g.normal(), g.normal()], [0.6362302292365903, 0.651442266477932, 0.8308018995720857]);
  assert.equal(deriveSeed(42, "model.layers.0.self_attn.q_proj"), 1413101269);
  assert.notEqual(deriveSeed(42, "model.layers.1.self_attn.q_proj"), deriveSeed(42, "model.layers.0.self_attn.q_proj"));
});

test("samples look standard normal and do not touch torch's generator", () => {
  torch.manualSeed(9);
  const expected = torch.tidy(() => torch.randn([4]).data());
  torch.manualSeed(9);
  const x = new GaussianSource(1).randn(200, 100);
  const after = torch.tidy(() => torch.randn([4]).data());
  assert.deepEqual(after, expected, "torch RNG undisturbed");
  const mean = x.mean().item();
  const variance = x.square().mean().item() - mean ** 2;
  x.dispose();
  // 20 000 samples: standard errors ≈ 0.007 (mean) and 0.01 (variance)
  assert.ok(Math.abs(mean) < 0.03 && Math.abs(variance - 1) < 0.05, `mean ${mean}, variance ${variance}`);
  assert.throws(() => new GaussianSource(1.5), /integer/);
});

test("randn is the normal() stream, vectorized: same values to round-off, odd sizes keep the spare", () => {
  const a = new GaussianSource(7),
    b = new GaussianSource(7);
  const m = a.randn(3, 5);
  const expected = Array.from({ length: 15 }, () => b.normal());
  const got = Array.from(m.data() as Float64Array);
  got.forEach((v, i) => {
    assert.ok(Math.abs(v - expected[i]) < 1e-12, `${i}: ${v} vs ${expected[i]}`);
  });
  // The 16th value (the spare sine of the 8th pair) comes next from both.
  assert.ok(Math.abs(a.normal() - b.normal()) < 1e-12);
  assert.ok(Math.abs((a.randn(1, 3).data() as Float64Array)[2] - (b.normal(), b.normal(), b.normal())) < 1e-12);
  m.dispose();
});
