#!/usr/bin/env node
// Writes data/probability/train.json, eval.json and accuracy.json from the seeded generator (build first:
// `npx tsc -p .`). With --check, writes nothing and fails if the files are out of date.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const built = join(root, "dist/src/data/probability/datasets.js");
if (!existsSync(built)) {
  console.error(`make-probability-data: ${built} is missing; run \`npx tsc -p .\` first`);
  process.exit(1);
}
const { buildAccuracyProblems, buildProbabilityProblems, serializeDataSet, PROBABILITY_DATA } = await import(built);

const check = process.argv.includes("--check");
const sets = { ...buildProbabilityProblems(), accuracy: buildAccuracyProblems() };
let stale = 0;
for (const [name, file] of [
  ["train", PROBABILITY_DATA.trainFile],
  ["eval", PROBABILITY_DATA.evalFile],
  ["accuracy", PROBABILITY_DATA.accuracyFile],
]) {
  const path = join(root, file),
    text = serializeDataSet(sets[name]);
  if (check) {
    const same = existsSync(path) && readFileSync(path, "utf8") === text;
    if (!same) stale++;
    console.log(`${file}: ${same ? "up to date" : "OUT OF DATE"}`);
  } else {
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, text);
    console.log(`${file}: ${sets[name].length} items`);
  }
}
if (stale) {
  console.error("run `node scripts/make-probability-data.mjs` to regenerate");
  process.exit(1);
}
