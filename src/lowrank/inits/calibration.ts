// The statistics the data-dependent inits need, accumulated from a calibration pass over a few
// training batches, per target linear layer y = x Wᵀ + b (x: [..., in], y: [..., out]):
//
//   lora-ga, lora-one   G = (1/N) Σ_batches dL_b/dW = (1/N) Σ_b gy_bᵀ x_b    (out × in)
//                       L_b the batch's mean token loss, gy_b = dL_b/dy; N batches (PEFT and the
//                       LoRA-One authors average per backward pass). A few batches: LoRA-One's
//                       default is 8 single samples, PEFT's examples use a handful.
//   corda-ipm/kpm       C = (1/N) Σ_sequences (X/|max X|)ᵀ (X/|max X|)        (in × in)
//                       X the [T, in] inputs of one sequence (PEFT's hook assumes batch size 1,
//                       every token counted), max X its largest entry (signed, then made positive).
//   eva                 the rows of x at positions with attention_mask = 1 and label ≠ −100, one
//                       batch at a time, cycling through the batches while EvaState.next() asks.
//
// GradientMean and InputCovariance below accumulate the first two from tensors the caller
// captures; EvaState (eva.ts) consumes the third.
import * as torch from "../../torch/index.js";
import type { Tensor } from "../../torch/index.js";

/** Sums of float32 matrices per layer, and how many terms each has. */
class MeanOfSums {
  private readonly sums = new Map<string, Tensor>();
  private readonly counts = new Map<string, number>();

  protected accumulate(layer: string, term: Tensor): void {
    const sum = this.sums.get(layer);
    this.sums.set(layer, torch.keep(sum ? sum.add(term) : term.to({ dtype: "float32", copy: true })));
    sum?.dispose();
    this.counts.set(layer, (this.counts.get(layer) ?? 0) + 1);
  }

  layers(): string[] {
    return [...this.sums.keys()];
  }

  /**
   * The layer's mean, handed over: its sum divided by its count in place, no longer held here (so
   * a statistic is never in memory twice; a second call for the layer is an error).
   */
  takeMean(layer: string): Tensor {
    const sum = this.sums.get(layer);
    if (!sum) throw new Error(`no calibration statistics for ${layer}: was it targeted during the calibration pass?`);
    this.sums.delete(layer);
    return sum.div_(this.counts.get(layer)!);
  }

  dispose(): void {
    torch.dispose([...this.sums.values()]);
    this.sums.clear();
    this.counts.clear();
  }
}

/** G for LoRA-GA and LoRA-One: call once per layer and batch. */
export class GradientMean extends MeanOfSums {
  /** The batch's weight gradient dL/dW as autograd computed it. */
  addGradient(layer: string, grad: Tensor): void {
    torch.tidy(() => this.accumulate(layer, grad.to("float32")));
  }

  /** The same from the layer's input x [..., in] and output gradient gy [..., out]: gyᵀ x. */
  addProducts(layer: string, x: Tensor, gy: Tensor): void {
    torch.tidy(() => {
      const rows = (t: Tensor) => t.to("float32").reshape(-1, t.shape[t.ndim - 1]);
      this.accumulate(layer, rows(gy).T.matmul(rows(x)));
    });
  }
}

/** C for CorDA: call once per layer and sequence. */
export class InputCovariance extends MeanOfSums {
  /** x: one sequence's inputs [T, in] (or [1, T, in]). */
  add(layer: string, x: Tensor): void {
    torch.tidy(() => {
      const X = x.to("float32").reshape(-1, x.shape[x.ndim - 1]);
      const scaled = X.div(X.max().abs());
      if (scaled.isfinite().logicalNot().sum().item() > 0)
        throw new Error(`CorDA: the inputs of ${layer} are not finite (or all zero) after scaling by their maximum`);
      this.accumulate(layer, scaled.T.matmul(scaled));
    });
  }
}

/** The rows of x [B, T, in] where keep [B, T] is true (non-zero), in row-major order (EVA's input rows). */
export function maskedRows(x: Tensor, keep: Tensor): Tensor {
  const flags = torch.tidy(() => Array.from(keep.reshape(-1).to("float32").data() as Float32Array));
  if (flags.length * x.shape[x.ndim - 1] !== x.numel())
    throw new Error(`maskedRows: mask [${keep.shape}] does not fit inputs [${x.shape}]`);
  const rows = flags.flatMap((f, i) => (f !== 0 ? [i] : []));
  return torch.tidy(() => x.reshape(-1, x.shape[x.ndim - 1]).indexSelect(0, torch.tensor(rows, { dtype: "int64", device: x.device })));
}
