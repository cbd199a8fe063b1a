// CorDA (Yang et al., NeurIPS 2024; PEFT "corda"): the SVD of W C, with C the covariance of the
// layer's inputs, so the singular directions are those the data actually excites.
//   IPM (instruction-previewed): the r largest triplets become the adapter (like PiSSA on W C).
//   KPM (knowledge-preserved):  the r smallest, leaving the directions the data uses in W.
// In both, A = √(S/s) (Vh C⁻¹) and B = U √(S/s), and W ← W − s·B·A.
import * as torch from "../../torch/index.js";
import type { Tensor } from "../../torch/index.js";
import { type InitFactors, type RankScaling, residualWeight, splitSvd, svdRange, weightMatrix } from "./common.js";

export type CordaMode = "ipm" | "kpm";

/**
 * The damped covariance PEFT inverts: C + d·mean(diag C)·I with d = 0.01, doubled until
 * ‖C' C'⁻¹ − I‖_F < 0.05; returns C' and C'⁻¹.
 */
export function dampedCovariance(C: Tensor): { C: Tensor; inverse: Tensor } {
  const n = C.shape[0];
  if (C.ndim !== 2 || C.shape[1] !== n) throw new Error(`corda: the covariance must be a square matrix, got shape [${C.shape}]`);
  return torch.tidy(() => {
    const c = C.to("float32");
    const eye = torch.eye(n, n, { device: c.device });
    const meanDiagonal = c.mul(eye).sum(1).mean();
    for (let damp = 0.01; Number.isFinite(damp); damp *= 2) {
      const fixed = c.add(eye.mul(meanDiagonal.mul(damp)));
      const inverse = torch.inv(fixed);
      if (fixed.matmul(inverse).sub(eye).norm().item() < 0.05) return { C: fixed, inverse };
    }
    throw new Error("corda: the input covariance cannot be inverted at any damping: is it all zeros or not finite?");
  });
}

/** CorDA factors of W (out × in) from the covariance C (in × in) of its inputs. */
export function corda(W: Tensor, C: Tensor, o: RankScaling & { mode: CordaMode }): InitFactors {
  if (o.mode !== "ipm" && o.mode !== "kpm") throw new Error(`corda mode must be "ipm" or "kpm", got ${JSON.stringify(o.mode)}`);
  return torch.tidy(() => {
    const w = weightMatrix(W, o.rank, `corda-${o.mode}`);
    if (C.shape[0] !== w.shape[1])
      throw new Error(`corda: the covariance is ${C.shape[0]}×${C.shape[1]} but the weight takes ${w.shape[1]} inputs`);
    const damped = dampedCovariance(C);
    const { U, S, Vh } = torch.svd(w.matmul(damped.C));
    const svd = { U, S, Vh: Vh.matmul(damped.inverse) };
    const f = splitSvd(svdRange(svd, o.mode === "ipm" ? 0 : S.shape[0] - o.rank, o.rank), o.scaling);
    return { ...f, residual: residualWeight(w, f, o.scaling) };
  });
}
