// What the LoRA inits share: the split of a truncated SVD into factors, the residual base weight,
// the checks on rank, and the source of their random numbers.
import type { InitFactors } from "../../model/lora.js";
import * as torch from "../../torch/index.js";
import type { Tensor } from "../../torch/index.js";
import type { FactorSplit } from "../factors.js";
import { GaussianSource } from "../random.js";
import type { Svd } from "../svd.js";

export type { InitFactors };

/** The LoRA rank r and scaling s (α / r, or α / √r with rsLoRA) every init is given. */
export interface RankScaling {
  rank: number;
  scaling: number;
}

/**
 * LoRA factors with s·B·A = U diag(S) Vh for the given singular triplets:
 *   balanced: B = U √(S/s), A = √(S/s) Vh   (PiSSA, MiLoRA, CorDA, LoftQ with s = 1)
 *   seed:     B = U S/s,    A = Vh
 */
export function splitSvd({ U, S, Vh }: Svd, scaling: number, split: FactorSplit = "balanced"): { A: Tensor; B: Tensor } {
  return torch.tidy(() => {
    const s = S.div(scaling);
    if (split === "seed") return { A: Vh.contiguous(), B: U.mul(s).contiguous() };
    const root = s.sqrt();
    return { A: Vh.mul(root.unsqueeze(1)).contiguous(), B: U.mul(root).contiguous() };
  });
}

/** r singular triplets from position start (0: the largest; p − r: the r smallest). */
export function svdRange({ U, S, Vh }: Svd, start: number, r: number): Svd {
  return { U: U.narrow(1, start, r), S: S.narrow(0, start, r), Vh: Vh.narrow(0, start, r) };
}

/** The base weight an init leaves behind so that residual + s·B·A = W (float32, as PEFT computes it). */
export const residualWeight = (W: Tensor, f: { A: Tensor; B: Tensor }, scaling: number): Tensor =>
  torch.tidy(() => W.to("float32").sub(f.B.mul(scaling).matmul(f.A)));

/** W as a float32 matrix, after checking that rank r fits it. */
export function weightMatrix(W: Tensor, r: number, what: string): Tensor {
  if (W.ndim !== 2) throw new Error(`${what}: the weight must be a matrix (out × in), got shape [${W.shape}]`);
  checkRank(r, Math.min(...W.shape), `${what} of a ${W.shape[0]}×${W.shape[1]} weight`);
  return W.to("float32");
}

export function checkRank(r: number, max: number, what: string): void {
  if (!Number.isInteger(r) || r < 1 || r > max)
    throw new Error(`${what}: the LoRA rank must be an integer in [1, ${max}], got ${r}: use a smaller --lora-rank`);
}

/**
 * The random numbers of an init: standard normal matrices and permutations. PyTorch's generator
 * cannot be reproduced outside PyTorch, so svdlora draws from its own seeded source; the tests
 * replay the draws PEFT made (recorded by the golden script) through this same interface.
 */
export interface RandomSource {
  /** A rows × cols matrix of standard normals (float32 on the CPU unless told otherwise). */
  normal(rows: number, cols: number, o?: { dtype?: torch.DType; device?: string }): Tensor;
  /** A uniformly random permutation of 0 … n − 1. */
  permutation(n: number): number[];
}

/** A RandomSource from one integer seed (the same numbers on every machine and device). */
export function seededRandom(seed: number): RandomSource {
  const g = new GaussianSource(seed);
  return {
    normal: (rows, cols, o = {}) => g.randn(rows, cols, { dtype: o.dtype ?? "float32", device: o.device }),
    permutation: (n) => {
      const p = Array.from({ length: n }, (_, i) => i);
      for (let i = n - 1; i > 0; i--) {
        const j = Math.floor(g.uniform() * (i + 1));
        [p[i], p[j]] = [p[j], p[i]];
      }
      return p;
    },
  };
}
