// The sign-flip permutation test of a mean paired difference. Under the null hypothesis that the
// two arms are exchangeable within each pair, every difference is as likely to have the opposite
// sign, so the observed mean is compared with the means of all 2^n sign assignments.
import { Random } from "../data/probability/random.js";

/** Up to this many pairs all 2^n assignments are enumerated (2^20 ≈ 10^6 sums, a few milliseconds). */
export const SIGN_FLIP_EXACT_MAX_N = 20;
/** Enumeration beyond 2^24 assignments is too slow to offer. */
const EXACT_LIMIT = 24;
export const DEFAULT_SIGN_FLIP = { resamples: 100_000, seed: 0 } as const;
/**
 * Sums within this fraction of Σ|d| of the observed one count as ties (as extreme): sign
 * assignments that are equal in exact arithmetic can differ by rounding, which is far smaller.
 */
const TIE_TOLERANCE = 1e-12;

export interface SignFlipOptions {
  /** Enumerate all assignments up to this many pairs; Monte Carlo above (default SIGN_FLIP_EXACT_MAX_N). */
  exactMaxN?: number;
  /** Random assignments drawn by the Monte Carlo version. */
  resamples?: number;
  /** Seed of the Monte Carlo draws (same seed, same p). */
  seed?: number;
}

export interface SignFlipResult {
  /** Two-sided p-value: the share of assignments whose |mean| is at least the observed |mean|. */
  p: number;
  /**
   * "exact": all 2^n assignments, the observed one included (so p ≥ 2 / 2^n).
   * "monte-carlo": `assignments` random ones, p = (b + 1) / (m + 1) with b of the m as extreme,
   * which counts the observed assignment and never gives 0.
   */
  method: "exact" | "monte-carlo";
  /** Assignments counted: 2^n (exact) or the number of random ones. */
  assignments: number;
}

/** Two-sided sign-flip permutation p-value of the mean of the paired differences `diffs` (n ≥ 1). */
export function signFlipTest(diffs: readonly number[], o: SignFlipOptions = {}): SignFlipResult {
  const n = diffs.length;
  const exactMaxN = o.exactMaxN ?? SIGN_FLIP_EXACT_MAX_N;
  const resamples = o.resamples ?? DEFAULT_SIGN_FLIP.resamples;
  const seed = o.seed ?? DEFAULT_SIGN_FLIP.seed;
  if (n === 0) throw new RangeError("signFlipTest: no differences");
  if (!diffs.every(Number.isFinite)) throw new RangeError("signFlipTest: every difference must be a finite number");
  if (!Number.isInteger(exactMaxN) || exactMaxN < 0 || exactMaxN > EXACT_LIMIT)
    throw new RangeError(`signFlipTest: exactMaxN must be an integer in [0, ${EXACT_LIMIT}], got ${exactMaxN}`);
  if (!Number.isInteger(resamples) || resamples < 1)
    throw new RangeError(`signFlipTest: resamples must be a positive integer, got ${resamples}`);

  let observed = 0;
  let scale = 0;
  for (const d of diffs) {
    observed += d;
    scale += Math.abs(d);
  }
  // Sums rather than means: the same comparison, n times larger.
  const threshold = Math.abs(observed) - TIE_TOLERANCE * scale;
  if (n <= exactMaxN) {
    const count = countExtremeAssignments(diffs, threshold);
    const assignments = 2 ** n;
    return { p: count / assignments, method: "exact", assignments };
  }
  const random = new Random(seed);
  let extreme = 0;
  for (let r = 0; r < resamples; r++) {
    let sum = 0;
    let bits = 0;
    for (let i = 0; i < n; i++) {
      // Random.next() is a multiple of 2^-32, so one draw gives 32 fair sign bits.
      if (i % 32 === 0) bits = random.next() * 2 ** 32;
      sum += (bits >>> (i % 32)) & 1 ? -diffs[i]! : diffs[i]!;
    }
    if (Math.abs(sum) >= threshold) extreme++;
  }
  return { p: (extreme + 1) / (resamples + 1), method: "monte-carlo", assignments: resamples };
}

/**
 * How many of the 2^n signed sums Σ ±d_i have |sum| ≥ threshold. The signed sums of the first
 * and second halves are tabulated once (2^(n/2) each), so each of the 2^n sums is one addition.
 */
function countExtremeAssignments(diffs: readonly number[], threshold: number): number {
  const half = diffs.length >> 1;
  const first = signedSums(diffs.slice(0, half));
  const second = signedSums(diffs.slice(half));
  let count = 0;
  for (const a of first) for (const b of second) if (Math.abs(a + b) >= threshold) count++;
  return count;
}

/** All 2^k sums Σ ±x_i, indexed by the bit mask of the negated terms. */
function signedSums(xs: readonly number[]): Float64Array {
  const sums = new Float64Array(2 ** xs.length);
  for (let mask = 0; mask < sums.length; mask++) {
    let sum = 0;
    for (let i = 0; i < xs.length; i++) sum += mask & (1 << i) ? -xs[i]! : xs[i]!;
    sums[mask] = sum;
  }
  return sums;
}
