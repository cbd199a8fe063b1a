// lowrank/ is pure maths on tensors: its modules load nothing but other lowrank modules and the
// tensor API (torch/), so no file is ever read or written there (files are hf/'s and pipeline/'s).
// Type-only imports are erased by the compiler and are allowed.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";

const SRC = fileURLToPath(new URL("../../../src/", import.meta.url));
// Folders whose modules lowrank may load, and the one pure formula it shares with hf/ (LoRA's scale).
const ALLOWED = [...["lowrank", "torch"].map((dir) => path.join(SRC, dir) + path.sep), path.join(SRC, "util", "lora-scale.")];

/** The module specifiers a TypeScript source loads at run time (static, side-effect, dynamic, require). */
function valueImports(source: string): string[] {
  const code = source.replace(/\/\*[\s\S]*?\*\//g, "").replace(/(^|[^:"'`])\/\/.*$/gm, "$1");
  const found: string[] = [];
  for (const m of code.matchAll(/(?:^|[\n;])\s*(?:import|export)\s+(type\s+)?[^;'"]*?\bfrom\s*["']([^"']+)["']/g))
    if (!m[1]) found.push(m[2]);
  for (const m of code.matchAll(/(?:^|[\n;])\s*import\s*["']([^"']+)["']/g)) found.push(m[1]);
  for (const m of code.matchAll(/\b(?:import|require)\s*\(\s*["']([^"']+)["']/g)) found.push(m[1]);
  return found;
}

/** Problems with one lowrank file's imports: anything outside lowrank/ and torch/ (node:fs, hf/, util/atomic, …). */
function impureImports(file: string, source: string): string[] {
  return valueImports(source)
    .filter((spec) => !spec.startsWith(".") || !ALLOWED.some((dir) => path.resolve(path.dirname(file), spec).startsWith(dir)))
    .map((spec) => `${path.relative(SRC, file)} imports ${spec}`);
}

const lowrankFiles = (fs.readdirSync(path.join(SRC, "lowrank"), { recursive: true }) as string[])
  .filter((f) => f.endsWith(".ts"))
  .map((f) => path.join(SRC, "lowrank", f));

describe("lowrank/ is pure maths", () => {
  it("no module under src/lowrank loads anything but lowrank/ and torch/ modules", () => {
    assert.ok(lowrankFiles.length >= 6, `found the sources: ${lowrankFiles.length} files`);
    const problems = lowrankFiles.flatMap((file) => impureImports(file, fs.readFileSync(file, "utf8")));
    assert.deepEqual(problems, [], "move file reading and writing to hf/ (formats) or pipeline/ (steps)");
  });

  it("the scan catches each way of loading a file-reading module, and lets type-only imports pass", () => {
    const file = path.join(SRC, "lowrank", "inits", "example.ts");
    const source = [
      'import * as torch from "../../torch/index.js";',
      'import { type Svd, exactSvd } from "../svd.js";',
      'import type { LoraWeights } from "../../hf/peft.js";',
      'import fs from "node:fs";',
      'import {\n  loadAdapter,\n  saveAdapter,\n} from "../../hf/peft.js";',
      'export { writeFileAtomic } from "../../util/atomic.js";',
      'import "path";',
      'const p = await import("node:path");',
      '// import { nothing } from "node:os"; (a comment)',
      'const m = require("../../hf/safetensors.js");',
    ].join("\n");
    assert.deepEqual(impureImports(file, source), [
      "lowrank/inits/example.ts imports node:fs",
      "lowrank/inits/example.ts imports ../../hf/peft.js",
      "lowrank/inits/example.ts imports ../../util/atomic.js",
      "lowrank/inits/example.ts imports path",
      "lowrank/inits/example.ts imports node:path",
      "lowrank/inits/example.ts imports ../../hf/safetensors.js",
    ]);
  });
});
