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
  return torch.stack(grads.map((g) => g.norm().to({ device }))).norm();
}

const gradsOf = (params: readonly Tensor[]) => params.map((p) => p.grad).filter((g): g is Tensor => g !== null);

/**
 * Scales the gradients of params in place so that their joint 2-norm is at most maxNorm, and
 * returns the norm before scaling (0 when no parameter has a gradient; NaN or Infinity when a
 * gradient is not finite, in which case nothing is scaled).
 */
export function clipGradNorm(params: readonly Tensor[], maxNorm: number): number {
  if (!(maxNorm > 0)) throw new Error(`clipGradNorm: maxNorm must be > 0, got ${maxNorm}`);
  return torch.noGrad(() =>
    torch.tidy(() => {
      const grads = gradsOf(params);
      if (grads.length === 0) return 0;
      const total = totalGradNorm(grads);
      const totalValue = total.item();
      if (!Number.isFinite(totalValue)) return totalValue;
      // PyTorch evaluates max_norm / (total + 1e-6) as reciprocal() * max_norm (Tensor.__rtruediv__).
      const coef = total.add(1e-6).reciprocal().mul(maxNorm);
      // PyTorch clamps the coefficient to 1 and always multiplies; multiplying by 1 changes nothing.
      if (coef.item() < 1) for (const g of grads) g.mul_(coef.to({ device: g.device }));
      return totalValue;
    }),
  );
}

/** The joint 2-norm of the gradients, leaving them unchanged (0 when there are none). */
export function gradNorm(params: readonly Tensor[]): number {
  return torch.noGrad(() =>
    torch.tidy(() => {
      const grads = gradsOf(params);
      return grads.length === 0 ? 0 : totalGradNorm(grads).item();
    }),
  );
}
