// torch.svd_lowrank step for step (Halko, Martinsson & Tropp 2011, algorithms 4.4 and 5.1): the
// randomized SVD that PEFT's pissa_niter_N, LoRA-GA and EVA call. Unlike lowrank/svd.ts's
// randomizedSvd (oversampled, sign-canonical), it keeps torch's exact sequence of products and
// QRs, so the same test matrix gives PEFT's factors, signs included.
//
// svdLowrankRight computes the same thing for float64 batches with matrix products and batched
// Cholesky factorizations (EVA's incremental PCA calls it hundreds of times per layer, where
// cuSOLVER's QRs and SVDs, one matrix per call, would dominate): the randomized SVD depends on its
// QRs only through the subspaces they span, so any accurate orthonormalization gives its result,
// up to rounding and the signs of the singular vectors.
import * as torch from "../../torch/index.js";
import type { Tensor } from "../../torch/index.js";
import type { RandomSource } from "./common.js";

/** M ≈ U diag(S) Vᵀ with q columns (torch's return convention: V, not Vh). */
export interface LowrankSvd {
  U: Tensor;
  S: Tensor;
  V: Tensor;
}

function checkArguments(M: Tensor, q: number, niter: number): void {
  if (M.ndim < 2) throw new Error(`svdLowrank: M must be a matrix or a batch of them, got shape [${M.shape}]`);
  if (!Number.isInteger(q) || q < 1) throw new Error(`svdLowrank: q must be a positive integer, got ${q}`);
  if (!Number.isInteger(niter) || niter < 0) throw new Error(`svdLowrank: niter must be an integer ≥ 0, got ${niter}`);
}

/**
 * The range finder of torch.svd_lowrank: an orthonormal basis Q of the range of A [..., m, n],
 * sampled with the n × q test matrix R (one for the whole batch) and refined by niter subspace
 * iterations, each product orthonormalized by `orth`.
 */
function rangeBasis(A: Tensor, R: Tensor, niter: number, orth: (Y: Tensor) => Tensor): Tensor {
  // Each step's products freed at once: on a batch they are as large as Q.
  const step = (M: Tensor, Q: Tensor) => torch.tidy(() => orth(M.matmul(Q)));
  let Q = step(A, R);
  for (let i = 0; i < niter; i++) {
    for (const M of [A.T, A]) {
      const next = step(M, Q);
      Q.dispose();
      Q = next;
    }
  }
  return Q;
}

const householder = (Y: Tensor) => torch.qr(Y).Q;

/**
 * torch.svd_lowrank(M, q, niter) of a matrix or of each matrix of a batch [..., m, n] (one test
 * matrix for all, as PEFT's re-seeded generator draws the same one for each): a wide M is
 * transposed first; the range of the tall matrix A is sampled with an n × q Gaussian test matrix,
 * refined by niter subspace iterations, and the SVD of the projection Qᵀ A gives the result.
 * Exact (up to rounding) when q ≥ min(m, n).
 */
export function svdLowrank(M: Tensor, q: number, niter: number, random: RandomSource): LowrankSvd {
  checkArguments(M, q, niter);
  const wide = M.shape[M.ndim - 2] < M.shape[M.ndim - 1];
  return torch.tidy(() => {
    const A = wide ? M.T : M;
    const R = random.normal(A.shape[A.ndim - 1], q, { dtype: A.dtype, device: A.device });
    const Q = rangeBasis(A, R, niter, householder);
    const small = torch.svd(Q.T.matmul(A));
    const U = Q.matmul(small.U);
    const V = small.Vh.T;
    return wide ? { U: V, S: small.S, V: U } : { U, S: small.S, V };
  });
}

/**
 * Q with orthonormal columns spanning those of each Y [..., m, k] (float64, m ≥ k): Cholesky QR
 * twice (Y = Q R with R from the Cholesky factor of YᵀY; the second pass restores the
 * orthogonality the first loses to rounding, for condition numbers of Y up to about 10⁷), and a
 * device scalar, > 0 where a YᵀY was not numerically positive-definite (Y of lower rank), whose Q
 * is then not to be used. Nothing is read from the device.
 */
export function choleskyQr(Y: Tensor): { Q: Tensor; failed: Tensor } {
  return torch.tidy(() => {
    const pass = (Z: Tensor) => {
      const { L, info } = torch.choleskyEx(Z.T.matmul(Z));
      return { Q: torch.solveTriangular(L.T, Z, { upper: true, left: false }), failed: info.max() };
    };
    const first = pass(Y);
    const second = pass(first.Q);
    return { Q: second.Q, failed: first.failed.add(second.failed) };
  });
}

/**
 * The singular values S [..., q] and right singular vectors V [..., n, q] that
 * svdLowrank(M, q, niter, random) gives for a float64 M [..., m, n], signs aside, by the same
 * subspace iteration from the same test matrix, with its QRs replaced by choleskyQr (falling back
 * to svdLowrank itself where one breaks down, or where q > min(m, n)). For a wide M, whose right
 * singular vectors come from the left ones of the small q × m projection B, those come from the
 * eigendecomposition of the q × q matrix B Bᵀ, solved on the host (microseconds for a batch of
 * 64 × 64, where the device's eigen and SVD solvers run one matrix at a time); a tall M takes the
 * SVD of B as svdLowrank does. Reads the device twice.
 */
export function svdLowrankRight(M: Tensor, q: number, niter: number, random: RandomSource): { S: Tensor; V: Tensor } {
  checkArguments(M, q, niter);
  if (M.dtype !== "float64") throw new Error(`svdLowrankRight: M must be float64, got ${M.dtype}`);
  const [m, n] = M.shape.slice(-2);
  const exact = () =>
    torch.tidy(() => {
      const { S, V } = svdLowrank(M, q, niter, random);
      return { S, V };
    });
  if (q > Math.min(m, n)) return exact();
  const wide = m < n;
  const fast = torch.tidy(() => {
    const A = wide ? M.T : M;
    const R = random.normal(A.shape[A.ndim - 1], q, { dtype: A.dtype, device: A.device });
    const failures: Tensor[] = [];
    const Q = rangeBasis(A, R, niter, (Y) => {
      const { Q, failed } = choleskyQr(Y);
      failures.push(torch.keep(failed));
      return Q;
    });
    const failed = torch.stack(failures).max().item() > 0;
    torch.dispose(failures); // kept out of rangeBasis's own scopes, so not this one's either
    if (failed) return null;
    const B = Q.T.matmul(A);
    if (!wide) {
      const small = torch.svd(B);
      return { S: small.S, V: small.Vh.T };
    }
    const { values, vectors } = torch.eigh(B.matmul(B.T).to("cpu"));
    const S = values
      .flip(values.ndim - 1)
      .clamp(0)
      .sqrt()
      .to({ device: M.device });
    return { S, V: Q.matmul(vectors.flip(vectors.ndim - 1).to({ device: M.device })) };
  });
  return fast ?? exact();
}
