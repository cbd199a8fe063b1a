// Inits from the full-weight gradient G = dL/dW (out × in) of a few batches, averaged over batches
// (see calibration.ts): the adapter starts aligned with what full fine-tuning would do first.
import * as torch from "../../torch/index.js";
import type { Tensor } from "../../torch/index.js";
import { type InitFactors, type RandomSource, type RankScaling, checkRank, residualWeight } from "./common.js";
import { svdLowrank } from "./lowrank.js";

/** Which of the first 2r gradient singular triplets go to A (right vectors) and to B (left, times σ). */
export type LoraGaDirection = "ArBr" | "A2rBr" | "ArB2r" | "random";
/** How B·A is scaled after the split. */
export type LoraGaScale = "stable" | "weight_svd" | "gd_scale" | "unit";

export interface LoraGaOptions extends RankScaling {
  /** Default "ArB2r": A = V[:, :r]ᵀ, B = U[:, r:2r] diag(σ_r … σ_2r). */
  direction?: LoraGaDirection;
  /** Default "stable": B ·= out^¼ / √γ. */
  scale?: LoraGaScale;
  /** γ of the stable scale; default 16. */
  stableGamma?: number;
  /** For torch.svd_lowrank's test matrices (and the "random" direction). */
  random: RandomSource;
}

/**
 * LoRA-GA (Wang et al., NeurIPS 2024; PEFT "lora_ga"): G ≈ U diag(S) Vᵀ by
 * torch.svd_lowrank(G, q = min(4r, out, in), niter = 4); A and B take disjoint sets of its first
 * 2r triplets (direction), B is rescaled (scale), and W ← W − s·B·A so the model starts unchanged.
 */
export function loraGa(W: Tensor, G: Tensor, o: LoraGaOptions): InitFactors {
  const r = o.rank;
  const [outF, inF] = W.shape;
  if (`${G.shape}` !== `${W.shape}`) throw new Error(`lora-ga: the gradient is [${G.shape}] but the weight is [${W.shape}]`);
  checkRank(2 * r, Math.min(outF, inF), "lora-ga (which uses 2r gradient directions)");
  return torch.tidy(() => {
    const g = G.to("float32");
    const { U, S, V } = svdLowrank(g, Math.min(4 * r, outF, inF), 4, o.random);
    const [aIndex, bIndex] = loraGaIndices(o.direction ?? "ArB2r", r, o.random);
    const pick = (t: Tensor, dim: number, index: number[]) => t.indexSelect(dim, torch.tensor(index, { dtype: "int64", device: t.device }));
    const sB = pick(S, 0, bIndex);
    let A = pick(V, 1, aIndex).T.contiguous();
    let B = pick(U, 1, bIndex).mul(sB);
    const scale = o.scale ?? "stable";
    if (scale === "stable") B = B.mul(outF ** 0.25 / (o.stableGamma ?? 16) ** 0.5);
    else if (scale === "weight_svd") {
      const top = svdLowrank(W.to("float32"), r, 4, o.random).S.select(0, 0);
      if (sB.select(0, 0).item() > 0) B = B.mul(top.div(sB.select(0, 0)));
    } else if (scale === "gd_scale") {
      A = A.div(o.scaling);
      B = B.div(o.scaling);
    } else if (scale !== "unit")
      throw new Error(`lora-ga scale must be stable, weight_svd, gd_scale or unit, got ${JSON.stringify(scale)}`);
    const f = { A, B: B.contiguous() };
    return { ...f, residual: residualWeight(W, f, o.scaling) };
  });
}

/** [A's indices, B's indices] into the first 2r triplets. */
function loraGaIndices(direction: LoraGaDirection, r: number, random: RandomSource): [number[], number[]] {
  const range = (start: number, step = 1) => Array.from({ length: r }, (_, i) => start + i * step);
  switch (direction) {
    case "ArBr":
      return [range(1, 2), range(0, 2)];
    case "A2rBr":
      return [range(r), range(0)];
    case "ArB2r":
      return [range(0), range(r)];
    case "random": {
      const chosen = random.permutation(2 * r).slice(0, r);
      return [chosen, chosen];
    }
    default:
      throw new Error(`lora-ga direction must be ArBr, A2rBr, ArB2r or random, got ${JSON.stringify(direction)}`);
  }
}

export interface LoraOneOptions {
  rank: number;
  /** γ of the stable scale (the authors' default 128); B and A are each divided by √γ. */
  stableGamma?: number;
}

/**
 * LoRA-One (Zhang, Liu & Chen, ICML 2025; the authors' code, init "gradient", direction
 * "LoRA-One", scale "stable"): −G = U diag(S) Vᵀ, B = U_r √S_r / √(σ₁ γ), A = √S_r V_rᵀ / √(σ₁ γ).
 * W is not changed: the adapter's first output s·B·A = s/(γ σ₁) · (−G)_r is one gradient step.
 */
export function loraOne(G: Tensor, o: LoraOneOptions): InitFactors {
  if (G.ndim !== 2) throw new Error(`lora-one: the gradient must be a matrix, got shape [${G.shape}]`);
  checkRank(o.rank, Math.min(...G.shape), "lora-one");
  return torch.tidy(() => {
    const { U, S, Vh } = torch.svd(G.to("float32").neg());
    const root = S.narrow(0, 0, o.rank).sqrt();
    const norm = S.select(0, 0).sqrt();
    const gamma = Math.sqrt(o.stableGamma ?? 128);
    if (S.select(0, 0).item() === 0) throw new Error("lora-one: the gradient is zero; there is no direction to start from");
    const B = U.narrow(1, 0, o.rank).mul(root).div(norm).div(gamma);
    const A = Vh.narrow(0, 0, o.rank).mul(root.unsqueeze(1)).div(norm).div(gamma);
    return { A: A.contiguous(), B: B.contiguous() };
  });
}

/**
 * LoRA-One's preconditioned gradients (the authors' "scaled AdamW", before the Adam moments):
 * ∇A ← (BᵀB + λI)⁻¹ ∇A and ∇B ← ∇B (A Aᵀ + λI)⁻¹, λ = 1e-6. Their optimizer steps A first and
 * builds B's preconditioner from the updated A.
 */
export function loraOnePreconditioned(
  factors: { A: Tensor; B: Tensor },
  grads: { A: Tensor; B: Tensor },
  reg = 1e-6,
): { A: Tensor; B: Tensor } {
  return torch.tidy(() => {
    const { A, B } = factors;
    const eye = torch.eye(A.shape[0], A.shape[0], { dtype: A.dtype, device: A.device });
    return {
      A: torch.inv(B.T.matmul(B).add(eye.mul(reg))).matmul(grads.A),
      B: grads.B.matmul(torch.inv(A.matmul(A.T).add(eye.mul(reg)))),
    };
  });
}
