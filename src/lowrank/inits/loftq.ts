// LoftQ (Li et al., ICLR 2024; PEFT "loftq" with loftq_bits = 4): alternately quantize W − B·A to
// NF4 and refit B·A to the rest by a top-r SVD, so that dequant(Q) + B·A ≈ W. PEFT quantizes with
// bitsandbytes (4-bit NF4, blocks of 64, float32 absmax); nf4RoundTrip reproduces that arithmetic.
import * as torch from "../../torch/index.js";
import type { Tensor } from "../../torch/index.js";
import { type InitFactors, splitSvd, svdRange, weightMatrix } from "./common.js";

/**
 * The 16 values of the NF4 data type (Dettmers et al. 2023, QLoRA, appendix E): quantiles of a
 * standard normal scaled to [−1, 1] with an exact zero, as bitsandbytes stores them (float32).
 */
export const NF4_CODE = [
  -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635, -0.18477343022823334, -0.09105003625154495,
  0.0, 0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941,
  0.7229568362236023, 1.0,
];

/** bitsandbytes' block size for 4-bit weights. */
export const NF4_BLOCK = 64;

/**
 * W → dequantize(quantize_nf4(W)), as bitsandbytes does it: W flattened row by row into blocks of
 * 64; in each block x·(1/absmax) goes to the nearest code value (the midpoints between codes,
 * rounded to float32, are the decision thresholds) and comes back as code·absmax.
 */
export function nf4RoundTrip(W: Tensor): Tensor {
  return torch.tidy(() => {
    const flat = W.to("float32").reshape(-1);
    const n = flat.shape[0];
    const pad = (NF4_BLOCK - (n % NF4_BLOCK)) % NF4_BLOCK;
    const blocks = (pad ? torch.cat([flat, torch.zeros([pad], { device: flat.device })]) : flat).reshape(-1, NF4_BLOCK);
    const absmax = blocks.abs().maxDim(1, true)[0];
    const x = blocks.mul(absmax.reciprocal());
    let index = torch.zeros(x.shape, { dtype: "int64", device: x.device });
    for (let i = 0; i + 1 < NF4_CODE.length; i++) index = index.add(x.gt(Math.fround((NF4_CODE[i] + NF4_CODE[i + 1]) / 2)).to("int64"));
    const code = torch.tensor(Float32Array.from(NF4_CODE), { device: x.device });
    const values = code.indexSelect(0, index.reshape(-1)).reshape(x.shape).mul(absmax);
    return values.reshape(-1).narrow(0, 0, n).reshape(W.shape);
  });
}

/**
 * PEFT's loftq_init(W, num_bits = 4, reduced_rank = r, num_iter): B = U_r √S_r, A = √S_r V_rᵀ of
 * W − dequant(Q) (no division by the LoRA scaling: use α = r), and the base weight becomes
 * dequant(Q). Each further iteration quantizes W − B·A again.
 */
export function loftq(W: Tensor, o: { rank: number; iterations?: number }): InitFactors {
  const iterations = o.iterations ?? 1;
  if (!Number.isInteger(iterations) || iterations < 1) throw new Error(`loftq needs at least one iteration, got ${iterations}`);
  return torch.tidy(() => {
    const w = weightMatrix(W, o.rank, "loftq");
    let target = w;
    for (let i = 0; ; i++) {
      const dequantized = nf4RoundTrip(target);
      const f = splitSvd(svdRange(torch.svd(w.sub(dequantized)), 0, o.rank), 1);
      if (i + 1 === iterations) return { ...f, residual: dequantized };
      target = w.sub(f.B.matmul(f.A));
    }
  });
}
