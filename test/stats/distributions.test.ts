// Closed-form checks of the special functions and distributions (no reference files needed).
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  betaQuantile,
  binomialHalfCdf,
  normalCdf,
  normalQuantile,
  studentTCdf,
  studentTPdf,
  studentTQuantile,
  studentTTwoSidedTail,
} from "../../src/stats/index.js";
import { logBeta, logGamma, regularizedBeta, regularizedGamma } from "../../src/stats/special.js";
import { assertClose } from "../helpers.js";

const near = (actual: number, expected: number, what: string, rtol = 1e-13) => assertClose([actual], [expected], 0, rtol, what);

test("logGamma: factorials and Γ(½) = √π, on both sides of the Stirling switch", () => {
  let logFactorial = 0;
  for (let n = 1; n <= 30; n++) {
    assertClose([logGamma(n)], [logFactorial], 1e-14, 1e-14, `lnΓ(${n})`);
    logFactorial += Math.log(n);
  }
  near(logGamma(0.5), 0.5 * Math.log(Math.PI), "lnΓ(½)");
  assert.throws(() => logGamma(0), /x must be > 0/);
});

test("logBeta: B(a, 1) = 1/a and B(m, n) from factorials, small and huge arguments", () => {
  for (const a of [0.5, 3, 9.999, 10, 10.5, 1e3, 1e6, 1e9]) near(logBeta(a, 1), -Math.log(a), `ln B(${a}, 1)`, 1e-12);
  const lf = (n: number) => logGamma(n + 1);
  for (const [m, n] of [
    [3, 4],
    [12, 30],
    [40, 7],
  ] as const)
    near(logBeta(m, n), lf(m - 1) + lf(n - 1) - lf(m + n - 1), `ln B(${m}, ${n})`);
  assert.equal(logBeta(2.5, 17), logBeta(17, 2.5));
});

test("regularized beta and gamma: closed forms and complements", () => {
  // I_x(a, 1) = x^a and I_x(1, b) = 1 − (1 − x)^b.
  for (const x of [1e-8, 0.2, 0.5, 0.93]) {
    near(regularizedBeta(x, 3.5, 1).lower, x ** 3.5, `I_${x}(3.5, 1)`);
    near(regularizedBeta(x, 1, 4).upper, (1 - x) ** 4, `1 − I_${x}(1, 4)`);
    near(regularizedGamma(1, x * 10).upper, Math.exp(-x * 10), `Q(1, ${x * 10})`);
  }
  const { lower, upper } = regularizedBeta(0.3, 2, 5);
  near(lower + upper, 1, "I + (1 − I)");
  assert.deepEqual(regularizedBeta(0, 2, 3), { lower: 0, upper: 1 });
  assert.deepEqual(regularizedBeta(1, 2, 3), { lower: 1, upper: 0 });
  assert.throws(() => regularizedBeta(1.5, 2, 3), /x must be in \[0, 1\]/);
});

test("Student t: CDF at 0 is ½, symmetric, the Cauchy and df = 2 closed forms, two-sided tail", () => {
  for (const df of [1, 2, 4.5, 30, 1e5]) {
    assert.equal(studentTCdf(0, df), 0.5);
    assert.equal(studentTTwoSidedTail(0, df), 1);
    for (const t of [0.3, 2, 7, 150]) {
      near(studentTCdf(t, df) + studentTCdf(-t, df), 1, `F(${t}) + F(−${t}), df ${df}`, 1e-15);
      near(studentTTwoSidedTail(t, df), 2 * studentTCdf(-t, df), `P(|T| ≥ ${t}), df ${df}`, 1e-15);
    }
  }
  // Lower tails, in forms free of cancellation: Cauchy atan(1/|t|)/π; df 2: 1/(s(s + |t|)) with s = √(2 + t²).
  for (const t of [-1e6, -30, -1, -0.5]) {
    const s = Math.sqrt(2 + t * t);
    near(studentTCdf(t, 1), Math.atan(-1 / t) / Math.PI, `Cauchy F(${t})`, 1e-12);
    near(studentTCdf(t, 2), 1 / (s * (s - t)), `df 2 F(${t})`, 1e-12);
    near(studentTPdf(t, 1), 1 / (Math.PI * (1 + t * t)), `Cauchy density at ${t}`);
  }
  assert.equal(studentTCdf(Number.NEGATIVE_INFINITY, 3), 0);
  assert.equal(studentTCdf(Number.POSITIVE_INFINITY, 3), 1);
  assert.throws(() => studentTCdf(1, 0), /degrees of freedom must be > 0/);
});

test("Student t quantile: Cauchy and df = 2 closed forms, inverts the CDF, mirror image", () => {
  for (const p of [1e-10, 0.001, 0.025, 0.3, 0.5, 0.9, 0.975]) {
    // Cauchy: tan(π(p − ½)) = −1/tan(πp); df 2: (2p − 1)/√(2p(1 − p)).
    near(studentTQuantile(p, 1), p === 0.5 ? 0 : -1 / Math.tan(Math.PI * p), `Cauchy q(${p})`, 1e-12);
    near(studentTQuantile(p, 2), (2 * p - 1) / Math.sqrt(2 * p * (1 - p)), `df 2 q(${p})`, 1e-12);
    for (const df of [3, 7.5, 60]) {
      const q = studentTQuantile(p, df);
      near(studentTCdf(q, df), p, `F(q(${p})), df ${df}`, 1e-13);
    }
  }
  // Dyadic p, so that 1 − p is exact and the mirror image is exact too.
  for (const p of [2 ** -33, 2 ** -10, 0.25, 0.375, 0.5])
    for (const df of [1, 3, 7.5, 60]) assert.equal(studentTQuantile(1 - p, df), p === 0.5 ? 0 : -studentTQuantile(p, df));
  assert.throws(() => studentTQuantile(1, 3), /probability must be in \(0, 1\)/);
});

test("normal: Φ(0) = ½, symmetric, the 0.975 quantile, quantile inverts the CDF", () => {
  assert.equal(normalCdf(0), 0.5);
  near(normalQuantile(0.975), 1.959963984540054, "z_0.975", 1e-15);
  // erfc(1/√2)/2 = Φ(−1).
  near(normalCdf(-1), 0.15865525393145707, "Φ(−1)", 1e-14);
  for (const p of [1e-15, 1e-4, 0.2, 0.6, 0.999]) {
    const z = normalQuantile(p);
    near(normalCdf(z), p, `Φ(q(${p}))`, 1e-13);
    near(normalCdf(z) + normalCdf(-z), 1, `Φ(z) + Φ(−z) at ${z}`, 1e-15);
  }
});

test("beta quantile: the uniform and Beta(a, 1) closed forms, inverts the CDF in both tails", () => {
  for (const p of [1e-9, 0.025, 0.5, 0.8, 0.975, 1 - 1e-9]) {
    near(betaQuantile(p, 1, 1), p, `uniform q(${p})`);
    near(betaQuantile(p, 4, 1), p ** (1 / 4), `Beta(4, 1) q(${p})`);
    const q = betaQuantile(p, 3, 800);
    const { lower, upper } = regularizedBeta(q, 3, 800);
    if (p < 0.5) near(lower, p, `I at Beta(3, 800) q(${p})`, 1e-12);
    else near(upper, 1 - p, `1 − I at Beta(3, 800) q(${p})`, 1e-7);
  }
});

test("binomial(n, ½) CDF: exact small cases and the edges", () => {
  // n = 4: probabilities 1, 4, 6, 4, 1 over 16.
  [1, 5, 11, 15, 16].forEach((count, k) => near(binomialHalfCdf(k, 4), count / 16, `P(X ≤ ${k}), n 4`));
  assert.equal(binomialHalfCdf(-1, 4), 0);
  assert.equal(binomialHalfCdf(0, 0), 1);
  near(binomialHalfCdf(0, 60), 2 ** -60, "P(X = 0), n 60");
  assert.throws(() => binomialHalfCdf(1.5, 4), /need integers/);
});
