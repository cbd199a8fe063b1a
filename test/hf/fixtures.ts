// Shared helpers for the hf tests: temp dirs and hand-built safetensors bytes.
import { tempDir as sharedTempDir } from "../helpers.js";

/** A fresh temp directory, removed when the test file finishes. */
export const tempDir = (prefix = "hf") => sharedTempDir(prefix);

/** A safetensors file from a header string (used verbatim) and raw data bytes. */
export function safetensorsBytes(header: string, data: Uint8Array | number[] = []): Buffer {
  const json = Buffer.from(header, "utf8");
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([length, json, Buffer.from(data)]);
}

export const f32Bytes = (...values: number[]) => Buffer.from(new Float32Array(values).buffer);
