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
