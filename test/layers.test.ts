// The layers of src/ import downward only (README, "How the code is organised"): every import of
// every src/**/*.ts file, static or dynamic, is checked against the order below. Folders in one
// row are peers and do not import each other, except for the edges named in PEER_EDGES; an import
// that breaks the order is allowed only as a named exception in EXCEPTIONS, which this test
// reports each time it runs (and fails on once the import is gone, so the list stays true).
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";

const SRC = new URL("../../src/", import.meta.url).pathname;

/** From the top (imports anything below) to the bottom (imports nothing of src/). */
const ORDER = [["cli"], ["pipeline"], ["train", "lowrank", "report", "stats"], ["model"], ["hf", "data"], ["torch"], ["util"]];

/**
 * Files at the root of src/: index.ts is the package's entry point (it may import anything, and
 * nothing in src/ imports it); paths.ts and version.ts may be imported from any layer and import
 * nothing of src/.
 */
const ENTRY = "index.ts";
const SHARED = ["paths.ts", "version.ts"];

/** Peer imports with a real need. */
const PEER_EDGES: { from: string; to: string; why: string }[] = [
  {
    from: "hf",
    to: "data",
    why: "hf's tokenizer implements the contract that data formats samples with (ChatMessage, ChatTemplateLimitError, the default ChatML template)",
  },
  {
    from: "train",
    to: "lowrank",
    why: "training puts a LoRA init on the model before the first step: train's settings name the inits, the calibration pass feeds their statistics, the trainer calls them",
  },
];

/** Imports that break the order, each to be removed; the test lists them every time it runs. */
const EXCEPTIONS: { from: string; to: string; why: string }[] = [];

const layerOf = (rel: string) => (rel.includes("/") ? rel.split("/")[0] : rel);
const rowOf = (layer: string) => ORDER.findIndex((row) => row.includes(layer));

/** The relative imports of a TypeScript source (comments removed first), as src-relative .ts paths. */
function importsOf(rel: string): string[] {
  const text = fs
    .readFileSync(path.join(SRC, rel), "utf8")
    .replace(/\/\*[\s\S]*?\*\//g, "")
    .replace(/^\s*\/\/.*$/gm, "");
  const specs = [
    ...text.matchAll(/^\s*(?:import|export)\s+(?:type\s+)?(?:[\w*{}\s,$]+\s+from\s+)?["']([^"']+)["']/gm),
    ...text.matchAll(/\bimport\(\s*["']([^"']+)["']\s*\)/g),
  ].map((m) => m[1]);
  return specs
    .filter((s) => s.startsWith("."))
    .map((s) =>
      path
        .relative(SRC, path.resolve(path.dirname(path.join(SRC, rel)), s))
        .split(path.sep)
        .join("/")
        .replace(/\.js$/, ".ts"),
    );
}

/** Why an import breaks the layering, or null when it does not. */
function violation(from: string, to: string): string | null {
  const [a, b] = [layerOf(from), layerOf(to)];
  if (b === ENTRY) return `imports ${ENTRY}, the package's entry point`;
  if (a === ENTRY || SHARED.includes(b) || a === b) return null;
  if (SHARED.includes(a)) return `${a} imports nothing of src/`;
  const [ra, rb] = [rowOf(a), rowOf(b)];
  if (ra < 0 || rb < 0) return `${ra < 0 ? a : b} is in no layer: add it to ORDER in test/layers.test.ts`;
  if (rb > ra) return null;
  if (rb === ra) return PEER_EDGES.some((e) => e.from === a && e.to === b) ? null : `${a} and ${b} are peers`;
  return `${a} is above ${b}`;
}

test("src/ imports downward only", (t) => {
  const files = fs
    .readdirSync(SRC, { recursive: true })
    .map((f) => String(f).split(path.sep).join("/"))
    .filter((f) => f.endsWith(".ts"));
  assert.ok(files.length > 100, `found only ${files.length} files under ${SRC}`);
  const bad: string[] = [];
  const used = new Set<(typeof EXCEPTIONS)[number]>();
  for (const from of files)
    for (const to of importsOf(from)) {
      const why = violation(from, to);
      if (!why) continue;
      const exception = EXCEPTIONS.find((e) => e.from === from && e.to === to);
      if (exception) used.add(exception);
      else bad.push(`${from} imports ${to}: ${why}`);
    }
  for (const e of used) t.diagnostic(`allowed for now: ${e.from} imports ${e.to} (${e.why})`);
  assert.deepEqual(bad, [], `imports against the layering:\n${bad.join("\n")}`);
  const stale = EXCEPTIONS.filter((e) => !used.has(e));
  assert.deepEqual(stale, [], "exceptions for imports that are gone: remove them from EXCEPTIONS");
});

test("the check sees a violation: each kind of edge", () => {
  assert.equal(violation("model/lora.ts", "lowrank/inits/weight.ts"), "model is above lowrank");
  assert.equal(violation("train/loop.ts", "report/charts.ts"), "train and report are peers");
  assert.equal(violation("data/format.ts", "hf/tokenizer.ts"), "data and hf are peers");
  assert.equal(violation("hf/tokenizer.ts", "data/types.ts"), null);
  assert.equal(violation("util/outputs.ts", "version.ts"), null);
  assert.equal(violation("pipeline/train.ts", "index.ts"), "imports index.ts, the package's entry point");
  assert.equal(violation("cli/main.ts", "util/settings.ts"), null);
  assert.deepEqual(importsOf("util/atomic.ts").sort(), ["util/files.ts", "util/outputs.ts"]);
});
