// Content digests of input files, so a run records exactly what it read and later runs can tell
// whether their inputs are the same.
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";

/** sha256 of a file's bytes, read in 1 MiB pieces. */
export function fileDigest(file: string): string {
  const hash = createHash("sha256");
  const fd = fs.openSync(file, "r");
  try {
    const buf = Buffer.alloc(1 << 20);
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      hash.update(buf.subarray(0, n));
    }
  } finally {
    fs.closeSync(fd);
  }
  return hash.digest("hex");
}

/** Weight files larger than this are identified by their size alone (hashing tens of gigabytes takes minutes). */
export const HASHED_WEIGHTS_BYTES = 2 ** 30;

/** What identifies one file of a folder: its sha256, or its size (a weight file over HASHED_WEIGHTS_BYTES). */
function fileIdentity(file: string): string | number {
  const size = fs.statSync(file).size;
  return /\.(safetensors|bin|pt|gguf)$/.test(file) && size > HASHED_WEIGHTS_BYTES ? size : fileDigest(file);
}

/**
 * What identifies an input: its path, and its digest (a file) or each file's identity (a folder:
 * sha256, or the size of a weight file over 1 GiB, such as a base model's shards; adapters and
 * SVD factors are hashed).
 */
export function describeInput(p: string): { path: string; sha256?: string; files?: Record<string, string | number> } {
  const abs = path.resolve(p);
  if (!fs.statSync(abs).isDirectory()) return { path: abs, sha256: fileDigest(abs) };
  const files: Record<string, string | number> = {};
  for (const f of fs.readdirSync(abs).sort()) {
    const full = path.join(abs, f);
    if (fs.statSync(full).isFile()) files[f] = fileIdentity(full);
  }
  return { path: abs, files };
}

/**
 * Whether the input recorded as `recorded` (describeInput) is the same at its path now. A file
 * recorded by its size (an earlier record, or a large weight file) is compared by its size.
 */
export function sameInput(recorded: { path: string; sha256?: string; files?: Record<string, string | number> }): boolean {
  if (!fs.existsSync(recorded.path)) return false;
  if (recorded.sha256 !== undefined) return !fs.statSync(recorded.path).isDirectory() && fileDigest(recorded.path) === recorded.sha256;
  if (!recorded.files || !fs.statSync(recorded.path).isDirectory()) return false;
  const now = fs.readdirSync(recorded.path).filter((f) => fs.statSync(path.join(recorded.path, f)).isFile());
  if (now.length !== Object.keys(recorded.files).length) return false;
  return now.every((f) => {
    const was = recorded.files![f];
    const file = path.join(recorded.path, f);
    return typeof was === "number" ? fs.statSync(file).size === was : was === fileIdentity(file);
  });
}
