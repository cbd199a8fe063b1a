import { test } from "node:test";
import assert from "node:assert/strict";
import {
  clopperPearsonInterval,
  DEFAULT_PROPORTION_CI,
  mcnemarExact,
  normalQuantile,
  proportionCi,
  wilsonInterval,
} from "../../src/stats/index.js";
import { assertClose } from "../helpers.js";

const z = normalQuantile(0.975);

test("Wilson: 0/n and n/n reach the boundary exactly; the other end has a closed form", () => {
  for (const n of [1, 10, 1000]) {
    assertClose(wilsonInterval(0, n), [0, (z * z) / (n + z * z)], 0, 1e-14, `0/${n}`);
    assertClose(wilsonInterval(n, n), [n / (n + z * z), 1], 0, 1e-14, `${n}/${n}`);
  }
});

test("Wilson and Clopper–Pearson: k ↔ n − k mirror, contain k/n, narrow with n", () => {
  for (const method of ["wilson", "clopper-pearson"] as const) {
    for (const [k, n] of [
      [3, 10],
      [537, 1000],
      [1, 1000],
    ] as const) {
      const [lo, hi] = proportionCi(k, n, { method });
      const [mlo, mhi] = proportionCi(n - k, n, { method });
      assertClose([lo, hi], [1 - mhi, 1 - mlo], 1e-14, 0, `${method} ${k}/${n} mirror`);
      assert.ok(lo < k / n && k / n < hi, `${method} ${k}/${n}: [${lo}, ${hi}]`);
      const [blo, bhi] = proportionCi(10 * k, 10 * n, { method });
      assert.ok(bhi - blo < hi - lo, `${method}: 10× the trials narrows the interval`);
    }
  }
});

test("Clopper–Pearson: closed forms at k = 0 and k = n, and wider than Wilson in the middle", () => {
  for (const n of [1, 7, 1000]) {
    assertClose(clopperPearsonInterval(0, n), [0, 1 - 0.025 ** (1 / n)], 0, 1e-13, `0/${n}`);
    assertClose(clopperPearsonInterval(n, n), [0.025 ** (1 / n), 1], 0, 1e-13, `${n}/${n}`);
  }
  const cp = clopperPearsonInterval(480, 1000);
  const w = wilsonInterval(480, 1000);
  assert.ok(cp[0] < w[0] && cp[1] > w[1]);
});

test("the default interval is Wilson at 95 %; bad counts are refused", () => {
  assert.equal(DEFAULT_PROPORTION_CI, "wilson");
  assert.deepEqual(proportionCi(537, 1000), wilsonInterval(537, 1000, 0.95));
  assert.throws(() => proportionCi(5, 4), /0 <= successes <= trials/);
  assert.throws(() => proportionCi(0, 0), /trials >= 1/);
  assert.throws(() => proportionCi(1, 4, { method: "wald" as never }), /unknown method wald/);
});

/** Per-item correctness with b baseline-only and c arm-only right answers, plus concordant items. */
function items(b: number, c: number, bothRight = 30, bothWrong = 20): [boolean[], boolean[]] {
  const base = [...Array(b).fill(true), ...Array(c).fill(false), ...Array(bothRight).fill(true), ...Array(bothWrong).fill(false)];
  const arm = [...Array(b).fill(false), ...Array(c).fill(true), ...Array(bothRight).fill(true), ...Array(bothWrong).fill(false)];
  return [base, arm];
}

test("McNemar exact: b = c gives p = 1; 0 vs 6 gives 2/64; only discordant items count", () => {
  assert.deepEqual(mcnemarExact(...items(5, 5)), { b: 5, c: 5, p: 1 });
  const zeroSix = mcnemarExact(...items(0, 6));
  assert.deepEqual([zeroSix.b, zeroSix.c], [0, 6]);
  assertClose([zeroSix.p], [2 / 64], 0, 1e-14);
  assert.deepEqual(mcnemarExact(...items(0, 0)), { b: 0, c: 0, p: 1 });
  // 2 vs 9 of 11: 2·(1 + 11 + 55)/2048.
  assertClose([mcnemarExact(...items(2, 9)).p], [(2 * 67) / 2048], 0, 1e-14);
  assert.equal(mcnemarExact(...items(2, 9, 0, 0)).p, mcnemarExact(...items(2, 9, 500, 300)).p);
  const [base, arm] = items(3, 12);
  assert.deepEqual(mcnemarExact(arm, base), { ...mcnemarExact(base, arm), b: 12, c: 3 });
  assert.throws(() => mcnemarExact([true], [true, false]), /baseline scored 1 items and arm 2/);
});
