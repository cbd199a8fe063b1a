// Gradient clipping as torch.nn.utils.clip_grad_norm_ (norm_type 2): one 2-norm over all
// gradients together, computed the same way (per-gradient norms, then the norm of those), and
// the same coefficient max_norm / (total + 1e-6) as a tensor op. One deliberate difference: a
// non-finite total is reported but nothing is scaled (PyTorch would multiply every gradient by
// NaN or 0), so the caller can skip the update and keep its gradients for inspection.
// Concurrent runs (train/step.ts) clip together: their norms and coefficients are computed for
// all of them at once, each run's the same numbers as alone, so the calls into libtorch do not
// grow with the runs.
import * as torch from "../torch/index.js";
import type { Tensor } from "../torch/index.js";

/** The gradients of the parameters that have one. */
export const gradsOf = (params: readonly Tensor[]) => params.map((p) => p.grad).filter((g): g is Tensor => g !== null);

/**
 * Each list's joint 2-norm, as one tensor [lists] on `device` (0 for an empty list); every
 * gradient must be on that device. As clip_grad_norm_: every gradient's norm (torch._foreach_norm:
 * on CUDA a few kernels for all of them, elsewhere one norm each), then the norm of each list's.
 * Lists of the same length take that second norm together, as the rows of one matrix [lists,
 * length]: each row's reduction is the one its list alone gets as a matrix of one row, so a list's
 * norm does not depend on the lists beside it.
 */
export function gradNorms(lists: readonly (readonly Tensor[])[], device: string): Tensor {
  return torch.noGrad(() =>
    torch.tidy(() => {
      const each = lists.some((l) => l.length > 0) ? torch.foreachNorm(lists.flat()) : null; // [gradients]
      if (!each) return torch.zeros([lists.length], { device });
      const n = lists[0].length;
      if (lists.every((l) => l.length === n)) return each.view(lists.length, n).norm(2, [1]);
      // Lists of several lengths: one matrix per length, then each list's norm put in its place (0 for an empty one).
      let seen = 0;
      const first = lists.map((l) => {
        seen += l.length;
        return seen - l.length;
      });
      const byLength = new Map<number, number[]>();
      lists.forEach((l, i) => {
        if (l.length > 0) byLength.set(l.length, [...(byLength.get(l.length) ?? []), i]);
      });
      const parts: Tensor[] = [];
      const order: number[] = []; // the list of each element of parts, in turn
      for (const [length, members] of byLength) {
        const rows = torch.cat(members.map((i) => each.narrow(0, first[i], length))).view(members.length, length);
        parts.push(rows.norm(2, [1]));
        order.push(...members);
      }
      const joined = torch.cat([...parts, torch.zeros([1], { dtype: each.dtype, device })], 0);
      const at = lists.map((_, i) => (order.includes(i) ? order.indexOf(i) : order.length));
      return joined.indexSelect(0, torch.hostVector(at, "int64", device));
    }),
  );
}

/**
 * Scales each list's gradients so their joint 2-norm is at most maxNorms[i] (undefined: not
 * clipped), given the norms from gradNorms both as the tensor and as their values already read (so
 * this adds no host sync). A list whose norm is not finite, or within its maximum, is left as it
 * is. The coefficient min(maxNorm / (norm + 1e-6), 1) is computed for all lists at once, once per
 * distinct maximum; then one multi-tensor product per list that is clipped.
 */
export function scaleToMaxNorms(
  lists: readonly (readonly Tensor[])[],
  norms: Tensor,
  values: readonly number[],
  maxNorms: readonly (number | undefined)[],
): void {
  for (const m of maxNorms) if (m !== undefined && !(m > 0)) throw new Error(`clipGradNorm: maxNorm must be > 0, got ${m}`);
  // PyTorch multiplies by min(max_norm / (total + 1e-6), 1), evaluated as reciprocal() * max_norm
  // (Tensor.__rtruediv__); a factor of 1 changes nothing, so it is only applied when below 1.
  const clipped = lists.flatMap((l, i) => {
    const m = maxNorms[i];
    return m !== undefined && l.length > 0 && Number.isFinite(values[i]) && values[i] + 1e-6 > m ? [i] : [];
  });
  if (clipped.length === 0) return;
  torch.noGrad(() =>
    torch.tidy(() => {
      const coefs = new Map<number, Tensor>();
      for (const i of clipped) {
        const m = maxNorms[i]!;
        let coef = coefs.get(m);
        if (!coef) {
          coef = norms.add(1e-6).reciprocal().mul(m).clamp(null, 1);
          coefs.set(m, coef);
        }
        torch.foreachMul_([...lists[i]], coef.select(0, i));
      }
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
  return torch.tidy(() => {
    const grads = gradsOf(params);
    if (grads.length === 0) return 0;
    const norms = gradNorms([grads], grads[0].device);
    const value = norms.item();
    scaleToMaxNorms([grads], norms, [value], [maxNorm]);
    return value;
  });
}

/** The joint 2-norm of the gradients, leaving them unchanged (0 when there are none). */
export function gradNorm(params: readonly Tensor[]): number {
  return torch.tidy(() => {
    const grads = gradsOf(params);
    return grads.length === 0 ? 0 : gradNorms([grads], grads[0].device).item();
  });
}
