// Free functions over several tensors: joining, selection, neural-net ops, linear algebra.
import { native } from "./native.js";
import { type Scalar, Tensor, _wrap as wrap, _wrapAll as wrapAll } from "./tensor.js";

const handles = (ts: Tensor[]) => ts.map((t) => t.handle);
const arg = (x: Tensor | Scalar) => (x instanceof Tensor ? x.handle : x);

export const cat = (tensors: Tensor[], dim = 0) => wrap(native().cat(handles(tensors), dim));
export const stack = (tensors: Tensor[], dim = 0) => wrap(native().stack(handles(tensors), dim));
/**
 * Each tensor's 2-norm, as torch._foreach_norm, stacked into one tensor [n] (at least one tensor):
 * on CUDA a few multi-tensor kernels for the whole list; elsewhere one norm each, as norm() computes it.
 */
export const foreachNorm = (tensors: Tensor[]) => wrap(native().foreachNorm(handles(tensors)));
/** Every tensor times a one-element tensor on their device, in place, as torch._foreach_mul_ (one multi-tensor call on libtorch ≥ 2.1). */
export const foreachMul_ = (tensors: Tensor[], scale: Tensor) => native().foreachMul_(handles(tensors), scale.handle);
/** Elementwise cond ? a : b; either side may be a number. */
export const where = (cond: Tensor, a: Tensor | Scalar, b: Tensor | Scalar) => wrap(native().where(cond.handle, arg(a), arg(b)));

export const matmul = (a: Tensor, b: Tensor) => a.matmul(b);
/** x Wᵀ + b, as torch.nn.functional.linear. */
export const linear = (x: Tensor, weight: Tensor, bias?: Tensor | null) =>
  wrap(native().linear(x.handle, weight.handle, bias?.handle ?? null));
/** Rows of weight picked by integer ids. */
export const embedding = (weight: Tensor, ids: Tensor) => wrap(native().embedding(weight.handle, ids.handle));
// Decoder-layer pieces as single autograd nodes (native/fused.cc): fewer ops for the host to queue.
/** silu(gate) · up, the SwiGLU product; its backward keeps gate and up only, not silu(gate). */
export const swiglu = (gate: Tensor, up: Tensor) => wrap(native().swiglu(gate.handle, up.handle));
/** RMSNorm as transformers computes it: x·rsqrt(mean(x²) + eps) in float32, cast back to x's dtype, times weight. */
export const rmsNorm = (x: Tensor, weight: Tensor, eps: number) => wrap(native().rmsNorm(x.handle, weight.handle, eps));
/** x Wᵀ + b + scaling·(x Aᵀ) Bᵀ: a frozen linear layer and its LoRA factors as one node (factors cast to x's dtype). */
export function loraLinear(x: Tensor, weight: Tensor, bias: Tensor | null, A: Tensor, B: Tensor, scaling: number): Tensor {
  return wrap(native().loraLinear(x.handle, weight.handle, bias?.handle ?? null, A.handle, B.handle, scaling));
}
/** One adapter of multiLoraLinear: factors A [r, in], B [out, r] and their scale, applied to rows [start, start + count). */
export interface RowAdapter {
  A: Tensor;
  B: Tensor;
  scaling: number;
  start: number;
  count: number;
}
/**
 * x Wᵀ + b with each adapter's scaling·(x Aᵀ) Bᵀ added to its own rows of x (flattened to 2D), as
 * one node: one GEMM with the shared frozen weight, then the adapters on their rows (concurrent
 * arms). Batched (the default off the CPU), adapters of one shape whose rows do not overlap run
 * together as batched products, a fixed number of kernels however many there are; unbatched (the
 * CPU's default), each adapter's arithmetic is that of loraLinear, in the same order.
 */
export function multiLoraLinear(
  x: Tensor,
  weight: Tensor,
  bias: Tensor | null,
  adapters: readonly RowAdapter[],
  batched = x.device !== "cpu",
): Tensor {
  return wrap(
    native().multiLoraLinear(
      x.handle,
      weight.handle,
      bias?.handle ?? null,
      adapters.map((a) => a.A.handle),
      adapters.map((a) => a.B.handle),
      adapters.map((a) => a.scaling),
      adapters.map((a) => a.start),
      adapters.map((a) => a.count),
      batched,
    ),
  );
}
/** Non-interleaved rotary embedding x·cos + rotate_half(x)·sin; cos and sin broadcast to x. */
export const rope = (x: Tensor, cos: Tensor, sin: Tensor) => wrap(native().rope(x.handle, cos.handle, sin.handle));
export const dropout = (x: Tensor, p: number, training: boolean) => wrap(native().dropout(x.handle, p, training));
export const softmax = (x: Tensor, dim: number) => x.softmax(dim);
export const logSoftmax = (x: Tensor, dim: number) => x.logSoftmax(dim);

const REDUCTIONS = { none: 0, mean: 1, sum: 2 } as const;
export interface CrossEntropyOptions {
  ignoreIndex?: number;
  reduction?: keyof typeof REDUCTIONS;
  labelSmoothing?: number;
}
/** logits [N, C] against class ids [N]; targets equal to ignoreIndex (default −100) count for nothing. */
export function crossEntropy(logits: Tensor, targets: Tensor, o: CrossEntropyOptions = {}): Tensor {
  return wrap(
    native().crossEntropy(logits.handle, targets.handle, o.ignoreIndex ?? -100, REDUCTIONS[o.reduction ?? "mean"], o.labelSmoothing ?? 0),
  );
}

export interface AttentionOptions {
  /** Boolean (true = attend) or additive float mask, broadcastable to [B, H, L, S]. */
  mask?: Tensor | null;
  dropout?: number;
  causal?: boolean;
  scale?: number;
}
/**
 * Scaled dot-product attention. q: [B, H, L, D]; k, v: [B, Hkv, S, D] where Hkv divides H
 * (grouped-query attention without copying heads where libtorch supports it).
 */
export function scaledDotProductAttention(q: Tensor, k: Tensor, v: Tensor, o: AttentionOptions = {}): Tensor {
  return wrap(native().sdpa(q.handle, k.handle, v.handle, o.mask?.handle ?? null, o.dropout ?? 0, o.causal ?? false, o.scale ?? null));
}

/** Reduced SVD: A = U diag(S) Vh with k = min(m, n) columns. */
export function svd(a: Tensor): { U: Tensor; S: Tensor; Vh: Tensor } {
  const [U, S, Vh] = wrapAll(native().svd(a.handle));
  return { U, S, Vh };
}
export const svdvals = (a: Tensor) => wrap(native().svdvals(a.handle));
/** Reduced QR: A = Q R, Q with orthonormal columns. */
export function qr(a: Tensor): { Q: Tensor; R: Tensor } {
  const [Q, R] = wrapAll(native().qr(a.handle));
  return { Q, R };
}
/** Inverse of a square matrix, by LU with partial pivoting (torch.linalg.inv). */
export const inv = (a: Tensor) => wrap(native().inv(a.handle));
/**
 * A = L Lᵀ for each matrix of a batch (torch.linalg.cholesky_ex): L lower triangular, and info
 * (int32, one per matrix) > 0 where a matrix is not positive-definite. Nothing is checked, so
 * nothing waits for the device until info is read.
 */
export function choleskyEx(a: Tensor): { L: Tensor; info: Tensor } {
  const [L, info] = wrapAll(native().choleskyEx(a.handle));
  return { L, info };
}
/** X with A X = B (left, the default) or X A = B, for triangular A (torch.linalg.solve_triangular). */
export const solveTriangular = (a: Tensor, b: Tensor, o: { upper: boolean; left?: boolean }) =>
  wrap(native().solveTriangular(a.handle, b.handle, o.upper, o.left ?? true));
/** Eigenvalues (ascending) and eigenvectors (columns) of symmetric matrices; only the lower triangle is read (torch.linalg.eigh). */
export function eigh(a: Tensor): { values: Tensor; vectors: Tensor } {
  const [values, vectors] = wrapAll(native().eigh(a.handle));
  return { values, vectors };
}

/**
 * Causal attention inside each of several sequences packed into one: q [T, H, D], k and v
 * [T, Hkv, D], cuSeqlens int32 [n + 1] with the sequence starts and T at the end. Flash
 * attention kernel, so CUDA with libtorch ≥ 2.5 only (see fastKernelsAvailable).
 */
export function flashAttentionVarlen(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  cuSeqlens: Tensor,
  maxSeqlen: number,
  o: { causal?: boolean; scale?: number } = {},
): Tensor {
  return wrap(native().flashAttnVarlen(q.handle, k.handle, v.handle, cuSeqlens.handle, maxSeqlen, o.causal ?? true, o.scale ?? null));
}

/** Whether this build has the CUDA-only kernels (packed flash attention, fused AdamW) and a GPU. */
export const fastKernelsAvailable = (): boolean => native().fastKernels();

export interface FusedAdamWArgs {
  params: Tensor[];
  grads: Tensor[];
  expAvgs: Tensor[];
  expAvgSqs: Tensor[];
  /** float32 device scalars holding each parameter's step count, already incremented. */
  steps: Tensor[];
  lr: number;
  betas: [number, number];
  weightDecay: number;
  eps: number;
  /** A device scalar; when non-zero the whole update is skipped on the device. */
  foundInf?: Tensor;
}
/** torch.optim.AdamW(fused=True)'s multi-tensor kernel, in place (CUDA only). */
export function fusedAdamW_(a: FusedAdamWArgs): void {
  native().fusedAdamW(
    handles(a.params),
    handles(a.grads),
    handles(a.expAvgs),
    handles(a.expAvgSqs),
    handles(a.steps),
    a.lr,
    a.betas[0],
    a.betas[1],
    a.weightDecay,
    a.eps,
    a.foundInf?.handle ?? null,
  );
}
