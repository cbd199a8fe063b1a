// The percentile bootstrap confidence interval of a mean.
import { Random } from "../data/probability/random.js";
import { checkConfidence, DEFAULT_CONFIDENCE } from "./confidence.js";
import { quantileSorted } from "./descriptive.js";

export const DEFAULT_BOOTSTRAP = { resamples: 20_000, seed: 0 } as const;

export interface BootstrapOptions {
  confidence?: number;
  /** Resamples drawn (default DEFAULT_BOOTSTRAP.resamples). */
  resamples?: number;
  /** Seed of the resampling (same seed, same interval). */
  seed?: number;
}

/**
 * Percentile bootstrap interval of the mean of xs (n ≥ 1): draw `resamples` samples of size n with
 * replacement, take each one's mean, and return the (1 − c)/2 and (1 + c)/2 quantiles of those
 * means (linear interpolation between order statistics, as scipy.stats.bootstrap with
 * method='percentile'). Not BCa: with a handful of seeds the bootstrap distribution is coarse and
 * the percentile interval is the plainer statement. Deterministic for a given seed.
 */
export function bootstrapMeanCi(xs: readonly number[], o: BootstrapOptions = {}): [number, number] {
  const confidence = o.confidence ?? DEFAULT_CONFIDENCE;
  const resamples = o.resamples ?? DEFAULT_BOOTSTRAP.resamples;
  checkConfidence("bootstrapMeanCi", confidence);
  if (xs.length === 0) throw new RangeError("bootstrapMeanCi: no values");
  if (!xs.every(Number.isFinite)) throw new RangeError("bootstrapMeanCi: every value must be a finite number");
  if (!Number.isInteger(resamples) || resamples < 1)
    throw new RangeError(`bootstrapMeanCi: resamples must be a positive integer, got ${resamples}`);
  const random = new Random(o.seed ?? DEFAULT_BOOTSTRAP.seed);
  const n = xs.length;
  const means = new Float64Array(resamples);
  for (let r = 0; r < resamples; r++) {
    let sum = 0;
    for (let i = 0; i < n; i++) sum += xs[random.int(0, n - 1)]!;
    means[r] = sum / n;
  }
  means.sort();
  const alpha = (1 - confidence) / 2;
  return [quantileSorted(means, alpha), quantileSorted(means, 1 - alpha)];
}
