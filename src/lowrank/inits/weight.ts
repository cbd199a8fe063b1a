// Inits computed from the base weight W (out × in) alone. Each mirrors its reference step for
// step (float32, PEFT's order of operations) and returns A (r × in), B (out × r) and, where the
// method moves part of W into the adapter, the residual base weight.
import * as torch from "../../torch/index.js";
import type { Tensor } from "../../torch/index.js";
import {
  type InitFactors,
  type RandomSource,
  type RankScaling,
  checkRank,
  residualWeight,
  splitSvd,
  svdRange,
  weightMatrix,
} from "./common.js";
import { svdLowrank } from "./lowrank.js";

/** PiSSA (PEFT "pissa"): the top-r SVD of W, √ split; W ← W − s·B·A. */
export function pissa(W: Tensor, o: RankScaling): InitFactors {
  return torch.tidy(() => {
    const w = weightMatrix(W, o.rank, "pissa");
    const f = splitSvd(svdRange(torch.svd(w), 0, o.rank), o.scaling);
    return { ...f, residual: residualWeight(w, f, o.scaling) };
  });
}

/**
 * PiSSA with a fast SVD (PEFT "pissa_niter_N"): torch.svd_lowrank(W, q = r, niter = N), no
 * oversampling, then as pissa.
 */
export function pissaNiter(W: Tensor, o: RankScaling & { niter: number; random: RandomSource }): InitFactors {
  return torch.tidy(() => {
    const w = weightMatrix(W, o.rank, `pissa-niter-${o.niter}`);
    const { U, S, V } = svdLowrank(w, o.rank, o.niter, o.random);
    const f = splitSvd({ U, S, Vh: V.T }, o.scaling);
    return { ...f, residual: residualWeight(w, f, o.scaling) };
  });
}

/**
 * MiLoRA (Wang et al., NAACL 2025): PiSSA's split on the r smallest singular triplets of W, so
 * the adapter starts in the least-used directions; W ← W − s·B·A.
 */
export function milora(W: Tensor, o: RankScaling): InitFactors {
  return torch.tidy(() => {
    const w = weightMatrix(W, o.rank, "milora");
    const svd = torch.svd(w);
    const f = splitSvd(svdRange(svd, svd.S.shape[0] - o.rank, o.rank), o.scaling);
    return { ...f, residual: residualWeight(w, f, o.scaling) };
  });
}

/**
 * MiCA (PEFT "mica"): B = the r left singular vectors of the smallest singular values, frozen;
 * A = 0, so the model is unchanged at the start and W stays as it is.
 */
export function mica(W: Tensor, o: { rank: number }): InitFactors {
  return torch.tidy(() => {
    const w = weightMatrix(W, o.rank, "mica");
    const { U } = torch.svd(w);
    const B = U.narrow(1, U.shape[1] - o.rank, o.rank).contiguous();
    return { A: torch.zeros([o.rank, w.shape[1]], { device: w.device }), B, frozenB: true };
  });
}

/** OLoRA (PEFT "olora"): W = Q R, B = Q[:, :r], A = R[:r] (no division by s); W ← W − s·B·A. */
export function olora(W: Tensor, o: RankScaling): InitFactors {
  return torch.tidy(() => {
    const w = weightMatrix(W, o.rank, "olora");
    const { Q, R } = torch.qr(w);
    const f = { A: R.narrow(0, 0, o.rank).contiguous(), B: Q.narrow(1, 0, o.rank).contiguous() };
    return { ...f, residual: residualWeight(w, f, o.scaling) };
  });
}

/**
 * PEFT "orthogonal": Q from the QR of an r × r Gaussian; A = (G₁ Q_odd)ᵀ / 10 and
 * B = G₂ᵀ Q_even / 10 with Gaussian G₁ (in × r/2), G₂ (r/2 × out), Q_odd / Q_even its rows
 * 0, 2, … and 1, 3, …. Those rows are orthogonal, so B·A = 0 and W stays as it is. r must be even.
 */
export function orthogonal(W: Tensor, o: { rank: number; random: RandomSource }): InitFactors {
  const [outF, inF] = W.shape;
  checkRank(o.rank, Math.min(outF, inF), "orthogonal");
  if (o.rank % 2 !== 0) throw new Error(`orthogonal init needs an even LoRA rank, got ${o.rank}`);
  return torch.tidy(() => {
    const half = o.rank / 2;
    const { Q } = torch.qr(o.random.normal(o.rank, o.rank));
    const odd = Q.slice(0, 0, o.rank, 2);
    const even = Q.slice(0, 1, o.rank, 2);
    const A = o.random.normal(inF, half).matmul(odd).T.div(10);
    const B = o.random.normal(half, outF).T.matmul(even).div(10);
    return { A: A.to({ device: W.device }).contiguous(), B: B.to({ device: W.device }).contiguous() };
  });
}
