// Gradient clipping as torch.nn.utils.clip_grad_norm_ (norm_type 2): one 2-norm over all
// gradients together, computed the same way (per-gradient norms, then the norm of those), and
// the same coefficient max_norm / (total + 1e-6) as a tensor op. One deliberate difference: a
// non-finite total is reported but nothing is scaled (PyTorch would multiply every gradient by
// NaN or 0), so the caller can skip the update and keep its gradients for inspection.
import * as torch from "../torch/index.js";
import type { Tensor } from "../torch/index.js";

/** Scalar tensor: the 2-norm of all the gradients together, on the first gradient's device. */
function totalGradNorm(grads: Tensor[]): Tensor {
  const device = grads[0].device;
  // As torch.nn.utils.clip_grad_norm_: on CUDA every gradient's norm from torch._foreach_norm (a few
  // kernels for all of them, not one each), elsewhere one norm each.
  const together = device.startsWith("cuda") && grads.every((g) => g.device === device);
  return torch.stack(together ? torch.foreachNorm(grads) : grads.map((g) => g.norm().to({ device }))).norm();
}

const gradsOf = (params: readonly Tensor[]) => params.map((p) => p.grad).filter((g): g is Tensor => g !== null);

/** Scalar tensor: the joint 2-norm of the gradients of params (null when none has one). Reading it syncs. */
export function gradNormTensor(params: readonly Tensor[]): Tensor | null {
  return torch.noGrad(() =>
    torch.tidy(() => {
      const grads = gradsOf(params);
      return grads.length === 0 ? null : totalGradNorm(grads);
    }),
  );
}

/**
 * Scales the gradients so their joint 2-norm is at most maxNorm, given that norm both as the
 * tensor from gradNormTensor and as its value already read (so this adds no host sync).
 */
export function scaleToMaxNorm(params: readonly Tensor[], total: Tensor, totalValue: number, maxNorm: number): void {
  if (!(maxNorm > 0)) throw new Error(`clipGradNorm: maxNorm must be > 0, got ${maxNorm}`);
  // PyTorch multiplies by min(max_norm / (total + 1e-6), 1), evaluated as reciprocal() * max_norm
  // (Tensor.__rtruediv__); a factor of 1 changes nothing, so it is only applied when below 1.
  if (!Number.isFinite(totalValue) || totalValue + 1e-6 <= maxNorm) return;
  torch.noGrad(() =>
    torch.tidy(() => {
      const coef = total.add(1e-6).reciprocal().mul(maxNorm).clamp(null, 1);
      const grads = gradsOf(params);
      if (grads.every((g) => g.device === coef.device)) torch.foreachMul_(grads, coef);
      else for (const g of grads) g.mul_(coef.to({ device: g.device }));
    }),
  );
}

/**
 * Scales the gradients of params in place so that their joint 2-norm is at most maxNorm, and
 * returns the norm before scaling (0 when no parameter has a gradient; NaN or Infinity when a
 * gradient is not finite, in which case nothing is scaled).
 */
export function clipGradNorm(params: readonly Tensor[], maxNorm: number): number {
  if (!(maxNorm > 0)) throw new Error(`clipGradNorm: maxNorm must be > 0, got ${maxNorm}`);
  const total = gradNormTensor(params);
  if (!total) return 0;
  try {
    const value = total.item();
    scaleToMaxNorm(params, total, value, maxNorm);
    return value;
  } finally {
    total.dispose();
  }
}

/** The joint 2-norm of the gradients, leaving them unchanged (0 when there are none). */
export function gradNorm(params: readonly Tensor[]): number {
  const total = gradNormTensor(params);
  if (!total) return 0;
  try {
    return total.item();
  } finally {
    total.dispose();
  }
}
