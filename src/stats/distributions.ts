// The distributions the tests and intervals need: Student t, standard normal, beta, and the
// binomial with success probability ½. CDFs come from the regularized incomplete beta and gamma
// functions; quantiles invert them by bracketed Newton steps to full double precision.
import { logBeta, regularizedBeta, regularizedGamma, solveIncreasing } from "./special.js";

function checkProbability(what: string, p: number): void {
  if (!(p > 0 && p < 1)) throw new RangeError(`${what}: probability must be in (0, 1), got ${p}`);
}

function checkDf(what: string, df: number): void {
  if (!(df > 0)) throw new RangeError(`${what}: degrees of freedom must be > 0, got ${df}`);
}

/**
 * P(|T| ≥ |t|) for T ~ Student t with df degrees of freedom: I_x(df/2, ½) with x = df/(df + t²).
 * Accurate relative to itself far into the tail (the two-sided p-value of a t statistic).
 */
export function studentTTwoSidedTail(t: number, df: number): number {
  checkDf("studentTTwoSidedTail", df);
  if (Number.isNaN(t)) throw new RangeError("studentTTwoSidedTail: t is NaN");
  const t2 = t * t;
  return regularizedBeta(1 / (1 + t2 / df), df / 2, 0.5, 1 / (1 + df / t2)).lower;
}

/** P(T ≤ t) for T ~ Student t with df degrees of freedom. */
export function studentTCdf(t: number, df: number): number {
  const half = studentTTwoSidedTail(t, df) / 2;
  return t > 0 ? 1 - half : half;
}

/** The density of Student t with df degrees of freedom at t. */
export function studentTPdf(t: number, df: number): number {
  checkDf("studentTPdf", df);
  return Math.exp(-logBeta(df / 2, 0.5) - 0.5 * Math.log(df) - ((df + 1) / 2) * Math.log1p((t * t) / df));
}

/** The p-quantile of Student t with df degrees of freedom, 0 < p < 1. */
export function studentTQuantile(p: number, df: number): number {
  checkProbability("studentTQuantile", p);
  checkDf("studentTQuantile", df);
  return symmetricQuantile(
    p,
    (x) => studentTCdf(x, df),
    (x) => studentTPdf(x, df),
  );
}

/** P(Z ≤ z) for a standard normal Z: ½ Q(½, z²/2) below zero, its complement above. */
export function normalCdf(z: number): number {
  if (Number.isNaN(z)) throw new RangeError("normalCdf: z is NaN");
  const half = regularizedGamma(0.5, (z * z) / 2).upper / 2;
  return z > 0 ? 1 - half : half;
}

/** The standard normal density at z. */
export const normalPdf = (z: number): number => Math.exp(-0.5 * z * z) / Math.sqrt(2 * Math.PI);

/** The p-quantile of the standard normal, 0 < p < 1. */
export function normalQuantile(p: number): number {
  checkProbability("normalQuantile", p);
  return symmetricQuantile(p, normalCdf, normalPdf);
}

/**
 * The p-quantile of a distribution symmetric about 0. The lower half is solved (its CDF is small
 * there and computed with relative accuracy); the upper half is its mirror image, since 1 − p is
 * exact in floating point for p ≥ ½.
 */
function symmetricQuantile(p: number, cdf: (x: number) => number, pdf: (x: number) => number): number {
  if (p === 0.5) return 0;
  if (p > 0.5) return -symmetricQuantile(1 - p, cdf, pdf);
  let hi = 0;
  let lo = -1;
  while (cdf(lo) >= p) {
    hi = lo;
    lo *= 2;
  }
  return solveIncreasing((x) => cdf(x) - p, pdf, lo, hi);
}

/** The p-quantile of Beta(a, b), 0 < p < 1: the x in (0, 1) with I_x(a, b) = p. */
export function betaQuantile(p: number, a: number, b: number): number {
  checkProbability("betaQuantile", p);
  if (!(a > 0 && b > 0)) throw new RangeError(`betaQuantile: a and b must be > 0, got ${a}, ${b}`);
  // Solve in the lower tail, where I_x is small and precise; 1 − X ~ Beta(b, a) mirrors the upper.
  if (p > 0.5) return 1 - betaQuantile(1 - p, b, a);
  const logNorm = logBeta(a, b);
  return solveIncreasing(
    (x) => regularizedBeta(x, a, b).lower - p,
    (x) => Math.exp((a - 1) * Math.log(x) + (b - 1) * Math.log1p(-x) - logNorm),
    0,
    1,
  );
}

/** P(X ≤ k) for X ~ Binomial(n, ½): I_½(n − k, k + 1), and 1 when k ≥ n. */
export function binomialHalfCdf(k: number, n: number): number {
  if (!Number.isInteger(n) || n < 0 || !Number.isInteger(k))
    throw new RangeError(`binomialHalfCdf: need integers n >= 0 and k, got k = ${k}, n = ${n}`);
  if (k < 0) return 0;
  if (k >= n) return 1;
  return regularizedBeta(0.5, n - k, k + 1).lower;
}
