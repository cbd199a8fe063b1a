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

/** What identifies an input: its path, and its digest (a file) or its files' digests and sizes (a folder; weights by size only). */
export function describeInput(p: string): { path: string; sha256?: string; files?: Record<string, string | number> } {
  const abs = path.resolve(p);
  if (!fs.statSync(abs).isDirectory()) return { path: abs, sha256: fileDigest(abs) };
  const files: Record<string, string | number> = {};
  for (const f of fs.readdirSync(abs).sort()) {
    const full = path.join(abs, f);
    if (!fs.statSync(full).isFile()) continue;
    // Weights can be tens of gigabytes: their size stands in for them; small files are hashed.
    files[f] = /\.(safetensors|bin|pt|gguf)$/.test(f) ? fs.statSync(full).size : fileDigest(full);
  }
  return { path: abs, files };
}
