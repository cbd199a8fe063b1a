import assert from "node:assert/strict";
import { test } from "node:test";
import * as torch from "../../src/torch/index.js";
import { assertClose, device, values } from "../helpers.js";

/**
 * Compares autograd's gradient of a scalar function with central finite differences in float64,
 * for each input.
 */
function gradcheck(f: (...xs: torch.Tensor[]) => torch.Tensor, inputs: torch.Tensor[], eps = 1e-6, tol = 1e-6): void {
  const xs = inputs.map((x) => x.to("float64").detach().requiresGrad_());
  f(...xs).backward();
  xs.forEach((x, which) => {
    const analytic = values(x.grad!);
    const base = values(x);
    const numeric = base.map((_, i) => {
      const at = (delta: number) =>
        torch.noGrad(() => {
          const moved = base.slice();
          moved[i] += delta;
          const args = xs.map((y, j) => (j === which ? torch.tensor(moved, { dtype: "float64", device, shape: x.shape }) : y));
          return f(...args).item();
        });
      return (at(eps) - at(-eps)) / (2 * eps);
    });
    assertClose(analytic, numeric, tol, tol, `input ${which}`);
  });
}

const rnd = (...shape: number[]) => torch.randn(shape, { device, dtype: "float64" });

test("gradients of a linear + silu + cross-entropy block match finite differences", () => {
  torch.manualSeed(11);
  const targets = torch.tensor([1, -100, 0, 2], { dtype: "int64", device });
  gradcheck((x, w, b) => torch.crossEntropy(torch.linear(x.silu(), w, b), targets), [rnd(4, 5), rnd(3, 5), rnd(3)]);
});

test("gradients of an RMSNorm-style expression match finite differences", () => {
  torch.manualSeed(12);
  gradcheck((x, w) => x.mul(x.square().mean(-1, true).add(1e-6).rsqrt()).mul(w).tanh().sum(), [rnd(3, 4), rnd(4)]);
});

test("gradients of causal grouped-query attention match finite differences", () => {
  torch.manualSeed(13);
  const weights = rnd(1, 4, 3, 2);
  gradcheck(
    (q, k, v) => torch.scaledDotProductAttention(q, k, v, { causal: true }).mul(weights).sum(),
    [rnd(1, 4, 3, 2), rnd(1, 2, 3, 2), rnd(1, 2, 3, 2)],
  );
});

test("gradients through softmax, logsumexp, norm, pow, exp, div and sum of singular values", () => {
  torch.manualSeed(14);
  gradcheck((x) => x.softmax(-1).mul(x.logsumexp(-1, true)).sum().add(x.norm()), [rnd(2, 3)]);
  gradcheck((x, y) => x.pow(3).add(y.exp()).div(y.square().add(1)).mean(), [rnd(5), rnd(5)]);
  gradcheck((a) => torch.svdvals(a).sum(), [rnd(4, 3)], 1e-6, 1e-5);
  gradcheck((a, b) => a.matmul(b.T).narrow(1, 1, 2).sum(), [rnd(3, 4), rnd(3, 4)]);
});

test("backward with a gradient tensor, several roots, and grad accumulation", () => {
  const x = torch.tensor([1, 2, 3], { device }).requiresGrad_();
  x.mul(2).backward(torch.tensor([1, 10, 100], { device }));
  assert.deepEqual(x.grad!.toArray(), [2, 20, 200]);
  // Gradients accumulate until cleared, as in PyTorch.
  x.mul(x).sum().backward();
  assert.deepEqual(x.grad!.toArray(), [4, 24, 206]);
  x.grad = null;
  assert.equal(x.grad, null);
  // Two roots in one pass: d/dx (sum x² + sum 3x) = 2x + 3.
  torch.backward([x.square().sum(), x.mul(3).sum()]);
  assert.deepEqual(x.grad!.toArray(), [5, 7, 9]);
  x.grad!.zero_();
  assert.deepEqual(x.grad!.toArray(), [0, 0, 0]);
  assert.throws(() => torch.backward([x.sum()], [torch.ones([1]), torch.ones([1])]), /1 roots but 2 gradients/);
});

test("noGrad, detach and retainGraph", () => {
  const x = torch.ones([2], { device }).requiresGrad_();
  assert.equal(torch.isGradEnabled(), true);
  const y = torch.noGrad(() => {
    assert.equal(torch.isGradEnabled(), false);
    return x.mul(2);
  });
  assert.equal(torch.isGradEnabled(), true);
  assert.equal(y.requiresGrad, false);
  assert.equal(x.mul(2).detach().requiresGrad, false);
  assert.equal(
    torch.enableGrad(() => torch.isGradEnabled()),
    true,
  );
  const z = x.square().sum();
  z.backward(undefined, { retainGraph: true });
  z.backward();
  assert.deepEqual(x.grad!.toArray(), [4, 4]);
  assert.throws(() => z.backward(), /backward through the graph a second time|Trying to backward/);
  assert.throws(() => torch.tensor([1, 2], { dtype: "int64" }).requiresGrad_(), /only floating-point tensors/);
});

test("gradient checkpointing pattern: recompute a block and backward with the upstream gradient", () => {
  torch.manualSeed(15);
  const w = rnd(4, 4).requiresGrad_();
  const x = rnd(2, 4);
  const block = (h: torch.Tensor) => h.matmul(w).tanh();
  // Reference: plain backward through two blocks.
  block(block(x)).sum().backward();
  const expected = values(w.grad!);
  w.grad = null;
  // Checkpointed: forward without a graph, keep the block inputs, then replay block by block.
  const h1 = torch.noGrad(() => block(x));
  const h1Leaf = h1.detach().requiresGrad_();
  block(h1Leaf).sum().backward();
  block(x).backward(h1Leaf.grad!);
  assertClose(values(w.grad!), expected, 1e-12, 1e-12);
});

test("swiglu equals silu(gate)·up, and its gradients match finite differences", () => {
  torch.manualSeed(16);
  const [g, u] = [rnd(3, 6), rnd(3, 6)];
  assertClose(values(torch.swiglu(g, u)), values(g.silu().mul(u)), 1e-12, 1e-12, "forward");
  const w = rnd(3, 6);
  gradcheck((a, b) => torch.swiglu(a, b).mul(w).sum(), [g, u]);
});

test("rmsNorm equals the composite x·rsqrt(mean(x²) + eps)·w, with gradients for x and w", () => {
  torch.manualSeed(17);
  const [x, w] = [rnd(3, 8), rnd(8)];
  const composite = x.mul(x.square().mean(-1, true).add(1e-6).rsqrt()).mul(w);
  assertClose(values(torch.rmsNorm(x, w, 1e-6)), values(composite), 1e-12, 1e-12, "forward");
  const probe = rnd(3, 8);
  gradcheck((a, b) => torch.rmsNorm(a, b, 1e-6).mul(probe).sum(), [x, w]);
});

test("rope equals x·cos + rotate_half(x)·sin, with its gradient", () => {
  torch.manualSeed(18);
  const [x, cos, sin] = [rnd(2, 3, 4, 6), rnd(1, 1, 4, 6), rnd(1, 1, 4, 6)];
  const rotated = torch.cat([x.narrow(-1, 3, 3).neg(), x.narrow(-1, 0, 3)], -1);
  assertClose(values(torch.rope(x, cos, sin)), values(x.mul(cos).add(rotated.mul(sin))), 1e-12, 1e-12, "forward");
  const probe = rnd(2, 3, 4, 6);
  gradcheck((a) => torch.rope(a, cos, sin).mul(probe).sum(), [x]);
});

test("loraLinear equals x Wᵀ + b + s·(x Aᵀ) Bᵀ, with gradients for x, W, A and B", () => {
  torch.manualSeed(19);
  const [x, W, b, A, B] = [rnd(2, 3, 5), rnd(4, 5), rnd(4), rnd(2, 5), rnd(4, 2)];
  const composite = torch.linear(x, W, b).add(torch.linear(torch.linear(x, A), B).mul(1.5));
  assertClose(values(torch.loraLinear(x, W, b, A, B, 1.5)), values(composite), 1e-12, 1e-12, "forward");
  const probe = rnd(2, 3, 4);
  gradcheck((x_, W_, A_, B_) => torch.loraLinear(x_, W_, b, A_, B_, 1.5).mul(probe).sum(), [x, W, A, B]);
  assert.throws(() => torch.loraLinear(x, W, b.detach().requiresGrad_(), A, B, 1), /bias must be frozen/);
  gradcheck((x_, A_, B_) => torch.loraLinear(x_, W, null, A_, B_, 0.5).mul(probe).sum(), [x, A, B]);
});
