import assert from "node:assert/strict";
import { test } from "node:test";
import * as torch from "../../src/torch/index.js";
import { clipGradNorm, gradNorm, gradNorms, gradsOf, scaleToMaxNorms } from "../../src/train/clip.js";
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

/** Runs of random gradients: lists of 2, 3, 2 and 0 parameters, scaled so some exceed a norm of 1 and some do not. */
function runs(): torch.Tensor[][] {
  torch.manualSeed(7);
  return [2, 3, 2, 0].map((n, r) =>
    Array.from({ length: n }, (_, i) => {
      const p = torch.zeros([5 + i, 3], { device }).requiresGrad_();
      p.grad = torch.tidy(() => torch.randn([5 + i, 3], { device }).mul(r === 1 ? 0.05 : 0.6));
      return p;
    }),
  );
}

test("runs clipped together each get the norm and the gradients they get alone, bitwise", () => {
  const maxNorms = [1, 1, 2, 1];
  const alone = runs();
  const aloneNorms = alone.map((params, i) => clipGradNorm(params, maxNorms[i]));
  const together = runs();
  const grads = together.map(gradsOf);
  const norms = gradNorms(grads, device);
  const read = norms.toArray() as number[];
  assert.deepEqual(read, aloneNorms);
  assert.ok(read[0] > 1 && read[1] < 1 && read[2] > 1 && read[3] === 0, `the runs clip and do not as meant: norms ${read}`);
  scaleToMaxNorms(grads, norms, read, maxNorms);
  assert.deepEqual(together.map(gradValues), alone.map(gradValues));
  // A run without a maximum is left as it is.
  const unclipped = runs();
  const before = gradValues(unclipped[0]);
  const g = unclipped.map(gradsOf);
  const n = gradNorms(g, device);
  scaleToMaxNorms(g, n, n.toArray() as number[], [undefined, 1, 1, 1]);
  assert.deepEqual(gradValues(unclipped[0]), before);
  assert.throws(() => scaleToMaxNorms(g, n, [1, 1, 1, 1], [0, 1, 1, 1]), /maxNorm/);
  torch.dispose([norms, n, ...g.flat(), ...grads.flat()]);
});

test("runs of the same length take their norms as the rows of one matrix; an empty list of runs gives none", () => {
  const [a, , c] = runs();
  const norms = gradNorms([gradsOf(a), gradsOf(c)], device);
  assert.deepEqual(norms.toArray(), [gradNorm(a), gradNorm(c)]);
  assert.deepEqual(gradNorms([], device).shape, [0]);
});

test("clipping frees its temporaries", () => {
  const params = withGrads();
  const before = torch.memory().count;
  clipGradNorm(params, 1);
  clipGradNorm(params, 100);
  gradNorm(params);
  torch.tidy(() => {
    const lists = runs().map(gradsOf);
    const norms = gradNorms(lists, device);
    scaleToMaxNorms(lists, norms, norms.toArray() as number[], [1, 1, 1, 1]);
  });
  assert.equal(torch.memory().count, before);
});
