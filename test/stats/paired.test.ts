import { test } from "node:test";
import assert from "node:assert/strict";
import { pairedComparison } from "../../src/stats/index.js";
import { assertClose } from "../helpers.js";

const baseline = [0.61, 0.58, 0.66, 0.59, 0.6];
const arm = [0.55, 0.57, 0.6, 0.58, 0.56];

test("differences are arm − baseline; t test and interval match the df = 2 closed forms", () => {
  // d = 1, 2, 3: mean 2, sd 1, t = 2√3; for df = 2, P(|T| ≥ t) = 1 − t/√(2 + t²) and t_0.975 = 0.95·√(2/(1 − 0.95²)).
  const r = pairedComparison([0, 0, 0], [1, 2, 3]);
  assert.equal(r.meanDiff, 2);
  assert.equal(r.sdDiff, 1);
  assert.equal(r.df, 2);
  assertClose([r.t!, r.dz!], [2 * Math.sqrt(3), 2], 0, 1e-15, "t, dz");
  assertClose([r.pT!], [1 - Math.sqrt(12) / Math.sqrt(14)], 0, 1e-12, "pT");
  const half = (0.95 * Math.sqrt(2 / (1 - 0.95 ** 2))) / Math.sqrt(3);
  assertClose(r.ciT!, [2 - half, 2 + half], 0, 1e-13, "ciT");
  assert.equal(r.pPermutation, 0.25);
  assert.equal(r.permutationMethod, "exact");
});

test("pairs with a null on either side are dropped and counted", () => {
  const r = pairedComparison([0.61, null, 0.66, 0.59, 0.6, 0.7], [0.55, 0.57, 0.6, null, 0.56, null]);
  assert.equal(r.n, 3);
  assert.equal(r.dropped, 3);
  assertClose([r.meanDiff!], [(-0.06 - 0.06 - 0.04) / 3], 1e-15, 0);
  assert.deepEqual(pairedComparison([0.61, 0.66, 0.6], [0.55, 0.6, 0.56]), { ...r, dropped: 0 });
});

test("fewer than two pairs: mean only, every interval and p null", () => {
  const one = pairedComparison([0.5, null], [0.4, 0.3]);
  assert.equal(one.n, 1);
  assertClose([one.meanDiff!], [-0.1], 1e-15, 0);
  for (const key of ["sdDiff", "dz", "df", "t", "pT", "ciT", "ciBootstrap", "pPermutation", "permutationMethod"] as const)
    assert.equal(one[key], null, key);
  assert.equal(pairedComparison([], []).meanDiff, null);
});

test("zero variance: t, pT and dz are undefined (null), the permutation p is exact", () => {
  const r = pairedComparison([0.5, 0.75, 1, 1.25, 1.5], [0.625, 0.875, 1.125, 1.375, 1.625]);
  assert.equal(r.sdDiff, 0);
  assert.equal(r.t, null);
  assert.equal(r.pT, null);
  assert.equal(r.dz, null);
  assert.deepEqual(r.ciT, [0.125, 0.125]);
  assert.deepEqual(r.ciBootstrap, [0.125, 0.125]);
  assert.equal(r.pPermutation, 0.0625);
});

test("swapping the arms mirrors the differences and keeps every p", () => {
  const r = pairedComparison(baseline, arm);
  const s = pairedComparison(arm, baseline);
  assertClose([s.meanDiff!, s.dz!, s.t!], [-r.meanDiff!, -r.dz!, -r.t!], 1e-15, 1e-13);
  assertClose(s.ciT!, [-r.ciT![1], -r.ciT![0]], 1e-15, 1e-13, "ciT");
  assertClose(s.ciBootstrap!, [-r.ciBootstrap![1], -r.ciBootstrap![0]], 1e-15, 1e-12, "ciBootstrap");
  assert.equal(s.sdDiff, r.sdDiff);
  assert.equal(s.pT, r.pT);
  assert.equal(s.pPermutation, r.pPermutation);
});

test("a per-seed offset common to both arms changes nothing; scaling keeps p and d_z", () => {
  const r = pairedComparison(baseline, arm);
  const offset = [3, -1, 0.5, 7, 2];
  const shifted = pairedComparison(
    baseline.map((b, i) => b + offset[i]!),
    arm.map((a, i) => a + offset[i]!),
  );
  assertClose([shifted.meanDiff!, shifted.sdDiff!, shifted.pT!], [r.meanDiff!, r.sdDiff!, r.pT!], 1e-13, 1e-10);
  assert.equal(shifted.pPermutation, r.pPermutation);
  const scaled = pairedComparison(
    baseline.map((b) => 100 * b),
    arm.map((a) => 100 * a),
  );
  assertClose([scaled.meanDiff!, scaled.pT!, scaled.dz!], [100 * r.meanDiff!, r.pT!, r.dz!], 0, 1e-12);
  assertClose(
    scaled.ciBootstrap!,
    r.ciBootstrap!.map((v) => 100 * v),
    0,
    1e-12,
    "ciBootstrap",
  );
});

test("options: the confidence level and the Monte Carlo settings are used", () => {
  const r95 = pairedComparison(baseline, arm);
  const r80 = pairedComparison(baseline, arm, { confidence: 0.8 });
  assert.equal(r80.confidence, 0.8);
  assert.ok(r80.ciT![0] > r95.ciT![0] && r80.ciT![1] < r95.ciT![1]);
  const [lo, hi] = pairedComparison(baseline, arm, { bootstrap: { resamples: 1 } }).ciBootstrap!;
  assert.equal(lo, hi, "one bootstrap resample, one mean");
  const mc = pairedComparison(baseline, arm, { permutation: { exactMaxN: 2, resamples: 999 } });
  assert.equal(mc.permutationMethod, "monte-carlo");
});

test("bad input gets one clear line", () => {
  assert.throws(() => pairedComparison([1, 2], [1]), /baseline has 2 values and arm 1; pass one value per seed/);
  assert.throws(() => pairedComparison([1, Number.NaN], [1, 2]), /baseline\[1\] is NaN; pass null for a missing value/);
  assert.throws(() => pairedComparison([1, 2], [1, 2], { confidence: 1 }), /confidence must be a level/);
});
