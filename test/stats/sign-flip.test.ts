import { test } from "node:test";
import assert from "node:assert/strict";
import { Random } from "../../src/data/probability/random.js";
import { SIGN_FLIP_EXACT_MAX_N, signFlipTest } from "../../src/stats/index.js";

/** The textbook enumeration, written independently of the implementation: share of 2^n sign assignments as extreme. */
function bruteForce(diffs: number[]): number {
  const observed = Math.abs(diffs.reduce((a, b) => a + b, 0));
  let count = 0;
  for (let mask = 0; mask < 2 ** diffs.length; mask++) {
    const sum = diffs.reduce((acc, d, i) => acc + ((mask >> i) & 1 ? -d : d), 0);
    if (Math.abs(sum) >= observed * (1 - 1e-12)) count++;
  }
  return count / 2 ** diffs.length;
}

test("five differences of one sign: the smallest exact p, 2/32 = 0.0625", () => {
  assert.deepEqual(signFlipTest([0.02, 0.01, 0.06, 0.01, 0.02]), { p: 0.0625, method: "exact", assignments: 32 });
  assert.equal(signFlipTest([-3, -1, -2, -5, -8, -1, -1, -2]).p, 2 / 256);
});

test("ties count as extreme: ±1 differences, and a zero mean gives p = 1", () => {
  // Sums of four ±1: 4 (1 way), 2 (4), 0 (6), −2 (4), −4 (1); observed 2.
  assert.equal(signFlipTest([1, 1, 1, -1]).p, 10 / 16);
  assert.equal(signFlipTest([0.1, 0.2, -0.3]).p, 1);
  assert.equal(signFlipTest([0, 0, 0]).p, 1);
  assert.equal(signFlipTest([4]).p, 1);
});

test("exact p equals a brute-force enumeration and is invariant to order, sign and scale", () => {
  const random = new Random(7);
  for (let trial = 0; trial < 5; trial++) {
    const diffs = Array.from({ length: 11 }, () => random.next() - 0.35);
    const { p } = signFlipTest(diffs);
    assert.equal(p, bruteForce(diffs), `trial ${trial}`);
    assert.equal(signFlipTest(diffs.map((d) => -d)).p, p);
    assert.equal(signFlipTest(diffs.map((d) => d * 1000)).p, p);
    assert.equal(signFlipTest(random.shuffle(diffs)).p, p);
  }
});

test("Monte Carlo above exactMaxN: seeded, (b + 1)/(m + 1), within 5 standard errors of the exact p", () => {
  assert.equal(SIGN_FLIP_EXACT_MAX_N, 20);
  const random = new Random(3);
  const diffs = Array.from({ length: 14 }, () => random.next() - 0.4);
  const exact = signFlipTest(diffs);
  const resamples = 20_000;
  const mc = signFlipTest(diffs, { exactMaxN: 10, resamples, seed: 5 });
  assert.equal(mc.method, "monte-carlo");
  assert.equal(mc.assignments, resamples);
  assert.deepEqual(signFlipTest(diffs, { exactMaxN: 10, resamples, seed: 5 }), mc);
  assert.notEqual(signFlipTest(diffs, { exactMaxN: 10, resamples, seed: 6 }).p, mc.p);
  const extreme = Math.round(mc.p * (resamples + 1)) - 1;
  assert.ok(extreme >= 0 && extreme <= resamples);
  assert.equal(mc.p, (extreme + 1) / (resamples + 1));
  const se = Math.sqrt((exact.p * (1 - exact.p)) / resamples);
  assert.ok(Math.abs(mc.p - exact.p) <= 5 * se + 1 / (resamples + 1), `${mc.p} vs exact ${exact.p}`);
});

test("bad input gets a clear error", () => {
  assert.throws(() => signFlipTest([]), /no differences/);
  assert.throws(() => signFlipTest([1, Number.NaN]), /finite number/);
  assert.throws(() => signFlipTest([1, 2], { exactMaxN: 30 }), /exactMaxN must be an integer in \[0, 24\]/);
  assert.throws(() => signFlipTest([1, 2], { exactMaxN: 0, resamples: 0 }), /resamples must be a positive integer/);
});
