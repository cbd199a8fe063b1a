import { test } from "node:test";
import assert from "node:assert/strict";
import { type CurvePoint, normalizedAuc, stepsToTarget } from "../../src/stats/index.js";

const curve = (...pairs: [number, number][]): CurvePoint[] => pairs.map(([step, value]) => ({ step, value }));

test("normalizedAuc: a constant reads as itself, a line as its midpoint, uneven steps weighted", () => {
  assert.equal(normalizedAuc(curve([0, 2.5], [3, 2.5], [10, 2.5])), 2.5);
  assert.equal(normalizedAuc(curve([0, 1], [10, 0])), 0.5);
  // Trapezoids: 1·(4 + 2)/2 + 3·(2 + 2)/2 = 9 over a span of 4.
  assert.equal(normalizedAuc(curve([0, 4], [1, 2], [4, 2])), 2.25);
  assert.equal(normalizedAuc(curve([7, 0.3])), 0.3);
  assert.equal(normalizedAuc([]), null);
});

test("normalizedAuc does not depend on where the steps start or their unit", () => {
  const c = curve([0, 2.1], [5, 1.4], [20, 0.9], [50, 0.7]);
  const auc = normalizedAuc(c)!;
  assert.equal(normalizedAuc(c.map((p) => ({ step: p.step + 1000, value: p.value }))), auc);
  assert.equal(normalizedAuc(c.map((p) => ({ step: p.step * 4, value: p.value }))), auc);
});

test("stepsToTarget interpolates between the last point above and the first at or below", () => {
  assert.equal(stepsToTarget(curve([0, 1], [10, 0.5]), 0.75), 5);
  assert.equal(stepsToTarget(curve([0, 1], [10, 0.5], [20, 0.2]), 0.5), 10);
  // The first crossing counts even if the curve comes back up.
  assert.equal(stepsToTarget(curve([0, 1], [10, 0.4], [20, 0.9], [30, 0.3]), 0.5), (0.5 / 0.6) * 10);
  assert.equal(stepsToTarget(curve([3, 0.2], [10, 0.1]), 0.5), 3);
  assert.equal(stepsToTarget(curve([0, 1], [10, 0.8]), 0.5), null);
  assert.equal(stepsToTarget([], 0.5), null);
});

test("curve summaries refuse unsorted steps and non-finite values", () => {
  assert.throws(() => normalizedAuc(curve([0, 1], [0, 2])), /steps must increase, but point 1 has step 0 after 0/);
  assert.throws(() => stepsToTarget(curve([0, 1], [1, Number.NaN]), 0.5), /point 1 \(step 1, value NaN\) is not finite/);
  assert.throws(() => stepsToTarget(curve([0, 1]), Number.NaN), /target must be a finite number/);
});

test("summarize: mean, sample sd and the t interval of the mean; nulls and non-finite values left out", async () => {
  const { summarize } = await import("../../src/stats/index.js");
  assert.deepEqual(summarize([]), { n: 0, mean: null, sd: null, ci: null });
  assert.deepEqual(summarize([2, null]), { n: 1, mean: 2, sd: null, ci: null });
  const s = summarize([1, 2, 3, 4, null, Number.NaN]);
  assert.equal(s.n, 4);
  assert.equal(s.mean, 2.5);
  assert.ok(Math.abs(s.sd! - Math.sqrt(5 / 3)) < 1e-12);
  // t_{0.975, 3} = 3.182446305284263 (scipy.stats.t.ppf)
  const half = (3.182446305284263 * Math.sqrt(5 / 3)) / 2;
  assert.ok(Math.abs(s.ci![0] - (2.5 - half)) < 1e-9 && Math.abs(s.ci![1] - (2.5 + half)) < 1e-9);
});
