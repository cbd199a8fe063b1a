// The paired comparison of one arm against the baseline over seeds: with the same seed both arms
// see the same batch order, so each seed gives one pair and the analysis is of the differences.
import { type BootstrapOptions, bootstrapMeanCi } from "./bootstrap.js";
import { checkConfidence, DEFAULT_CONFIDENCE } from "./confidence.js";
import { mean, sampleSd } from "./descriptive.js";
import { studentTQuantile, studentTTwoSidedTail } from "./distributions.js";
import { type SignFlipOptions, type SignFlipResult, signFlipTest } from "./sign-flip.js";

export interface PairedOptions {
  /** Level of both intervals (default 0.95). */
  confidence?: number;
  bootstrap?: Omit<BootstrapOptions, "confidence">;
  permutation?: SignFlipOptions;
}

/** One value per seed; null where that seed's run is missing or the metric was not measured. */
export type SeedValues = readonly (number | null)[];

export interface PairedComparison {
  /** Pairs with a value on both sides. */
  n: number;
  /** Pairs left out because one side (or both) was null. */
  dropped: number;
  /** Mean of d = arm − baseline over the n pairs (null if n = 0). Positive: the arm's value is higher. */
  meanDiff: number | null;
  /** Sample standard deviation of d (n − 1 divisor); null if n < 2. */
  sdDiff: number | null;
  /** Effect size d_z = meanDiff / sdDiff; null if n < 2 or sdDiff = 0. */
  dz: number | null;
  confidence: number;
  /** Degrees of freedom of the t test, n − 1 (null if n < 2). */
  df: number | null;
  /** Paired t statistic meanDiff / (sdDiff / √n); null if n < 2 or sdDiff = 0 (undefined). */
  t: number | null;
  /** Two-sided p of the paired t test; null when t is. */
  pT: number | null;
  /** t interval meanDiff ± t_{(1+c)/2, n−1} · sdDiff / √n; [meanDiff, meanDiff] when sdDiff = 0; null if n < 2. */
  ciT: [number, number] | null;
  /** Percentile bootstrap interval of meanDiff (see bootstrapMeanCi); null if n < 2. */
  ciBootstrap: [number, number] | null;
  /** Two-sided sign-flip permutation p of meanDiff (exact up to 20 pairs); null if n < 2. */
  pPermutation: number | null;
  /** How pPermutation was computed; null if n < 2. */
  permutationMethod: SignFlipResult["method"] | null;
}

/**
 * Compares `arm` with `baseline`, seed by seed (index i of both lists is the same seed), on the
 * differences d_i = arm_i − baseline_i. Pairs with a null on either side are dropped. Reports the
 * mean difference with a t and a bootstrap interval, the paired t test and the sign-flip
 * permutation test (valid for any n, and exact for small n, where the t test leans on normality),
 * and the standardized effect d_z. When all differences are equal (sdDiff = 0) the t statistic is
 * undefined: t, pT and dz are null, while the permutation p still is what it is (2 / 2^n at best).
 */
export function pairedComparison(baseline: SeedValues, arm: SeedValues, o: PairedOptions = {}): PairedComparison {
  const confidence = o.confidence ?? DEFAULT_CONFIDENCE;
  checkConfidence("pairedComparison", confidence);
  if (baseline.length !== arm.length)
    throw new RangeError(
      `pairedComparison: baseline has ${baseline.length} values and arm ${arm.length}; pass one value per seed on both sides (null where missing)`,
    );
  const diffs: number[] = [];
  for (let i = 0; i < baseline.length; i++) {
    const b = checkValue("baseline", baseline, i);
    const a = checkValue("arm", arm, i);
    if (a !== null && b !== null) diffs.push(a - b);
  }
  const n = diffs.length;
  const dropped = baseline.length - n;
  const meanDiff = n === 0 ? null : mean(diffs);
  if (n < 2 || meanDiff === null)
    return {
      n,
      dropped,
      meanDiff,
      sdDiff: null,
      dz: null,
      confidence,
      df: null,
      t: null,
      pT: null,
      ciT: null,
      ciBootstrap: null,
      pPermutation: null,
      permutationMethod: null,
    };
  const sdDiff = sampleSd(diffs);
  const df = n - 1;
  const se = sdDiff / Math.sqrt(n);
  const t = sdDiff === 0 ? null : meanDiff / se;
  const halfWidth = studentTQuantile((1 + confidence) / 2, df) * se;
  const permutation = signFlipTest(diffs, o.permutation);
  return {
    n,
    dropped,
    meanDiff,
    sdDiff,
    dz: sdDiff === 0 ? null : meanDiff / sdDiff,
    confidence,
    df,
    t,
    pT: t === null ? null : studentTTwoSidedTail(t, df),
    ciT: [meanDiff - halfWidth, meanDiff + halfWidth],
    ciBootstrap: bootstrapMeanCi(diffs, { ...o.bootstrap, confidence }),
    pPermutation: permutation.p,
    permutationMethod: permutation.method,
  };
}

function checkValue(side: string, values: SeedValues, i: number): number | null {
  const v = values[i];
  if (v === null || v === undefined) return null;
  if (!Number.isFinite(v)) throw new RangeError(`pairedComparison: ${side}[${i}] is ${v}; pass null for a missing value`);
  return v;
}
