// SVD-init factors (docs/experiment.md#step-2b-svd-analysis-and-svd-init-factors): truncate a
// teacher ΔW at the LoRA rank r and split it into LoRA factors with B·A = ΔW_r / s, so the new
// adapter starts exactly at s·B·A = ΔW_r.
//   seed split:     B = U_r Σ_r / s,   A = V_rᵀ
//   balanced split: B = U_r √(Σ_r/s),  A = √(Σ_r/s) V_rᵀ   (equal factor norms: better conditioned)
import * as torch from "../torch/index.js";
import { Tensor } from "../torch/index.js";
import { DEFAULT_RANK_TOLERANCE, type SpectrumMetrics, spectrumMetrics } from "./metrics.js";
import { type LoraDelta, type Svd, exactSvd, factoredSvd, randomizedSvd } from "./svd.js";

/**
 * A module's ΔW (out × in), in any of the forms the workflow has: an SVD-form factorization
 * U diag(S) Vh (a synthesized teacher), LoRA factors scale · B A (a PEFT adapter), or a dense matrix
 * (e.g. the difference of two checkpoints' weights).
 */
export type DeltaSource = Svd | LoraDelta | Tensor;

export type FactorSplit = "seed" | "balanced";

export interface SvdFactorOptions {
  /** The LoRA rank r. */
  rank: number;
  /** The scale s of the adapter to be trained (α / r, or α / √r with rsLoRA). */
  scaling: number;
  /** How Σ_r / s is put on B and A; default "seed" (docs/experiment.md#step-2b-svd-analysis-and-svd-init-factors). */
  split?: FactorSplit;
  /** dtype of the returned factors. Default float32. */
  dtype?: torch.DType;
  /**
   * Dense deltas only: "exact" (LAPACK SVD) or "randomized" (top-r vectors by randomizedSvd; the full
   * spectrum for the metrics still comes from svdvals). Default "exact".
   */
  denseMethod?: "exact" | "randomized";
}

export interface ModuleFactorMetrics extends SpectrumMetrics {
  shape: [number, number];
}

/** One module's LoRA factors: A (r × in), B (out × r). */
export interface LoraFactorPair {
  A: Tensor;
  B: Tensor;
}

export interface SvdFactors {
  /** Module path → factors with s·B·A = ΔW_r. */
  weights: Map<string, LoraFactorPair>;
  metrics: Map<string, ModuleFactorMetrics>;
  rank: number;
  scaling: number;
  split: FactorSplit;
}

/** The SVD of ΔW however it is given, and the tolerance below which its values count as zero. */
function deltaSvd(
  delta: DeltaSource,
  rank: number,
  denseMethod: "exact" | "randomized",
): { svd: Svd; spectrum: Tensor; tolerance: number } {
  if (delta instanceof Tensor) {
    if (delta.ndim !== 2) throw new Error(`a dense ΔW must be a matrix, got shape [${delta.shape}]`);
    // numpy.linalg.matrix_rank's threshold: round-off of a dense SVD grows with the matrix size
    const tolerance = Math.max(...delta.shape) * (delta.dtype === "float64" ? 2.2e-16 : 1.2e-7);
    if (denseMethod === "randomized") {
      const min = Math.min(...delta.shape);
      const svd = randomizedSvd(delta, Math.min(rank, min));
      return { svd, spectrum: torch.svdvals(delta.to(svd.S.dtype)), tolerance };
    }
    const svd = exactSvd(delta);
    return { svd, spectrum: svd.S, tolerance };
  }
  if ("B" in delta) {
    const svd = factoredSvd(delta.B, delta.A, delta.scale);
    return { svd, spectrum: svd.S, tolerance: DEFAULT_RANK_TOLERANCE };
  }
  const { U, S, Vh } = delta;
  const p = S.shape[0];
  if (U.ndim !== 2 || S.ndim !== 1 || Vh.ndim !== 2 || U.shape[1] !== p || Vh.shape[0] !== p) {
    throw new Error(`SVD factors have inconsistent shapes U [${U.shape}], S [${S.shape}], Vh [${Vh.shape}]`);
  }
  const order = S.sort(0, true)[1]; // stored factors should be descending already; make sure
  return {
    svd: { U: U.indexSelect(1, order), S: S.indexSelect(0, order), Vh: Vh.indexSelect(0, order) },
    spectrum: S,
    tolerance: DEFAULT_RANK_TOLERANCE,
  };
}

/** [out, in] of ΔW; throws when rank r cannot fit the matrix. */
function checkShape(modulePath: string, delta: DeltaSource, r: number): [number, number] {
  const m = delta instanceof Tensor ? delta.shape[0] : "B" in delta ? delta.B.shape[0] : delta.U.shape[0];
  const n = delta instanceof Tensor ? delta.shape[1] : "B" in delta ? delta.A.shape[1] : delta.Vh.shape[1];
  if (r > Math.min(m, n)) throw new Error(`${modulePath}: rank ${r} exceeds min(out, in) = ${Math.min(m, n)} of this ${m}×${n} matrix`);
  const stored = delta instanceof Tensor ? Math.min(m, n) : "B" in delta ? delta.B.shape[1] : delta.S.shape[0];
  if (r > stored)
    throw new Error(
      `${modulePath}: rank ${r} exceeds the delta's rank ${stored}; use rank ≤ ${stored} or a teacher of higher rank (--target-rank)`,
    );
  return [m, n];
}

/** LoRA factors and metrics for one module; throws a one-line error naming what is wrong. */
export function moduleFactors(
  modulePath: string,
  delta: DeltaSource,
  o: { rank: number; scaling: number; split: FactorSplit; dtype: torch.DType; denseMethod: "exact" | "randomized" },
): { factors: LoraFactorPair; metrics: ModuleFactorMetrics } {
  return torch.tidy(() => {
    const [m, n] = checkShape(modulePath, delta, o.rank);
    const r = o.rank;
    const { svd, spectrum, tolerance } = deltaSvd(delta, r, o.denseMethod);
    const metrics = spectrumMetrics(spectrum, r, tolerance);
    if (metrics.numericalRank === 0) throw new Error(`${modulePath}: ΔW is zero; there is nothing to initialize from`);
    if (r > metrics.numericalRank) {
      throw new Error(
        `${modulePath}: rank ${r} exceeds the delta's numerical rank ${metrics.numericalRank} (σ_${r} ≈ 0); use rank ≤ ${metrics.numericalRank}`,
      );
    }
    return { factors: splitFactors(svd, r, o.scaling, o.split, o.dtype), metrics: { ...metrics, shape: [m, n] as [number, number] } };
  });
}

/**
 * LoRA factors with s·B·A = U_r Σ_r V_rᵀ from the first r triplets of an SVD (descending), split
 * as named: "seed" puts Σ_r / s on B, "balanced" puts √(Σ_r / s) on both sides.
 */
export function splitFactors(svd: Svd, r: number, scaling: number, split: FactorSplit, dtype: torch.DType = "float32"): LoraFactorPair {
  return torch.tidy(() => {
    const U = svd.U.narrow(1, 0, r);
    const S = svd.S.narrow(0, 0, r).div(scaling);
    const Vh = svd.Vh.narrow(0, 0, r);
    const [bScale, aScale] = split === "seed" ? [S, null] : [S.sqrt(), S.sqrt()];
    const B = U.mul(bScale.unsqueeze(0)).to(dtype).contiguous();
    const A = (aScale ? Vh.mul(aScale.unsqueeze(1)) : Vh).to(dtype).clone();
    return { A, B };
  });
}

/** Step 2b: LoRA factors B·A = ΔW_r / s for every module, and the truncation metrics. */
export function svdInitFactors(deltas: ReadonlyMap<string, DeltaSource>, options: SvdFactorOptions): SvdFactors {
  const { rank, scaling } = options;
  if (!Number.isInteger(rank) || rank < 1) throw new Error(`rank must be a positive integer, got ${rank}`);
  if (!(scaling > 0) || !Number.isFinite(scaling)) throw new Error(`LoRA scaling s must be a positive number, got ${scaling}`);
  const split = options.split ?? "seed";
  if (split !== "seed" && split !== "balanced") throw new Error(`split must be "seed" or "balanced", got ${JSON.stringify(split)}`);
  if (deltas.size === 0) throw new Error("no modules to factor");
  const o = { rank, scaling, split, dtype: options.dtype ?? "float32", denseMethod: options.denseMethod ?? "exact" } as const;
  for (const [modulePath, delta] of deltas) checkShape(modulePath, delta, rank); // fail before any SVD work
  const result: SvdFactors = { weights: new Map(), metrics: new Map(), rank, scaling, split };
  try {
    for (const modulePath of [...deltas.keys()].sort()) {
      const { factors, metrics } = moduleFactors(modulePath, deltas.get(modulePath)!, o);
      result.weights.set(modulePath, factors);
      result.metrics.set(modulePath, metrics);
    }
  } catch (error) {
    torch.dispose([...result.weights.values()]);
    throw error;
  }
  return result;
}
