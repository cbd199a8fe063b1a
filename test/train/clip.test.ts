import assert from "node:assert/strict";
import { test } from "node:test";
import * as torch from "../../src/torch/index.js";
import { clipGradNorm, gradNorm } from "../../src/train/clip.js";
import { assertClose, device, values } from "../helpers.js";

/** Two parameters with gradients [3, 4] and [12]: joint norm 13. */
function withGrads(first = [3, 4], second = [12]): torch.Tensor[] {
  const params = [torch.zeros([first.length], { device }), torch.zeros([second.length], { device })].map((p) => p.requiresGrad_());
  torch.tidy(() => {
    params[0].grad = torch.tensor(first, { device });
    params[1].grad = torch.tensor(second, { device });
  });
  return params;
}
const gradValues = (params: torch.Tensor[]) => params.flatMap((p) => values(p.grad!));

test("gradients over maxNorm are scaled by maxNorm / (total + 1e-6)", () => {
  const params = withGrads();
  assertClose([clipGradNorm(params, 1)], [13], 1e-6, 1e-7, "total norm");
  const coef = 1 / (13 + 1e-6);
  assertClose(gradValues(params), [3 * coef, 4 * coef, 12 * coef], 1e-7, 1e-6, "scaled grads");
  assertClose([gradNorm(params)], [1], 1e-6, 0, "norm after clipping");
});

test("gradients within maxNorm are left bitwise unchanged", () => {
  const params = withGrads([0.1, -0.2], [0.3]);
  const before = gradValues(params);
  const total = clipGradNorm(params, 1);
  assertClose([total], [Math.sqrt(0.01 + 0.04 + 0.09)], 1e-7, 1e-6, "total norm");
  assert.deepEqual(gradValues(params), before);
});

test("a non-finite norm is reported and nothing is scaled", () => {
  const inf = withGrads([3, Infinity], [12]);
  assert.equal(clipGradNorm(inf, 1), Infinity);
  assert.deepEqual(gradValues(inf), [3, Infinity, 12]);
  const nan = withGrads([3, 4], [NaN]);
  assert.ok(Number.isNaN(clipGradNorm(nan, 1)));
  assert.deepEqual(gradValues(nan).slice(0, 2), [3, 4]);
});

test("parameters without gradients are skipped; none at all gives 0", () => {
  const params = withGrads();
  const bare = torch.ones([5], { device }).requiresGrad_();
  assertClose([clipGradNorm([bare, ...params], 100)], [13], 1e-6, 1e-7, "total norm");
  assert.equal(bare.grad, null);
  assert.equal(clipGradNorm([bare], 1), 0);
  assert.throws(() => clipGradNorm(params, 0), /maxNorm/);
});

test("clipping frees its temporaries", () => {
  const params = withGrads();
  const before = torch.memory().count;
  clipGradNorm(params, 1);
  clipGradNorm(params, 100);
  gradNorm(params);
  assert.equal(torch.memory().count, before);
});
