import { test } from "node:test";
import assert from "node:assert/strict";
import { bootstrapMeanCi, mean, quantileSorted, sampleSd } from "../../src/stats/index.js";
import { assertClose } from "../helpers.js";

const xs = [0.031, -0.012, 0.054, 0.008, 0.022, -0.004, 0.017];

test("quantileSorted interpolates linearly between order statistics (type 7)", () => {
  const sorted = [1, 2, 3, 4];
  assert.equal(quantileSorted(sorted, 0), 1);
  assert.equal(quantileSorted(sorted, 0.25), 1.75);
  assert.equal(quantileSorted(sorted, 0.5), 2.5);
  assert.equal(quantileSorted(sorted, 1), 4);
  assert.equal(quantileSorted([7], 0.3), 7);
  assert.throws(() => quantileSorted([], 0.5), /no values/);
});

test("mean and sample standard deviation", () => {
  assert.equal(mean([1, 2, 3, 6]), 3);
  assert.equal(sampleSd([1, 2, 3, 6]), Math.sqrt(14 / 3));
  assert.ok(Number.isNaN(sampleSd([1])));
});

test("percentile bootstrap: deterministic per seed, inside the data range, around the mean", () => {
  const ci = bootstrapMeanCi(xs, { seed: 1 });
  assert.deepEqual(bootstrapMeanCi(xs, { seed: 1 }), ci);
  assert.notDeepEqual(bootstrapMeanCi(xs, { seed: 2 }), ci);
  const m = mean(xs);
  assert.ok(Math.min(...xs) < ci[0] && ci[0] < m && m < ci[1] && ci[1] < Math.max(...xs), `${ci} around ${m}`);
  const narrower = bootstrapMeanCi(xs, { seed: 1, confidence: 0.8 });
  assert.ok(narrower[0] > ci[0] && narrower[1] < ci[1], `80 % ${narrower} inside 95 % ${ci}`);
});

test("percentile bootstrap: a constant sample gives a zero-width interval; shift and scale carry through", () => {
  assert.deepEqual(bootstrapMeanCi([0.125, 0.125, 0.125]), [0.125, 0.125]);
  const ci = bootstrapMeanCi(xs, { seed: 4 });
  // The same seed draws the same indices, so the interval moves with the data.
  assertClose(
    bootstrapMeanCi(
      xs.map((x) => x + 10),
      { seed: 4 },
    ),
    [ci[0] + 10, ci[1] + 10],
    1e-12,
    0,
    "shifted",
  );
  assertClose(
    bootstrapMeanCi(
      xs.map((x) => -3 * x),
      { seed: 4 },
    ),
    [-3 * ci[1], -3 * ci[0]],
    1e-15,
    1e-12,
    "scaled by −3",
  );
});

test("percentile bootstrap: bad input gets a clear error", () => {
  assert.throws(() => bootstrapMeanCi([]), /no values/);
  assert.throws(() => bootstrapMeanCi([1, Number.POSITIVE_INFINITY]), /finite number/);
  assert.throws(() => bootstrapMeanCi(xs, { confidence: 95 }), /confidence must be a level in \(0, 1\)/);
  assert.throws(() => bootstrapMeanCi(xs, { resamples: 2.5 }), /resamples must be a positive integer/);
});
