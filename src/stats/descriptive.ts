// Descriptive statistics of a plain number list.

/** The arithmetic mean; NaN for an empty list. */
export function mean(xs: readonly number[]): number {
  let sum = 0;
  for (const x of xs) sum += x;
  return sum / xs.length;
}

/** The sample standard deviation (divisor n − 1, two-pass); NaN for fewer than two values. */
export function sampleSd(xs: readonly number[]): number {
  const m = mean(xs);
  let ss = 0;
  for (const x of xs) ss += (x - m) ** 2;
  return Math.sqrt(ss / (xs.length - 1));
}

/**
 * The q-quantile of ascending-sorted values by linear interpolation between order statistics
 * (Hyndman–Fan type 7, the default of numpy.percentile and scipy.stats.quantile): position (m − 1)·q.
 */
export function quantileSorted(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) throw new RangeError("quantileSorted: no values");
  if (!(q >= 0 && q <= 1)) throw new RangeError(`quantileSorted: q must be in [0, 1], got ${q}`);
  const h = (sorted.length - 1) * q;
  const i = Math.floor(h);
  const below = sorted[i]!;
  return i + 1 < sorted.length ? below + (h - i) * (sorted[i + 1]! - below) : below;
}
