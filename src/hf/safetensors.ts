// Reading and writing .safetensors files. Reads are lazy: the header is parsed and validated on
// open, and each tensor is read by position when asked for, so a multi-GB checkpoint never sits
// in memory whole; from a file, a tensor's bytes go straight into its own memory (or, for CUDA,
// through pinned staging buffers to the device), with no JS buffer in between. Writes stream
// tensor by tensor into a temp file that is renamed into place.
import * as fs from "node:fs";
import { type Device, type Tensor, elementSize, fromBytes, fromFile, isFloating, tidy } from "../torch/index.js";
import { writeAll, writeFileAtomicWith } from "../util/atomic.js";
import { displayPath, fileError, openInputFile } from "../util/files.js";
import {
  type SafetensorsHeader,
  type TensorEntry,
  SafetensorsFormatError,
  encodeHeader,
  headerLength,
  parseHeader,
  toSafetensorsDType,
  writeOrder,
} from "./safetensors-header.js";

export { type SafetensorsDType, type TensorEntry, SafetensorsFormatError, MAX_HEADER_BYTES } from "./safetensors-header.js";

/** Random access to bytes: a file descriptor, or a buffer (tests, small in-memory files). */
interface ByteSource {
  size: number;
  /** The open file, when the bytes come from one: tensors are then read natively. */
  fd?: number;
  read(position: number, length: number): Buffer;
  close(): void;
}

// fs.readSync reads at most 2 GiB per call; embeddings of large models are bigger than one call
const MAX_READ = 1 << 30;

function fileSource(path: string): ByteSource {
  const fd = openInputFile(path, "safetensors file");
  const size = fs.fstatSync(fd).size;
  return {
    size,
    fd,
    read(position, length) {
      const buffer = Buffer.allocUnsafeSlow(length);
      let done = 0;
      while (done < length) {
        let n: number;
        try {
          n = fs.readSync(fd, buffer, done, Math.min(length - done, MAX_READ), position + done);
        } catch (error) {
          throw fileError(error, path, "read it");
        }
        if (n === 0)
          throw new SafetensorsFormatError(path, `the file ended at byte ${position + done} while reading (was it truncated or replaced?)`);
        done += n;
      }
      return buffer;
    },
    close: () => fs.closeSync(fd),
  };
}

function bufferSource(bytes: Uint8Array): ByteSource {
  const all = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  return { size: all.length, read: (position, length) => all.subarray(position, position + length), close() {} };
}

/** An open safetensors file: a validated header and tensors read one at a time on demand. */
export class SafetensorsFile {
  readonly tensors: Map<string, TensorEntry>;
  readonly metadata: Record<string, string> | undefined;
  private readonly dataStart: number;
  private source: ByteSource | undefined;

  private constructor(
    /** The file as messages name it. */
    readonly path: string,
    source: ByteSource,
  ) {
    this.source = source;
    try {
      const n = headerLength(source.read(0, Math.min(8, source.size)), source.size, path);
      const header: SafetensorsHeader = parseHeader(source.read(8, n), source.size - 8 - n, path);
      this.tensors = header.tensors;
      this.metadata = header.metadata;
      this.dataStart = 8 + n;
    } catch (error) {
      source.close();
      throw error;
    }
  }

  /** Opens and validates a file; throws SafetensorsFormatError naming the problem (a FileError when it is no regular file). */
  static open(path: string): SafetensorsFile {
    return new SafetensorsFile(displayPath(path), fileSource(path));
  }

  /** Parses safetensors bytes already in memory; `name` appears in error messages. */
  static fromBytes(bytes: Uint8Array, name = "<bytes>"): SafetensorsFile {
    return new SafetensorsFile(name, bufferSource(bytes));
  }

  /** Tensor names in data order. */
  keys(): string[] {
    return [...this.tensors.keys()];
  }

  has(name: string): boolean {
    return this.tensors.has(name);
  }

  entry(name: string): TensorEntry {
    const entry = this.tensors.get(name);
    if (!entry) throw new Error(`${this.path}: no tensor named ${JSON.stringify(name)} (it has ${this.tensors.size} tensors)`);
    return entry;
  }

  /** The raw little-endian bytes of one tensor. */
  readBytes(name: string): Buffer {
    const { begin, end } = this.entry(name);
    if (!this.source) throw new Error(`${this.path}: read after close()`);
    return this.source.read(this.dataStart + begin, end - begin);
  }

  /** One tensor, in the file's dtype, on the CPU or on `o.device` (read straight there). */
  read(name: string, o: { device?: Device } = {}): Tensor {
    const entry = this.entry(name);
    if (!this.source) throw new Error(`${this.path}: read after close()`);
    const device = o.device ?? "cpu";
    if (this.source.fd === undefined) return fromBytes(this.readBytes(name), entry.shape, entry.dtype, device);
    try {
      return fromFile(this.source.fd, this.dataStart + entry.begin, entry.end - entry.begin, entry.shape, entry.dtype, { device });
    } catch (error) {
      const message = (error as Error).message;
      const ended = /the file ended at byte .*/.exec(message);
      if (ended) throw new SafetensorsFormatError(this.path, ended[0]);
      throw new Error(`${this.path}: reading tensor ${JSON.stringify(name)} failed: ${message}`);
    }
  }

  /**
   * A model or adapter weight: read() that refuses a dtype that is not floating point and any NaN
   * or infinite value, naming the file and the tensor. The check is one reduction on the device
   * the tensor is read to.
   */
  readWeight(name: string, o: { device?: Device } = {}): Tensor {
    const { dtype } = this.entry(name);
    if (!isFloating(dtype)) {
      throw new Error(
        `${this.path}: tensor ${JSON.stringify(name)} has dtype ${toSafetensorsDType[dtype]}; weights must be floating point (F32, F16, BF16 or F64)`,
      );
    }
    const t = this.read(name, o);
    const bad = nonFiniteCount(t);
    if (bad > 0) {
      const total = t.numel();
      t.dispose();
      throw new Error(
        `${this.path}: tensor ${JSON.stringify(name)} holds ${bad} NaN or infinite values (of ${total}): the file is damaged or its training diverged`,
      );
    }
    return t;
  }

  close(): void {
    this.source?.close();
    this.source = undefined;
  }
}

/**
 * How many elements are NaN or infinite. One sum on the tensor's device answers "none" (a NaN or
 * an infinity makes the sum non-finite; finite values can only overflow it in float16); only a
 * non-finite sum is followed by the exact count.
 */
export function nonFiniteCount(t: Tensor): number {
  if (t.numel() === 0) return 0;
  return tidy(() => (Number.isFinite(t.sum().item()) ? 0 : t.isfinite().logicalNot().sum().item()));
}

/** The header of a file (names, dtypes, shapes, metadata) without reading any tensor. */
export function readSafetensorsHeader(path: string): SafetensorsHeader {
  const file = SafetensorsFile.open(path);
  file.close();
  return { tensors: file.tensors, metadata: file.metadata };
}

/** Every tensor of a file (CPU). For large checkpoints prefer SafetensorsFile.open + read(name). */
export function loadSafetensors(path: string): Map<string, Tensor> {
  const file = SafetensorsFile.open(path);
  const out = new Map<string, Tensor>();
  try {
    for (const name of file.keys()) out.set(name, file.read(name));
  } catch (error) {
    for (const t of out.values()) t.dispose();
    throw error;
  } finally {
    file.close();
  }
  return out;
}

/**
 * Writes tensors (any device; copied to CPU one at a time) as a safetensors file, atomically, in
 * the layout HF writes: larger dtypes first so every tensor's data is aligned to its element size.
 */
export function saveSafetensors(
  path: string,
  tensors: Record<string, Tensor> | Map<string, Tensor>,
  metadata?: Record<string, string>,
): void {
  const named = tensors instanceof Map ? [...tensors] : Object.entries(tensors);
  for (const [name] of named) {
    if (name === "__metadata__") throw new Error(`saveSafetensors(${path}): "__metadata__" cannot be a tensor name`);
  }
  for (const [key, value] of Object.entries(metadata ?? {})) {
    if (typeof value !== "string") throw new Error(`saveSafetensors(${path}): metadata value for ${JSON.stringify(key)} must be a string`);
  }
  const items = named.map(([name, tensor]) => ({ name, tensor, dtype: tensor.dtype, shape: tensor.shape }));
  items.sort(writeOrder);
  const entries: TensorEntry[] = [];
  let offset = 0;
  for (const { name, dtype, shape } of items) {
    const size = shape.reduce((a, b) => a * b, elementSize[dtype]);
    entries.push({ name, dtype, shape, begin: offset, end: offset + size });
    offset += size;
  }
  const header = encodeHeader(entries, metadata);
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(header.length));

  writeFileAtomicWith(path, (fd) => {
    writeAll(fd, length);
    writeAll(fd, header);
    items.forEach(({ name, tensor }, i) => {
      const bytes = tensor.bytes();
      const expected = entries[i].end - entries[i].begin;
      if (bytes.length !== expected)
        throw new Error(`saveSafetensors(${path}): tensor ${JSON.stringify(name)} gave ${bytes.length} bytes, expected ${expected}`);
      writeAll(fd, bytes);
    });
  });
}
