// Making tensors: filled, ranges, random (seeded through manualSeed), and from JS data.
import { type DType, dtypeCode, elementSize } from "./dtype.js";
import { native } from "./native.js";
import { type Device, type NestedArray, type Tensor, type TypedArray, _wrap as wrap } from "./tensor.js";

export interface CreateOptions {
  dtype?: DType;
  device?: Device;
  requiresGrad?: boolean;
}

const code = (o: CreateOptions) => (o.dtype === undefined ? null : dtypeCode(o.dtype));
const finish = (t: Tensor, o: CreateOptions) => (o.requiresGrad ? t.requiresGrad_() : t);

export const zeros = (shape: number[], o: CreateOptions = {}) => finish(wrap(native().zeros(shape, code(o), o.device)), o);
export const ones = (shape: number[], o: CreateOptions = {}) => finish(wrap(native().ones(shape, code(o), o.device)), o);
export const empty = (shape: number[], o: CreateOptions = {}) => finish(wrap(native().empty(shape, code(o), o.device)), o);
export const full = (shape: number[], value: number | boolean, o: CreateOptions = {}) =>
  finish(wrap(native().full(shape, value, code(o), o.device)), o);
/** Standard normal samples from the device's default generator. */
export const randn = (shape: number[], o: CreateOptions = {}) => finish(wrap(native().randn(shape, code(o), o.device)), o);
/** Uniform samples in [0, 1). */
export const rand = (shape: number[], o: CreateOptions = {}) => finish(wrap(native().rand(shape, code(o), o.device)), o);
/** Integers in [low, high); int64 unless a dtype is given. */
export const randint = (low: number, high: number, shape: number[], o: CreateOptions = {}) =>
  wrap(native().randint(low, high, shape, code(o), o.device));
export const randperm = (n: number, o: CreateOptions = {}) => wrap(native().randperm(n, code(o), o.device));
export const eye = (n: number, m = n, o: CreateOptions = {}) => wrap(native().eye(n, m, code(o), o.device));

/** arange(end) or arange(start, end, step), as PyTorch (int64 for whole-number arguments). */
export function arange(start: number, end?: number, step = 1, o: CreateOptions = {}): Tensor {
  if (end === undefined) [start, end] = [0, start];
  return wrap(native().arange(start, end, step, code(o), o.device));
}

/**
 * A tensor from the raw bytes of its elements (little-endian, row-major), on the CPU or copied to
 * `device` (the CPU tensor it is copied from is freed at once).
 */
export function fromBytes(bytes: Uint8Array, shape: number[], dtype: DType, device: Device = "cpu"): Tensor {
  const t = wrap(native().fromBytes(bytes, shape, dtypeCode(dtype)));
  if (device === "cpu") return t;
  const moved = t.to({ device });
  t.dispose();
  return moved;
}

export interface FromFileOptions {
  /** Where the tensor goes (default the CPU); CUDA reads through pinned staging buffers. */
  device?: Device;
  /** Staging buffer size for non-CPU devices (default 64 MiB) and parallel read block (4 MiB): for tests. */
  chunkBytes?: number;
  blockBytes?: number;
}

/**
 * A tensor of the raw elements (little-endian, row-major) at `position` of an open file, read
 * without a JS buffer: straight into the tensor's memory on the CPU; to CUDA through two pinned
 * buffers, one copied to the device while the next piece is read into the other. Reads run on
 * the intra-op threads. `byteLength` must equal what shape and dtype need.
 */
export function fromFile(fd: number, position: number, byteLength: number, shape: number[], dtype: DType, o: FromFileOptions = {}): Tensor {
  return wrap(
    native().fromFile(fd, position, byteLength, shape, dtypeCode(dtype), o.device ?? null, o.chunkBytes ?? null, o.blockBytes ?? null),
  );
}

function dtypeOfTypedArray(a: TypedArray): DType {
  if (a instanceof Float64Array) return "float64";
  if (a instanceof Int32Array) return "int32";
  if (a instanceof BigInt64Array) return "int64";
  if (a instanceof Uint8Array) return "uint8";
  if (a instanceof Float32Array) return "float32";
  throw new Error("tensor(): unsupported typed array (use Float32Array, Float64Array, Int32Array, BigInt64Array or Uint8Array)");
}

function shapeOf(data: NestedArray): number[] {
  const shape: number[] = [];
  for (let d: NestedArray = data; Array.isArray(d); d = d[0]) shape.push(d.length);
  return shape;
}

/**
 * A tensor from nested arrays or a typed array (flat; give `shape`). Numbers default to float32,
 * booleans to bool; `dtype` converts.
 */
export function tensor(data: NestedArray | TypedArray, o: CreateOptions & { shape?: number[] } = {}): Tensor {
  let flat: TypedArray;
  let shape: number[];
  let dtype: DType;
  if (ArrayBuffer.isView(data)) {
    flat = data;
    dtype = dtypeOfTypedArray(data);
    shape = o.shape ?? [data.length];
  } else {
    shape = o.shape ?? shapeOf(data);
    const values = ([data] as unknown[]).flat(Infinity) as (number | boolean)[];
    const n = shape.reduce((a, b) => a * b, 1);
    if (values.length !== n) throw new Error(`tensor(): ${values.length} values do not fill shape [${shape}] (ragged nested arrays?)`);
    if (typeof values[0] === "boolean") {
      flat = Uint8Array.from(values, (v) => (v ? 1 : 0));
      dtype = "bool";
    } else if (o.dtype === "int64") {
      flat = BigInt64Array.from(values, (v) => BigInt(Math.trunc(Number(v))));
      dtype = "int64";
    } else if (o.dtype === "int32" || o.dtype === "uint8" || o.dtype === "float64") {
      flat =
        o.dtype === "int32"
          ? Int32Array.from(values as number[])
          : o.dtype === "uint8"
            ? Uint8Array.from(values as number[])
            : Float64Array.from(values as number[]);
      dtype = o.dtype;
    } else {
      flat = Float32Array.from(values as number[]);
      dtype = "float32";
    }
  }
  const bytes = new Uint8Array(flat.buffer, flat.byteOffset, flat.length * elementSize[dtype]);
  let t = fromBytes(bytes, shape, dtype);
  if ((o.dtype && o.dtype !== dtype) || (o.device && o.device !== "cpu")) {
    const moved = t.to({ dtype: o.dtype ?? dtype, device: o.device ?? "cpu" });
    t.dispose();
    t = moved;
  }
  return finish(t, o);
}

/**
 * A vector of host numbers on `device` without waiting for the device: on a GPU it is copied
 * from pinned memory, where tensor() copies from pageable memory, which waits for every kernel
 * queued before the copy.
 */
export function hostVector(values: readonly number[], dtype: "float32" | "float64" | "int64", device: Device): Tensor {
  const host = tensor([...values], { dtype });
  if (device === "cpu") return host;
  const pinned = host.pinMemory();
  host.dispose();
  const moved = pinned.to({ device, nonBlocking: true });
  pinned.dispose(); // the allocator keeps its block until the copy is done
  return moved;
}
