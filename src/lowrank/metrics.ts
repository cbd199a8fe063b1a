// Quality of a rank-r truncation, from the full singular-value spectrum alone (Eckart–Young:
// the best rank-r approximation drops exactly the values after the r-th). Sums run in float64 JS.
import { Tensor } from "../torch/index.js";

export interface SpectrumMetrics {
  /** The truncation rank r. */
  rank: number;
  /** ‖ΔW − ΔW_r‖_F / ‖ΔW‖_F = sqrt(Σ_{i>r} σ_i² / Σ_i σ_i²). */
  relativeError: number;
  /** Σ_{i≤r} σ_i² / Σ_i σ_i². */
  energyRatio: number;
  /**
   * Exponential decay rate λ of the spectrum: the least-squares slope of ln σ_i ≈ c − λ·i over the
   * numerically non-zero values (σ_i > tolerance · σ_1), so σ_{i+1} ≈ e^{−λ} σ_i on average.
   * 0 when fewer than two values are non-zero.
   */
  decayRate: number;
  /** σ_r / σ_1 (0 for a zero matrix). */
  sigmaRatio: number;
  /** How many σ_i exceed tolerance · σ_1. */
  numericalRank: number;
  /** ‖ΔW‖_F = sqrt(Σ σ_i²). */
  frobeniusNorm: number;
  /** Every singular value, descending. */
  spectrum: number[];
}

/** Relative threshold below which a singular value counts as zero (about float32 round-off). */
export const DEFAULT_RANK_TOLERANCE = 1e-6;

/**
 * Metrics at rank r from the complete spectrum of ΔW (every singular value, not only the top r).
 * A zero matrix has error 0 and energy ratio 1: truncating it loses nothing.
 */
export function spectrumMetrics(
  singularValues: Tensor | ArrayLike<number>,
  rank: number,
  tolerance = DEFAULT_RANK_TOLERANCE,
): SpectrumMetrics {
  if (!Number.isInteger(rank) || rank < 1) throw new Error(`spectrumMetrics: rank must be a positive integer, got ${rank}`);
  const raw =
    singularValues instanceof Tensor ? Array.from(singularValues.data() as ArrayLike<number>, Number) : Array.from(singularValues, Number);
  for (const v of raw)
    if (!(v >= 0) || !Number.isFinite(v)) throw new Error(`spectrumMetrics: singular values must be finite and non-negative, got ${v}`);
  const spectrum = raw.sort((a, b) => b - a);

  let head = 0;
  let tail = 0;
  for (let i = 0; i < spectrum.length; i++) {
    if (i < rank) head += spectrum[i] * spectrum[i];
    else tail += spectrum[i] * spectrum[i];
  }
  const total = head + tail;
  const top = spectrum[0] ?? 0;
  const numericalRank = spectrum.filter((v) => v > tolerance * top).length;
  return {
    rank,
    relativeError: total > 0 ? Math.sqrt(tail / total) : 0,
    energyRatio: total > 0 ? head / total : 1,
    decayRate: exponentialDecayRate(spectrum.slice(0, numericalRank)),
    sigmaRatio: top > 0 ? (spectrum[Math.min(rank, spectrum.length) - 1] ?? 0) / top : 0,
    numericalRank,
    frobeniusNorm: Math.sqrt(total),
    spectrum,
  };
}

/** −slope of the least-squares line through (i, ln σ_i); all σ_i must be positive. */
export function exponentialDecayRate(positive: number[]): number {
  const n = positive.length;
  if (n < 2) return 0;
  const meanI = (n - 1) / 2;
  const logs = positive.map(Math.log);
  const meanLog = logs.reduce((a, b) => a + b, 0) / n;
  let cov = 0;
  let varI = 0;
  logs.forEach((l, i) => {
    cov += (i - meanI) * (l - meanLog);
    varI += (i - meanI) ** 2;
  });
  return -cov / varI;
}
