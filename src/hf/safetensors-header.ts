// The safetensors header: an 8-byte little-endian length, then that many bytes of JSON
// `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__"?: {string: string}}`.
// Everything here is validated before a single tensor byte is trusted.
import { type DType, elementSize } from "../torch/index.js";
import { findDuplicateKey } from "./json-duplicates.js";

export type SafetensorsDType = "F64" | "F32" | "F16" | "BF16" | "I64" | "I32" | "U8" | "BOOL";

export const fromSafetensorsDType: Record<SafetensorsDType, DType> = {
  F64: "float64",
  F32: "float32",
  F16: "float16",
  BF16: "bfloat16",
  I64: "int64",
  I32: "int32",
  U8: "uint8",
  BOOL: "bool",
};
export const toSafetensorsDType: Record<DType, SafetensorsDType> = {
  float64: "F64",
  float32: "F32",
  float16: "F16",
  bfloat16: "BF16",
  int64: "I64",
  int32: "I32",
  uint8: "U8",
  bool: "BOOL",
};
/** dtypes the format defines that libtorch 1.13 (our oldest target) cannot hold or we do not use. */
const unsupportedDTypes = new Set(["I8", "I16", "U16", "U32", "U64", "F8_E5M2", "F8_E4M3"]);

/** HF's own limit (safetensors MAX_HEADER_SIZE): a larger header is damage, not a model. */
export const MAX_HEADER_BYTES = 100_000_000;

/** One tensor's entry; begin/end are relative to the start of the data section. */
export interface TensorEntry {
  name: string;
  dtype: DType;
  shape: number[];
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  /** In data order (ascending offsets). */
  tensors: Map<string, TensorEntry>;
  metadata: Record<string, string> | undefined;
}

/** Thrown for every malformed file; the message names the file and the problem. */
export class SafetensorsFormatError extends Error {
  constructor(file: string, problem: string) {
    super(`${file}: not a valid safetensors file: ${problem} (damaged or incomplete: download or save it again)`);
    this.name = "SafetensorsFormatError";
  }
}

const quote = (s: string) => JSON.stringify(s);
// -0 passes `>= 0` but no writer emits it: treat it as the damage it is
const isCount = (v: unknown): v is number => typeof v === "number" && Number.isSafeInteger(v) && v >= 0 && !Object.is(v, -0);

/** The header length from the first 8 bytes, checked against the file size. */
export function headerLength(first8: Uint8Array, fileSize: number, file: string): number {
  if (fileSize < 8) throw new SafetensorsFormatError(file, `it is ${fileSize} bytes long, shorter than the 8-byte header length`);
  const n = Buffer.from(first8.buffer, first8.byteOffset, 8).readBigUInt64LE(0);
  if (n > BigInt(MAX_HEADER_BYTES)) throw new SafetensorsFormatError(file, `header length ${n} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
  if (Number(n) + 8 > fileSize) {
    throw new SafetensorsFormatError(file, `header length ${n} runs past the end of the file (${fileSize} bytes)`);
  }
  return Number(n);
}

/** Parses and validates the JSON header; dataSize is the number of bytes after the header. */
export function parseHeader(headerBytes: Uint8Array, dataSize: number, file: string): SafetensorsHeader {
  const fail: (problem: string) => never = (problem) => {
    throw new SafetensorsFormatError(file, problem);
  };
  let text = "";
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(headerBytes);
  } catch {
    fail("the header is not valid UTF-8");
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    // V8 quotes the offending text, which may hold newlines or megabytes: keep one short line
    fail(`the header is not valid JSON (${(error as Error).message.replace(/\s+/g, " ").slice(0, 200)})`);
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) fail("the header is not a JSON object");
  const duplicate = findDuplicateKey(text);
  if (duplicate) {
    const where = duplicate.path.length ? ` inside ${duplicate.path.map(quote).join(".")}` : "";
    fail(`the header has the key ${quote(duplicate.key)} twice${where}`);
  }

  let metadata: Record<string, string> | undefined;
  const entries: TensorEntry[] = [];
  for (const [name, value] of Object.entries(json as Record<string, unknown>)) {
    if (name === "__metadata__") {
      metadata = value === null ? undefined : parseMetadata(value, fail); // null: HF's "no metadata"
    } else {
      entries.push(parseEntry(name, value, dataSize, fail));
    }
  }
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  for (let i = 1; i < entries.length; i++) {
    const [prev, cur] = [entries[i - 1], entries[i]];
    if (cur.begin < prev.end)
      fail(`tensors ${quote(prev.name)} and ${quote(cur.name)} overlap (bytes ${prev.begin}-${prev.end} and ${cur.begin}-${cur.end})`);
  }
  return { tensors: new Map(entries.map((e) => [e.name, e])), metadata };
}

function parseMetadata(value: unknown, fail: (problem: string) => never): Record<string, string> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) fail(`"__metadata__" is not an object of strings`);
  for (const [key, v] of Object.entries(value as object)) {
    if (typeof v !== "string") fail(`"__metadata__" value for ${quote(key)} is not a string`);
  }
  return { ...(value as Record<string, string>) };
}

function parseEntry(name: string, value: unknown, dataSize: number, fail: (problem: string) => never): TensorEntry {
  const what = `tensor ${quote(name)}`;
  if (typeof value !== "object" || value === null || Array.isArray(value)) fail(`${what} is not an object`);
  const { dtype: code, shape, data_offsets: offsets } = value as Record<string, unknown>;

  if (typeof code !== "string") fail(`${what} has no dtype string`);
  if (unsupportedDTypes.has(code as string))
    fail(`${what} has dtype ${code}, which svdlora does not support (use F32, F16, BF16, F64, I64, I32, U8 or BOOL)`);
  if (!Object.hasOwn(fromSafetensorsDType, code as string)) fail(`${what} has unknown dtype ${quote(code as string)}`);
  const dtype = fromSafetensorsDType[code as SafetensorsDType];

  if (!Array.isArray(shape) || !shape.every(isCount))
    fail(`${what} has shape ${JSON.stringify(shape)}, not a list of non-negative integers`);
  if (!Array.isArray(offsets) || offsets.length !== 2) fail(`${what} has data_offsets ${JSON.stringify(offsets)}, not a [begin, end] pair`);
  const [begin, end] = offsets as unknown[];
  if (!isCount(begin) || !isCount(end)) fail(`${what} has data_offsets ${JSON.stringify(offsets)}: they must be non-negative integers`);
  if (end < begin) fail(`${what} has data_offsets [${begin}, ${end}]: end is before begin`);
  if (end > dataSize) fail(`${what} has data_offsets [${begin}, ${end}] past the end of the data (${dataSize} bytes)`);

  let bytes = elementSize[dtype];
  for (const d of shape as number[]) bytes *= d;
  if (!Number.isSafeInteger(bytes) || bytes !== end - begin) {
    fail(`${what} has ${end - begin} bytes of data but dtype ${code} × shape [${shape}] needs ${bytes}`);
  }
  return { name, dtype, shape: [...(shape as number[])], begin, end };
}

/** Tensor names sorted as safetensors' writer sorts them: larger alignment first, then by name. */
const writeRank: Record<SafetensorsDType, number> = { BOOL: 0, U8: 1, F16: 7, BF16: 8, I32: 9, F32: 11, F64: 12, I64: 13 };

export function writeOrder(a: { name: string; dtype: DType }, b: { name: string; dtype: DType }): number {
  const rank = writeRank[toSafetensorsDType[b.dtype]] - writeRank[toSafetensorsDType[a.dtype]];
  // Rust compares names as UTF-8 bytes, which differs from JS string order beyond the BMP
  return rank || Buffer.compare(Buffer.from(a.name, "utf8"), Buffer.from(b.name, "utf8"));
}

/** The header bytes as HF writes them: compact JSON, metadata first, padded with spaces to 8. */
export function encodeHeader(entries: TensorEntry[], metadata?: Record<string, string>): Buffer {
  const parts: string[] = [];
  if (metadata) {
    const sorted = Object.keys(metadata)
      .sort()
      .map((k) => `${quote(k)}:${quote(metadata[k])}`);
    parts.push(`"__metadata__":{${sorted.join(",")}}`);
  }
  for (const e of entries) {
    const info = `{"dtype":"${toSafetensorsDType[e.dtype]}","shape":[${e.shape.join(",")}],"data_offsets":[${e.begin},${e.end}]}`;
    parts.push(`${quote(e.name)}:${info}`);
  }
  const json = Buffer.from(`{${parts.join(",")}}`, "utf8");
  const padded = Buffer.alloc(Math.ceil(json.length / 8) * 8, " ");
  json.copy(padded);
  return padded;
}
