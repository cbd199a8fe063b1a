// torch.svd_lowrank step for step (Halko, Martinsson & Tropp 2011, algorithms 4.4 and 5.1): the
// randomized SVD that PEFT's pissa_niter_N, LoRA-GA and EVA call. Unlike lowrank/svd.ts's
// randomizedSvd (oversampled, sign-canonical), it keeps torch's exact sequence of products and
// QRs, so the same test matrix gives PEFT's factors, signs included.
import * as torch from "../../torch/index.js";
import type { Tensor } from "../../torch/index.js";
import type { RandomSource } from "./common.js";

/** M ≈ U diag(S) Vᵀ with q columns (torch's return convention: V, not Vh). */
export interface LowrankSvd {
  U: Tensor;
  S: Tensor;
  V: Tensor;
}

/**
 * torch.svd_lowrank(M, q, niter): a wide M is transposed first; the range of the tall matrix A is
 * sampled with an n × q Gaussian test matrix, refined by niter subspace iterations, and the SVD of
 * the projection Qᵀ A gives the result. Exact (up to rounding) when q ≥ min(m, n).
 */
export function svdLowrank(M: Tensor, q: number, niter: number, random: RandomSource): LowrankSvd {
  if (M.ndim !== 2) throw new Error(`svdLowrank: M must be a matrix, got shape [${M.shape}]`);
  if (!Number.isInteger(q) || q < 1) throw new Error(`svdLowrank: q must be a positive integer, got ${q}`);
  if (!Number.isInteger(niter) || niter < 0) throw new Error(`svdLowrank: niter must be an integer ≥ 0, got ${niter}`);
  const wide = M.shape[0] < M.shape[1];
  return torch.tidy(() => {
    const A = wide ? M.T : M;
    const R = random.normal(A.shape[1], q, { dtype: A.dtype, device: A.device });
    let Q = torch.qr(A.matmul(R)).Q;
    for (let i = 0; i < niter; i++) {
      Q = torch.qr(A.T.matmul(Q)).Q;
      Q = torch.qr(A.matmul(Q)).Q;
    }
    const small = torch.svd(Q.T.matmul(A));
    const U = Q.matmul(small.U);
    const V = small.Vh.T;
    return wide ? { U: V, S: small.S, V: U } : { U, S: small.S, V };
  });
}
