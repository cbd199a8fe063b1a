// Smoothing for noisy per-step training loss, as TensorBoard does it.

/**
 * Exponential moving average with bias correction: s_t = β·s_{t−1} + (1−β)·x_t, reported as
 * s_t / (1 − β^t) so the first points are not pulled towards zero. β = 0 returns the input.
 */
export function emaSmooth(values: readonly number[], beta = 0.9): number[] {
  if (!(beta >= 0 && beta < 1)) throw new RangeError(`EMA beta must be in [0, 1), got ${beta}`);
  const out: number[] = [];
  let state = 0;
  let weight = 0; // 1 − β^t, tracked incrementally
  for (const x of values) {
    state = beta * state + (1 - beta) * x;
    weight = beta * weight + (1 - beta);
    out.push(state / weight);
  }
  return out;
}

/** True for numbers a chart can place (NaN, ±Infinity and non-numbers are dropped). */
export const isPlottable = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v);

/** [lo, hi] of the values, padded by 5 % of their span (a flat line by 5 % of its value); undefined when none is plottable. */
export function paddedDomain(values: readonly number[]): [number, number] | undefined {
  const finite = values.filter(isPlottable);
  if (finite.length === 0) return undefined;
  const lo = Math.min(...finite);
  const hi = Math.max(...finite);
  const pad = 0.05 * (hi - lo || Math.abs(hi) || 1);
  return [lo - pad, hi + pad];
}

/**
 * A loss axis that one-batch spikes do not squash: from the lowest value of any series up to the
 * top of the smoothed curves (and any other curve given, e.g. held-out loss). Upward spikes of the
 * raw loss are cut off; its dips stay in view.
 */
export function lossAxisDomain(raw: readonly number[], curves: readonly number[]): [number, number] | undefined {
  const lowest = Math.min(...raw.filter(isPlottable), ...curves.filter(isPlottable));
  const domain = paddedDomain([...curves, ...(Number.isFinite(lowest) ? [lowest] : [])]);
  // the padding does not take a loss axis below zero
  return domain && lowest >= 0 ? [Math.max(0, domain[0]), domain[1]] : domain;
}
