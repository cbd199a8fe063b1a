// The Tensor class: a thin, typed wrapper over one libtorch tensor. Methods mirror PyTorch's
// names (camelCase); ops that make a new tensor return a new Tensor, `op_` ones work in place.
import { type DType, dtypeCode, dtypeName, isFloating } from "./dtype.js";
import type { Device, Scalar } from "./native-api.js";
import { type Handle, native } from "./native.js";
import { track } from "./scope.js";

export type { Device, Scalar };
export type TensorOrScalar = Tensor | Scalar;

const arg = (x: TensorOrScalar) => (x instanceof Tensor ? x.handle : x);
const wrap = (h: Handle) => new Tensor(h);
const wrapAll = (hs: Handle[]) => hs.map(wrap);

export type TypedArray = Float32Array | Float64Array | Int32Array | BigInt64Array | Uint8Array | Uint16Array;
export type NestedArray = number | boolean | NestedArray[];

export interface ToOptions {
  dtype?: DType;
  device?: Device;
  nonBlocking?: boolean;
  copy?: boolean;
}

export class Tensor {
  /** @internal the libtorch handle (empty once disposed). */
  handle: Handle;

  constructor(handle: Handle) {
    this.handle = handle;
    track(this);
  }

  // ---- metadata --------------------------------------------------------------------------
  get shape(): number[] {
    return native().sizes(this.handle);
  }
  get dtype(): DType {
    return dtypeName(native().meta(this.handle)[1]);
  }
  get device(): Device {
    return native().meta(this.handle)[2];
  }
  get requiresGrad(): boolean {
    return native().meta(this.handle)[3];
  }
  get ndim(): number {
    return this.shape.length;
  }
  get strides(): number[] {
    return native().strides(this.handle);
  }
  get isDisposed(): boolean {
    return native().isDisposed(this.handle);
  }
  numel(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }
  size(dim: number): number {
    const s = this.shape;
    return s[dim < 0 ? s.length + dim : dim];
  }
  isContiguous(): boolean {
    return native().isContiguous(this.handle);
  }
  toString(): string {
    return this.isDisposed ? "Tensor(disposed)" : `Tensor(shape=[${this.shape}], dtype=${this.dtype}, device=${this.device})`;
  }

  /** Frees the tensor's memory now. Using it afterwards throws. */
  dispose(): void {
    native().dispose(this.handle);
  }

  // ---- data out --------------------------------------------------------------------------
  item(): number {
    return Number(native().item(this.handle));
  }
  /** The elements, flat, in a typed array matching the dtype (half types come back as float32). */
  data(): TypedArray {
    let t: Tensor = this;
    const dtype = this.dtype;
    if (dtype === "float16" || dtype === "bfloat16") t = this.to({ dtype: "float32" });
    const buf: Buffer = native().toBytes(t.handle);
    if (t !== this) t.dispose();
    const ab = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength);
    switch (dtype) {
      case "float64":
        return new Float64Array(ab);
      case "int64":
        return new BigInt64Array(ab);
      case "int32":
        return new Int32Array(ab);
      case "uint8":
      case "bool":
        return new Uint8Array(ab);
      default:
        return new Float32Array(ab);
    }
  }
  /** Raw little-endian bytes of a contiguous CPU copy (safetensors layout). */
  bytes(): Buffer {
    return native().toBytes(this.handle);
  }
  /** Nested JS arrays, as PyTorch's tolist(). */
  toArray(): NestedArray {
    const bool = this.dtype === "bool";
    const flat = Array.from(this.data() as ArrayLike<number | bigint>, (v) => (bool ? v !== 0 : Number(v))) as (number | boolean)[];
    const shape = this.shape;
    if (shape.length === 0) return flat[0];
    let i = 0;
    const build = (d: number): NestedArray[] => Array.from({ length: shape[d] }, () => (d === shape.length - 1 ? flat[i++] : build(d + 1)));
    return build(0);
  }

  // ---- conversion ------------------------------------------------------------------------
  to(target: DType | Device | ToOptions): Tensor {
    const o: ToOptions = typeof target === "string" ? (isDType(target) ? { dtype: target } : { device: target }) : target;
    return wrap(
      native().to(
        this.handle,
        o.dtype === undefined ? null : dtypeCode(o.dtype),
        o.device ?? null,
        o.nonBlocking ?? false,
        o.copy ?? false,
      ),
    );
  }
  cpu(): Tensor {
    return this.to({ device: "cpu" });
  }
  cuda(index = 0): Tensor {
    return this.to({ device: `cuda:${index}` });
  }
  float(): Tensor {
    return this.to({ dtype: "float32" });
  }
  contiguous(): Tensor {
    return wrap(native().contiguous(this.handle));
  }
  clone(): Tensor {
    return wrap(native().clone(this.handle));
  }
  detach(): Tensor {
    return wrap(native().detach(this.handle));
  }
  pinMemory(): Tensor {
    return wrap(native().pinMemory(this.handle));
  }

  // ---- views and indexing ----------------------------------------------------------------
  reshape(...shape: number[] | [number[]]): Tensor {
    return wrap(native().reshape(this.handle, dims(shape)));
  }
  view(...shape: number[] | [number[]]): Tensor {
    return wrap(native().view(this.handle, dims(shape)));
  }
  transpose(dim0: number, dim1: number): Tensor {
    return wrap(native().transpose(this.handle, dim0, dim1));
  }
  /** Transpose of the last two dims. */
  get T(): Tensor {
    return this.transpose(-2, -1);
  }
  permute(...order: number[] | [number[]]): Tensor {
    return wrap(native().permute(this.handle, dims(order)));
  }
  narrow(dim: number, start: number, length: number): Tensor {
    return wrap(native().narrow(this.handle, dim, start, length));
  }
  slice(dim: number, start = 0, end = Number.MAX_SAFE_INTEGER, step = 1): Tensor {
    return wrap(native().slice(this.handle, dim, start, end, step));
  }
  select(dim: number, index: number): Tensor {
    return wrap(native().select(this.handle, dim, index));
  }
  indexSelect(dim: number, index: Tensor): Tensor {
    return wrap(native().indexSelect(this.handle, dim, index.handle));
  }
  gather(dim: number, index: Tensor): Tensor {
    return wrap(native().gather(this.handle, dim, index.handle));
  }
  unsqueeze(dim: number): Tensor {
    return wrap(native().unsqueeze(this.handle, dim));
  }
  squeeze(dim?: number): Tensor {
    return wrap(native().squeeze(this.handle, dim));
  }
  expand(...shape: number[] | [number[]]): Tensor {
    return wrap(native().expand(this.handle, dims(shape)));
  }
  flatten(startDim = 0, endDim = -1): Tensor {
    return wrap(native().flatten(this.handle, startDim, endDim));
  }
  repeat(...times: number[] | [number[]]): Tensor {
    return wrap(native().repeat(this.handle, dims(times)));
  }
  repeatInterleave(repeats: number, dim: number): Tensor {
    return wrap(native().repeatInterleave(this.handle, repeats, dim));
  }
  flip(...dimsToFlip: number[] | [number[]]): Tensor {
    return wrap(native().flip(this.handle, dims(dimsToFlip)));
  }
  tril(diagonal = 0): Tensor {
    return wrap(native().tril(this.handle, diagonal));
  }
  triu(diagonal = 0): Tensor {
    return wrap(native().triu(this.handle, diagonal));
  }
  /** Splits into pieces of `size` along dim, or into pieces of the given sizes. */
  split(sizeOrSizes: number | number[], dim = 0): Tensor[] {
    return wrapAll(native().split(this.handle, sizeOrSizes, dim));
  }
  chunk(chunks: number, dim = 0): Tensor[] {
    return wrapAll(native().chunk(this.handle, chunks, dim));
  }
  maskedFill(mask: Tensor, value: TensorOrScalar): Tensor {
    return wrap(native().maskedFill(this.handle, mask.handle, arg(value)));
  }
  topk(k: number, dim = -1, largest = true): [Tensor, Tensor] {
    return wrapAll(native().topk(this.handle, k, dim, largest)) as [Tensor, Tensor];
  }
  sort(dim = -1, descending = false): [Tensor, Tensor] {
    return wrapAll(native().sort(this.handle, dim, descending)) as [Tensor, Tensor];
  }

  // ---- pointwise math (broadcasting; the right side may be a number) ----------------------
  add(other: TensorOrScalar, alpha?: number): Tensor {
    return wrap(native().add(this.handle, arg(other), alpha));
  }
  sub(other: TensorOrScalar): Tensor {
    return wrap(native().sub(this.handle, arg(other)));
  }
  /** other − this, for a number on the left. */
  rsub(other: number): Tensor {
    return wrap(native().rsub(this.handle, other));
  }
  mul(other: TensorOrScalar): Tensor {
    return wrap(native().mul(this.handle, arg(other)));
  }
  div(other: TensorOrScalar): Tensor {
    return wrap(native().div(this.handle, arg(other)));
  }
  pow(exponent: TensorOrScalar): Tensor {
    return wrap(native().pow(this.handle, arg(exponent)));
  }
  remainder(other: TensorOrScalar): Tensor {
    return wrap(native().remainder(this.handle, arg(other)));
  }
  maximum(other: TensorOrScalar): Tensor {
    return wrap(native().maximum(this.handle, arg(other)));
  }
  minimum(other: TensorOrScalar): Tensor {
    return wrap(native().minimum(this.handle, arg(other)));
  }
  eq(other: TensorOrScalar): Tensor {
    return wrap(native().eq(this.handle, arg(other)));
  }
  ne(other: TensorOrScalar): Tensor {
    return wrap(native().ne(this.handle, arg(other)));
  }
  lt(other: TensorOrScalar): Tensor {
    return wrap(native().lt(this.handle, arg(other)));
  }
  le(other: TensorOrScalar): Tensor {
    return wrap(native().le(this.handle, arg(other)));
  }
  gt(other: TensorOrScalar): Tensor {
    return wrap(native().gt(this.handle, arg(other)));
  }
  ge(other: TensorOrScalar): Tensor {
    return wrap(native().ge(this.handle, arg(other)));
  }
  logicalAnd(other: Tensor): Tensor {
    return wrap(native().logicalAnd(this.handle, other.handle));
  }
  logicalOr(other: Tensor): Tensor {
    return wrap(native().logicalOr(this.handle, other.handle));
  }
  logicalNot(): Tensor {
    return wrap(native().logicalNot(this.handle));
  }
  neg(): Tensor {
    return wrap(native().neg(this.handle));
  }
  abs(): Tensor {
    return wrap(native().abs(this.handle));
  }
  sqrt(): Tensor {
    return wrap(native().sqrt(this.handle));
  }
  rsqrt(): Tensor {
    return wrap(native().rsqrt(this.handle));
  }
  exp(): Tensor {
    return wrap(native().exp(this.handle));
  }
  log(): Tensor {
    return wrap(native().log(this.handle));
  }
  sin(): Tensor {
    return wrap(native().sin(this.handle));
  }
  cos(): Tensor {
    return wrap(native().cos(this.handle));
  }
  tanh(): Tensor {
    return wrap(native().tanh(this.handle));
  }
  sigmoid(): Tensor {
    return wrap(native().sigmoid(this.handle));
  }
  silu(): Tensor {
    return wrap(native().silu(this.handle));
  }
  relu(): Tensor {
    return wrap(native().relu(this.handle));
  }
  reciprocal(): Tensor {
    return wrap(native().reciprocal(this.handle));
  }
  square(): Tensor {
    return wrap(native().square(this.handle));
  }
  sign(): Tensor {
    return wrap(native().sign(this.handle));
  }
  floor(): Tensor {
    return wrap(native().floor(this.handle));
  }
  isfinite(): Tensor {
    return wrap(native().isfinite(this.handle));
  }
  isnan(): Tensor {
    return wrap(native().isnan(this.handle));
  }
  clamp(min?: number | null, max?: number | null): Tensor {
    return wrap(native().clamp(this.handle, min ?? null, max ?? null));
  }

  // ---- reductions (no dims = over everything) ---------------------------------------------
  sum(dim?: number | number[], keepdim = false): Tensor {
    return wrap(native().sum(this.handle, dim, keepdim));
  }
  mean(dim?: number | number[], keepdim = false): Tensor {
    return wrap(native().mean(this.handle, dim, keepdim));
  }
  max(): Tensor {
    return wrap(native().max(this.handle));
  }
  min(): Tensor {
    return wrap(native().min(this.handle));
  }
  /** [values, indices] along dim. */
  maxDim(dim: number, keepdim = false): [Tensor, Tensor] {
    return wrapAll(native().max(this.handle, dim, keepdim)) as [Tensor, Tensor];
  }
  minDim(dim: number, keepdim = false): [Tensor, Tensor] {
    return wrapAll(native().min(this.handle, dim, keepdim)) as [Tensor, Tensor];
  }
  argmax(dim?: number, keepdim = false): Tensor {
    return wrap(native().argmax(this.handle, dim, keepdim));
  }
  /** Vector p-norm over dims (all elements when omitted): Frobenius norm for p = 2. */
  norm(p = 2, dim?: number | number[], keepdim = false): Tensor {
    return wrap(native().norm(this.handle, p, dim, keepdim));
  }
  logsumexp(dim: number | number[], keepdim = false): Tensor {
    return wrap(native().logsumexp(this.handle, dims([dim].flat()), keepdim));
  }
  cumsum(dim: number): Tensor {
    return wrap(native().cumsum(this.handle, dim));
  }

  // ---- matrix and nn ----------------------------------------------------------------------
  matmul(other: Tensor): Tensor {
    return wrap(native().matmul(this.handle, other.handle));
  }
  mm(other: Tensor): Tensor {
    return wrap(native().mm(this.handle, other.handle));
  }
  bmm(other: Tensor): Tensor {
    return wrap(native().bmm(this.handle, other.handle));
  }
  softmax(dim: number): Tensor {
    return wrap(native().softmax(this.handle, dim));
  }
  logSoftmax(dim: number): Tensor {
    return wrap(native().logSoftmax(this.handle, dim));
  }

  // ---- in place -----------------------------------------------------------------------------
  add_(other: TensorOrScalar, alpha?: number): this {
    native().add_(this.handle, arg(other), alpha);
    return this;
  }
  sub_(other: TensorOrScalar): this {
    native().sub_(this.handle, arg(other));
    return this;
  }
  mul_(other: TensorOrScalar): this {
    native().mul_(this.handle, arg(other));
    return this;
  }
  div_(other: TensorOrScalar): this {
    native().div_(this.handle, arg(other));
    return this;
  }
  copy_(src: Tensor, nonBlocking = false): this {
    native().copy_(this.handle, src.handle, nonBlocking);
    return this;
  }
  zero_(): this {
    native().zero_(this.handle);
    return this;
  }
  fill_(value: Scalar): this {
    native().fill_(this.handle, value);
    return this;
  }
  addcmul_(t1: Tensor, t2: Tensor, value = 1): this {
    native().addcmul_(this.handle, t1.handle, t2.handle, value);
    return this;
  }
  addcdiv_(t1: Tensor, t2: Tensor, value = 1): this {
    native().addcdiv_(this.handle, t1.handle, t2.handle, value);
    return this;
  }
  lerp_(end: Tensor, weight: number): this {
    native().lerp_(this.handle, end.handle, weight);
    return this;
  }
  uniform_(low = 0, high = 1): this {
    native().uniform_(this.handle, low, high);
    return this;
  }
  normal_(mean = 0, std = 1): this {
    native().normal_(this.handle, mean, std);
    return this;
  }

  // ---- autograd -----------------------------------------------------------------------------
  requiresGrad_(on = true): this {
    if (on && !isFloating(this.dtype)) throw new Error(`only floating-point tensors can require gradients, not ${this.dtype}`);
    native().requiresGrad_(this.handle, on);
    return this;
  }
  /** The accumulated gradient, or null. Each read returns a new Tensor sharing the storage. */
  get grad(): Tensor | null {
    const g = native().grad(this.handle);
    return g === null ? null : wrap(g);
  }
  set grad(g: Tensor | null) {
    native().setGrad(this.handle, g?.handle ?? null);
  }
  retainGrad(): void {
    native().retainGrad(this.handle);
  }
  backward(gradient?: Tensor, opts: { retainGraph?: boolean } = {}): void {
    native().backward([this.handle], gradient ? [gradient.handle] : null, opts.retainGraph ?? false);
  }
}

const DTYPES = new Set(["float32", "float16", "bfloat16", "float64", "int64", "int32", "uint8", "bool"]);
function isDType(s: string): s is DType {
  return DTYPES.has(s);
}

/** Accepts f(1, 2, 3) and f([1, 2, 3]) alike. */
function dims(args: number[] | [number[]]): number[] {
  return Array.isArray(args[0]) ? (args[0] as number[]) : (args as number[]);
}

export { wrap as _wrap, wrapAll as _wrapAll };
