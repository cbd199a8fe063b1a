// Singular value decompositions for weight deltas: exact (dense), exact from LoRA-style factors
// without forming the matrix, and randomized (Halko, Martinsson & Tropp 2011) for big dense ones.
// Every result is reduced (U: m×p, S: p descending, Vh: p×n) with canonical signs, so the same
// matrix gives the same vectors whichever path computed them.
import * as torch from "../torch/index.js";
import type { Tensor } from "../torch/index.js";
import { GaussianSource } from "./random.js";

/** M = U diag(S) Vh. */
export interface Svd {
  U: Tensor;
  S: Tensor;
  Vh: Tensor;
}

/** One term scale · B A of a factored matrix (B: m×k, A: k×n). */
export interface FactoredTerm {
  B: Tensor;
  A: Tensor;
  scale?: number;
}

/** A LoRA module's update ΔW = scale · B A (B: out × r, A: r × in; scale s = α/r, docs/experiment.md#lora). */
export type LoraDelta = Required<FactoredTerm>;

export type SvdDtype = "float32" | "float64";

/** float64 stays float64; everything else (half types included) is computed in float32. */
const workingDtype = (...ts: Tensor[]): SvdDtype => (ts.every((t) => t.dtype === "float64") ? "float64" : "float32");

function shape2d(t: Tensor, what: string): [number, number] {
  const s = t.shape;
  if (s.length !== 2) throw new Error(`${what} must be a matrix, got shape [${s}]`);
  return [s[0], s[1]];
}

/**
 * Flips each singular pair so the largest-magnitude entry of every U column is positive
 * (sklearn's svd_flip): singular vectors are only defined up to sign.
 */
export function canonicalSigns({ U, S, Vh }: Svd): Svd {
  return torch.tidy(() => {
    const peak = U.gather(0, U.abs().argmax(0).unsqueeze(0)); // [1, p]
    const signs = peak.ge(0).to(U.dtype).mul(2).sub(1);
    return { U: U.mul(signs), S: S.clone(), Vh: Vh.mul(signs.T.to(Vh.dtype)) };
  });
}

/** Reduced SVD of a dense matrix by LAPACK (through libtorch), in float32 or float64. */
export function exactSvd(M: Tensor, o: { dtype?: SvdDtype } = {}): Svd {
  shape2d(M, "exactSvd: M");
  return torch.tidy(() => canonicalSigns(torch.svd(M.to(o.dtype ?? workingDtype(M)))));
}

/**
 * Exact SVD of ΔW = scale · B A (B: m×k, A: k×n) without forming ΔW: B = Q_B R_B and
 * Aᵀ = Q_A R_A by QR, then ΔW = Q_B (scale · R_B R_Aᵀ) Q_Aᵀ and only the k×k core needs an SVD.
 * O((m + n) k²) instead of O(m n min(m, n)). The core is decomposed in float64 (it is tiny).
 * Gives p = min(k, m, n) singular triplets.
 */
export function factoredSvd(B: Tensor, A: Tensor, scale = 1, o: { dtype?: SvdDtype } = {}): Svd {
  const [, kB] = shape2d(B, "factoredSvd: B");
  const [kA] = shape2d(A, "factoredSvd: A");
  if (kB !== kA) throw new Error(`factoredSvd: inner sizes differ, B is [${B.shape}] and A is [${A.shape}]`);
  if (!Number.isFinite(scale)) throw new Error(`factoredSvd: scale must be a finite number, got ${scale}`);
  const dtype = o.dtype ?? workingDtype(B, A);
  return torch.tidy(() => {
    const b = torch.qr(B.to(dtype));
    const a = torch.qr(A.to(dtype).T);
    const core = b.R.to("float64").matmul(a.R.to("float64").T).mul(scale);
    const c = torch.svd(core);
    return canonicalSigns({
      U: b.Q.matmul(c.U.to(dtype)),
      S: c.S.to(dtype),
      Vh: c.Vh.to(dtype).matmul(a.Q.T),
    });
  });
}

/** Exact SVD of Σ scale_i · B_i A_i: one factored matrix [s_1 B_1, s_2 B_2, …] [A_1; A_2; …]. */
export function factoredSumSvd(terms: FactoredTerm[], o: { dtype?: SvdDtype } = {}): Svd {
  if (terms.length === 0) throw new Error("factoredSumSvd: no terms");
  return torch.tidy(() => {
    const dtype = o.dtype ?? workingDtype(...terms.flatMap((t) => [t.B, t.A]));
    const B = torch.cat(
      terms.map((t) => t.B.to(dtype).mul(t.scale ?? 1)),
      1,
    );
    const A = torch.cat(
      terms.map((t) => t.A.to(dtype)),
      0,
    );
    return factoredSvd(B, A, 1, { dtype });
  });
}

export interface RandomizedSvdOptions {
  /** Extra sample columns beyond rank (better accuracy for slowly decaying spectra). */
  oversample?: number;
  /** Subspace (power) iterations; each sharpens the separation of the top rank values. */
  powerIters?: number;
  /** Seed of the Gaussian test matrix (JS-generated, so reproducible everywhere). */
  seed?: number;
  dtype?: SvdDtype;
}

/**
 * Approximate top-`rank` SVD of a dense matrix (as torch.svd_lowrank): sample its range with a
 * Gaussian test matrix, refine by power iterations with re-orthonormalization, then take the
 * exact SVD of the small projected matrix Qᵀ M.
 */
export function randomizedSvd(M: Tensor, rank: number, o: RandomizedSvdOptions = {}): Svd {
  const [m, n] = shape2d(M, "randomizedSvd: M");
  const p = Math.min(m, n);
  if (!Number.isInteger(rank) || rank < 1 || rank > p)
    throw new Error(`randomizedSvd: rank must be an integer in [1, ${p}] for a ${m}×${n} matrix, got ${rank}`);
  const oversample = o.oversample ?? 10;
  const powerIters = o.powerIters ?? 2;
  const samples = Math.min(rank + oversample, p);
  const dtype = o.dtype ?? workingDtype(M);
  return torch.tidy(() => {
    const X = M.to(dtype);
    const omega = new GaussianSource(o.seed ?? 0).randn(n, samples, { dtype, device: X.device });
    let Q = torch.qr(X.matmul(omega)).Q;
    for (let i = 0; i < powerIters; i++) {
      Q = torch.qr(X.T.matmul(Q)).Q;
      Q = torch.qr(X.matmul(Q)).Q;
    }
    const small = torch.svd(Q.T.matmul(X));
    return canonicalSigns({
      U: Q.matmul(small.U.narrow(1, 0, rank)),
      S: small.S.narrow(0, 0, rank),
      Vh: small.Vh.narrow(0, 0, rank).contiguous(),
    });
  });
}

/** The first r triplets, as fresh tensors (not views that would keep the full ones alive). */
export function truncateSvd({ U, S, Vh }: Svd, r: number): Svd {
  return torch.tidy(() => ({ U: U.narrow(1, 0, r).clone(), S: S.narrow(0, 0, r).clone(), Vh: Vh.narrow(0, 0, r).clone() }));
}

/** U diag(S) Vh as a dense matrix: for tests and small matrices only. */
export const reconstruct = ({ U, S, Vh }: Svd): Tensor => torch.tidy(() => U.mul(S).matmul(Vh));
