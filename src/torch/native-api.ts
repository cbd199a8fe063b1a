// Every export of the native addon (native/*.cc) with its parameters and result, in the order the
// C++ reads them. `node scripts/check-native-api.mjs` (run by every native build) fails when this
// interface and the SVDLORA_EXPORT registrations name different functions, or when a member's
// parameter count differs from the highest argument index its C++ function reads.
//
// Optional parameters (`?`) are the ones the C++ reads as "undefined (or null) means the default".
// Errors: every function throws a JS Error naming the op and its tensors' shapes; the dist*
// functions throw libtorch's failures in the process group as a DistFailure instead.

/** An opaque handle to one libtorch tensor, owned by a `Tensor`. */
export type Handle = { readonly __handle: unique symbol };
/** An opaque handle to a started collective (distAllReduceStart), ended once by distWait. */
export type PendingHandle = { readonly __pending: unique symbol };
/** A libtorch ScalarType value; BuildInfo.dtypes maps dtype names to them. */
export type DTypeCode = number;
/** "cpu", "cuda", "cuda:1" */
export type Device = string;
/** A JS number or boolean where libtorch takes a Scalar (whole numbers stay integral). */
export type Scalar = number | boolean;
/** A tensor, or a number broadcast against the other operand. */
type Operand = Handle | Scalar;
/** One dimension or several. */
type Dims = number | number[];

export type DType = "float32" | "float16" | "bfloat16" | "float64" | "int64" | "int32" | "uint8" | "bool";

export interface BuildInfo {
  torchVersion: string;
  builtWithCuda: boolean;
  cxx11Abi: boolean;
  cudaAvailable: boolean;
  mkl: boolean;
  lapack: boolean;
  parallelInfo: string;
  dtypes: Record<DType, DTypeCode>;
}

export interface CudaDevice {
  index: number;
  name: string;
  totalMemory: number;
  capability: string;
  multiProcessors: number;
}

/** Bytes, as torch.cuda.memory_stats reports them. */
export interface CudaMemory {
  allocated: number;
  peakAllocated: number;
  reserved: number;
  peakReserved: number;
}

/** Handles holding a tensor, and their bytes (a storage shared by views counts once). */
export interface LiveTensors {
  count: number;
  bytes: number;
}

export type Backend = "gloo" | "nccl";
export type ReduceOp = "sum" | "avg" | "max" | "min";

/** A failure inside libtorch's c10d, thrown by the dist* functions with libtorch's own message:
 * opening the store, creating or joining the group, or a collective (after which the group is
 * aborted and distDestroy abandons it). */
export interface DistFailure extends Error {
  stage: "store" | "group" | "collective";
}

export interface NativeAddon {
  // ---- creation (native/create.cc) ----
  zeros(shape: number[], dtype?: DTypeCode | null, device?: Device | null): Handle;
  ones(shape: number[], dtype?: DTypeCode | null, device?: Device | null): Handle;
  empty(shape: number[], dtype?: DTypeCode | null, device?: Device | null): Handle;
  full(shape: number[], value: Scalar, dtype?: DTypeCode | null, device?: Device | null): Handle;
  arange(start: number, end: number, step: number, dtype?: DTypeCode | null, device?: Device | null): Handle;
  eye(n: number, m: number, dtype?: DTypeCode | null, device?: Device | null): Handle;
  randn(shape: number[], dtype?: DTypeCode | null, device?: Device | null): Handle;
  rand(shape: number[], dtype?: DTypeCode | null, device?: Device | null): Handle;
  /** int64 unless a dtype is given. */
  randint(low: number, high: number, shape: number[], dtype?: DTypeCode | null, device?: Device | null): Handle;
  randperm(n: number, dtype?: DTypeCode | null, device?: Device | null): Handle;
  uniform_(t: Handle, low: number, high: number): void;
  normal_(t: Handle, mean: number, std: number): void;
  /** A new CPU tensor holding a copy of the bytes. */
  fromBytes(bytes: Uint8Array, shape: number[], dtype: DTypeCode): Handle;
  /** The elements at [position, position + byteLength) of an open file, read straight into the tensor. */
  fromFile(
    fd: number,
    position: number,
    byteLength: number,
    shape: number[],
    dtype: DTypeCode,
    device?: Device | null,
    chunkBytes?: number | null,
    blockBytes?: number | null,
  ): Handle;
  /** A contiguous CPU copy of the elements. */
  toBytes(t: Handle): Buffer;
  item(t: Handle): number | boolean;
  /** null keeps the tensor's dtype or device. */
  to(t: Handle, dtype: DTypeCode | null, device: Device | null, nonBlocking?: boolean, copy?: boolean): Handle;
  contiguous(t: Handle): Handle;
  clone(t: Handle): Handle;
  pinMemory(t: Handle): Handle;
  /** Everything a Tensor getter needs, in one crossing. */
  meta(t: Handle): [shape: number[], dtype: DTypeCode, device: Device, requiresGrad: boolean];
  sizes(t: Handle): number[];
  strides(t: Handle): number[];
  isContiguous(t: Handle): boolean;
  /** Frees the storage now; the handle stays valid but empty. */
  dispose(t: Handle): void;
  isDisposed(t: Handle): boolean;

  // ---- views, indexing, math, reductions, nn (native/ops.cc); `op_` ones return their first argument ----
  reshape(t: Handle, shape: number[]): Handle;
  view(t: Handle, shape: number[]): Handle;
  transpose(t: Handle, dim0: number, dim1: number): Handle;
  permute(t: Handle, order: number[]): Handle;
  narrow(t: Handle, dim: number, start: number, length: number): Handle;
  slice(t: Handle, dim: number, start: number, end: number, step: number): Handle;
  select(t: Handle, dim: number, index: number): Handle;
  indexSelect(t: Handle, dim: number, index: Handle): Handle;
  gather(t: Handle, dim: number, index: Handle): Handle;
  unsqueeze(t: Handle, dim: number): Handle;
  /** Every size-1 dim when dim is omitted. */
  squeeze(t: Handle, dim?: number): Handle;
  expand(t: Handle, shape: number[]): Handle;
  flatten(t: Handle, startDim: number, endDim: number): Handle;
  repeat(t: Handle, times: number[]): Handle;
  repeatInterleave(t: Handle, repeats: number, dim: number): Handle;
  flip(t: Handle, dims: number[]): Handle;
  tril(t: Handle, diagonal: number): Handle;
  triu(t: Handle, diagonal: number): Handle;
  cat(tensors: Handle[], dim: number): Handle;
  stack(tensors: Handle[], dim: number): Handle;
  /** Each tensor's 2-norm (torch._foreach_norm), stacked: [n]; at least one tensor. */
  foreachNorm(tensors: Handle[]): Handle;
  /** Every tensor times a one-element tensor, in place (torch._foreach_mul_). */
  foreachMul_(tensors: Handle[], scale: Handle): void;
  /** Pieces of `size` along dim, or pieces of the given sizes. */
  split(t: Handle, sizeOrSizes: number | number[], dim: number): Handle[];
  chunk(t: Handle, chunks: number, dim: number): Handle[];
  maskedFill(t: Handle, mask: Handle, value: Operand): Handle;
  where(cond: Handle, a: Operand, b: Operand): Handle;
  topk(t: Handle, k: number, dim: number, largest?: boolean): [values: Handle, indices: Handle];
  sort(t: Handle, dim: number, descending?: boolean): [values: Handle, indices: Handle];
  add(a: Handle, b: Operand, alpha?: number): Handle;
  sub(a: Handle, b: Operand): Handle;
  mul(a: Handle, b: Operand): Handle;
  div(a: Handle, b: Operand): Handle;
  pow(a: Handle, exponent: Operand): Handle;
  eq(a: Handle, b: Operand): Handle;
  ne(a: Handle, b: Operand): Handle;
  lt(a: Handle, b: Operand): Handle;
  le(a: Handle, b: Operand): Handle;
  gt(a: Handle, b: Operand): Handle;
  ge(a: Handle, b: Operand): Handle;
  remainder(a: Handle, b: Operand): Handle;
  /** b − a. */
  rsub(a: Handle, b: Scalar): Handle;
  maximum(a: Handle, b: Operand): Handle;
  minimum(a: Handle, b: Operand): Handle;
  logicalAnd(a: Handle, b: Handle): Handle;
  logicalOr(a: Handle, b: Handle): Handle;
  logicalNot(t: Handle): Handle;
  neg(t: Handle): Handle;
  abs(t: Handle): Handle;
  sqrt(t: Handle): Handle;
  rsqrt(t: Handle): Handle;
  exp(t: Handle): Handle;
  log(t: Handle): Handle;
  sin(t: Handle): Handle;
  cos(t: Handle): Handle;
  tanh(t: Handle): Handle;
  sigmoid(t: Handle): Handle;
  silu(t: Handle): Handle;
  relu(t: Handle): Handle;
  reciprocal(t: Handle): Handle;
  square(t: Handle): Handle;
  sign(t: Handle): Handle;
  floor(t: Handle): Handle;
  isfinite(t: Handle): Handle;
  isnan(t: Handle): Handle;
  clamp(t: Handle, min?: Scalar | null, max?: Scalar | null): Handle;
  add_(t: Handle, other: Operand, alpha?: number): Handle;
  sub_(t: Handle, other: Operand): Handle;
  mul_(t: Handle, other: Operand): Handle;
  div_(t: Handle, other: Operand): Handle;
  copy_(t: Handle, src: Handle, nonBlocking?: boolean): Handle;
  zero_(t: Handle): Handle;
  fill_(t: Handle, value: Scalar): Handle;
  addcmul_(t: Handle, t1: Handle, t2: Handle, value: Scalar): Handle;
  addcdiv_(t: Handle, t1: Handle, t2: Handle, value: Scalar): Handle;
  lerp_(t: Handle, end: Handle, weight: Scalar): Handle;
  /** Over every element when dims is omitted. */
  sum(t: Handle, dims?: Dims | null, keepdim?: boolean): Handle;
  mean(t: Handle, dims?: Dims | null, keepdim?: boolean): Handle;
  /** The largest element; with dim, [values, indices] along it. */
  max(t: Handle): Handle;
  max(t: Handle, dim: number, keepdim?: boolean): [values: Handle, indices: Handle];
  min(t: Handle): Handle;
  min(t: Handle, dim: number, keepdim?: boolean): [values: Handle, indices: Handle];
  argmax(t: Handle, dim?: number, keepdim?: boolean): Handle;
  /** Vector p-norm (p = 2 when omitted) over dims, or over every element. */
  norm(t: Handle, p?: number, dims?: Dims | null, keepdim?: boolean): Handle;
  logsumexp(t: Handle, dims: number[], keepdim: boolean): Handle;
  cumsum(t: Handle, dim: number): Handle;
  matmul(a: Handle, b: Handle): Handle;
  mm(a: Handle, b: Handle): Handle;
  bmm(a: Handle, b: Handle): Handle;
  linear(x: Handle, weight: Handle, bias?: Handle | null): Handle;
  softmax(t: Handle, dim: number): Handle;
  logSoftmax(t: Handle, dim: number): Handle;
  embedding(weight: Handle, ids: Handle): Handle;
  dropout(x: Handle, p: number, training: boolean): Handle;
  /** reduction: 0 none, 1 mean, 2 sum. */
  crossEntropy(logits: Handle, targets: Handle, ignoreIndex: number, reduction: 0 | 1 | 2, labelSmoothing?: number): Handle;
  /** q [B, H, L, D], k and v [B, Hkv, S, D] with Hkv dividing H; mask boolean (true = attend) or additive. */
  sdpa(q: Handle, k: Handle, v: Handle, mask: Handle | null, dropout: number, causal: boolean, scale: number | null): Handle;
  /** q [T, H, D], k and v [T, Hkv, D], cuSeqlens int32 [n + 1]; CUDA with libtorch ≥ 2.5 only. */
  flashAttnVarlen(q: Handle, k: Handle, v: Handle, cuSeqlens: Handle, maxSeqlen: number, causal: boolean, scale: number | null): Handle;
  /** torch.optim.AdamW(fused=True), in place. steps: float32 device scalars, already incremented;
   * a non-zero foundInf skips the update on the device. CUDA with libtorch ≥ 2.5 only. */
  fusedAdamW(
    params: Handle[],
    grads: Handle[],
    expAvgs: Handle[],
    expAvgSqs: Handle[],
    steps: Handle[],
    lr: number,
    beta1: number,
    beta2: number,
    weightDecay: number,
    eps: number,
    foundInf: Handle | null,
  ): void;
  /** Whether flashAttnVarlen and fusedAdamW can run: a CUDA build of libtorch ≥ 2.5 with a GPU. */
  fastKernels(): boolean;

  // ---- linear algebra and autograd (native/linalg_autograd.cc) ----
  /** Reduced: U [m, k], S [k], Vh [k, n] with k = min(m, n). */
  svd(a: Handle): [U: Handle, S: Handle, Vh: Handle];
  svdvals(a: Handle): Handle;
  /** Reduced. */
  qr(a: Handle): [Q: Handle, R: Handle];
  inv(a: Handle): Handle;
  /** Lower Cholesky factor of each matrix of a batch, and an int32 info per matrix (> 0: not positive-definite); no device sync. */
  choleskyEx(a: Handle): [L: Handle, info: Handle];
  /** X with A X = B (left) or X A = B, A upper or lower triangular. */
  solveTriangular(a: Handle, b: Handle, upper: boolean, left: boolean): Handle;
  /** Eigenvalues (ascending) and eigenvectors (columns) of symmetric matrices. */
  eigh(a: Handle): [eigenvalues: Handle, eigenvectors: Handle];
  requiresGrad_(t: Handle, on?: boolean): Handle;
  grad(t: Handle): Handle | null;
  setGrad(t: Handle, grad: Handle | null): void;
  detach(t: Handle): Handle;
  retainGrad(t: Handle): void;
  /** One pass from several roots; grads default to ones for scalar roots. */
  backward(roots: Handle[], grads: Handle[] | null, retainGraph: boolean): void;
  /** Returns the previous setting. */
  setGradEnabled(on: boolean): boolean;
  isGradEnabled(): boolean;

  // ---- decoder ops as single autograd nodes (native/fused.cc) ----
  swiglu(gate: Handle, up: Handle): Handle;
  rmsNorm(x: Handle, weight: Handle, eps: number): Handle;
  rope(x: Handle, cos: Handle, sin: Handle): Handle;
  /** x Wᵀ + b + scaling·(x Aᵀ) Bᵀ; the bias must be frozen. */
  loraLinear(x: Handle, weight: Handle, bias: Handle | null, A: Handle, B: Handle, scaling: number): Handle;
  /**
   * x Wᵀ + b, plus scalings[j]·(x[rows j] A_jᵀ) B_jᵀ on rows [starts[j], starts[j] + counts[j]) of x
   * flattened to 2D; W and b frozen. batched: adapters of one shape on disjoint rows share bmm's.
   */
  multiLoraLinear(
    x: Handle,
    weight: Handle,
    bias: Handle | null,
    As: Handle[],
    Bs: Handle[],
    scalings: number[],
    starts: number[],
    counts: number[],
    batched: boolean,
  ): Handle;

  // ---- runtime (native/runtime.cc) ----
  buildInfo(): BuildInfo;
  devices(): CudaDevice[];
  getNumThreads(): number;
  setNumThreads(n: number): void;
  /** The CPU and every CUDA generator. */
  manualSeed(seed: number): void;
  cudaManualSeed(seed: number): void;
  /** The CPU generator's state, or GPU cudaDevice's. */
  getRngState(cudaDevice?: number | null): Handle;
  setRngState(state: Handle, cudaDevice?: number | null): void;
  liveTensors(): LiveTensors;
  /** device: the current one when omitted. */
  cudaMemory(device?: number): CudaMemory;
  cudaResetPeak(device?: number): void;
  cudaEmptyCache(): void;
  cudaSynchronize(): void;
  cudaSetMemoryFraction(fraction: number, device?: number): void;
  /** Makes glibc keep freed memory for reuse (see tuneHostAllocator in native.ts); false where the
   * C library is not glibc. */
  tuneHostAllocator(): boolean;
  profileStart(cuda: boolean): void;
  profileStop(path: string): void;

  // ---- data-parallel (native/distributed.cc); arguments are checked in distributed.ts ----
  /** The backends compiled into this build. */
  distBackends(): Backend[];
  /** Opens the store, creates the group and all-reduces a 1 across it; returns that sum (how many
   * processes joined). Either masterAddr and masterPort, or storeFile. */
  distInit(
    backend: Backend,
    rank: number,
    worldSize: number,
    masterAddr: string | null,
    masterPort: number | null,
    storeFile: string | null,
    timeoutMs: number,
    cudaDevice: number | null,
    bucketBytes: number,
  ): number;
  /** Launches an in-place all-reduce, one collective per bucket of same-dtype tensors, and returns
   * without waiting; distWait ends it. */
  distAllReduceStart(tensors: Handle[], op: ReduceOp): PendingHandle;
  /** Ends a started collective: its results are in its tensors for any later work (on CUDA the
   * stream waits for it; the host queues the copies back without waiting), and it returns once the
   * collective has completed (or throws after the group's timeout). */
  distWait(pending: PendingHandle): void;
  distBroadcast(tensors: Handle[], root: number): void;
  distBarrier(): void;
  /** Shuts the group down, or abandons it after a failed collective; a no-op without one. */
  distDestroy(): void;
}
