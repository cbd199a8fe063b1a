// A learning rate that diverges is a result of the grid, not the end of the experiment. On the
// embedded tiny model an absurd rate (1e37) makes the loss NaN at step 2 for real: with a grid the
// run is recorded as diverged (diverged_<run>.json, no checkpoint left), the svd run that would
// start from its teacher is not trained, the steps complete, a rerun keeps the record, and the
// comparison tunes random at a finite rate, bracketed by the diverged one; runs trained one after
// another and together alike. With one learning rate the same divergence is still an error.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import type { ComparisonResult } from "../../src/pipeline/compare.js";
import { experimentLayout, runExperiment, stepState } from "../../src/pipeline/experiment.js";
import { EXPERIMENT, type ExperimentConfig } from "../../src/pipeline/settings.js";
import { EMBEDDED_EVAL, EMBEDDED_TRAIN } from "../../src/paths.js";
import { defaults } from "../../src/util/settings.js";
import { dataSubset, runCli, tempDir } from "../helpers.js";

const dir = tempDir("diverge");
const DIVERGES = 1e37;
const base: ExperimentConfig = {
  ...(defaults(EXPERIMENT) as ExperimentConfig),
  trainData: dataSubset(EMBEDDED_TRAIN, 4, dir, "train.json"),
  evalData: dataSubset(EMBEDDED_EVAL, 4, dir, "eval.json"),
  outputDir: dir,
  epochs: 1,
  batchSize: 2,
  seeds: 1,
  accuracySamples: 0,
  arms: [],
  // 2 steps at 1e-6 barely move the adapter; at 1e-2 the validation loss drops: the finite best is 1e-2, below the diverged rate.
  lrGrid: [1e-6, 1e-2, DIVERGES],
  quiet: true,
};

async function gridWithADivergedRate(c: ExperimentConfig, together: boolean): Promise<void> {
  const L = experimentLayout(c);
  const lines: string[] = [];
  await runExperiment(c, [1, 2, 3, 4], { log: (l) => lines.push(l) });
  const text = lines.join("\n");
  if (together) assert.match(text, /training random-lr1e-6, random-lr1e-2, random-lr1e37 together/);
  assert.match(text, /^ {2}random-lr1e37: diverged \(loss became NaN at step 2\), recorded in diverged_random-lr1e37\.json/m);
  assert.match(text, /^ {2}teacher of random-lr1e37: none, random-lr1e37 diverged$/m);
  assert.match(text, /^ {2}svd-lr1e37: not trained, random-lr1e37 \(which it starts from\) diverged$/m);
  assert.ok(([1, 2, 3, 4] as const).every((s) => stepState(c, s).done));

  // The record names the run and where it stopped, with what made it; nothing else of the run is left.
  const record = JSON.parse(fs.readFileSync(L.diverged("random-lr1e37"), "utf8"));
  assert.equal(record.made_by, "svdlora");
  assert.deepEqual(
    [record.run, record.arm, record.seed, record.learningRate, record.step, record.message],
    ["random-lr1e37", "random", c.seed, DIVERGES, 2, "loss became NaN at step 2"],
  );
  assert.equal(record.identity.training.learningRate, DIVERGES);
  assert.equal(record.inputs.trainData.path, path.resolve(c.trainData));
  for (const gone of [L.summary("random-lr1e37"), L.adapter("random-lr1e37"), L.log("random-lr1e37"), L.checkpoint("random-lr1e37")])
    assert.equal(fs.existsSync(gone), false, gone);
  assert.equal(fs.existsSync(path.dirname(L.checkpoint("random"))), false, "no checkpoint left behind");

  // The comparison: random tuned at the finite rate below the diverged one, bracketed; the diverged rate shown as such.
  const r = JSON.parse(fs.readFileSync(L.comparisonJson, "utf8")) as ComparisonResult;
  const random = r.arms.find((a) => a.arm === "random")!;
  const [low, high, diverged] = random.learningRates;
  assert.ok(high.validation.mean! < low.validation.mean!, `1e-2 (${high.validation.mean}) should beat 1e-6 (${low.validation.mean})`);
  assert.equal(random.learningRate, 1e-2);
  assert.equal(random.rateAtEdge, false, "bracketed by the diverged rate above it");
  assert.deepEqual([diverged.learningRate, diverged.diverged, diverged.runs], [DIVERGES, ["random-lr1e37"], []]);
  assert.deepEqual(
    r.diverged.map((d) => [d.name, d.step]),
    [["random-lr1e37", 2]],
  );
  // svd was tried at the two finite rates only (its teacher's source diverged at the third): its edge is over those.
  assert.deepEqual(
    r.arms.find((a) => a.arm === "svd")!.learningRates.map((p) => p.learningRate),
    [1e-6, 1e-2],
  );
  const report = fs.readFileSync(L.comparisonReport, "utf8");
  assert.match(report, /^random +1e\+37 +diverged \(1 of 1 seeds\) +– +1$/m);
  assert.match(report, /^random +0\.01 \* /m);
  assert.match(fs.readFileSync(L.html, "utf8"), /<td>diverged \(1 of 1 seeds\)<\/td>/);

  // The same command again trains nothing and keeps the record.
  const written = fs.statSync(L.diverged("random-lr1e37")).mtimeMs;
  lines.length = 0;
  await runExperiment(c, [1, 2, 3, 4], { log: (l) => lines.push(l) });
  assert.equal(lines.filter((l) => / done with these settings, skipped/.test(l)).length, 4, lines.join("\n"));
  assert.equal(fs.statSync(L.diverged("random-lr1e37")).mtimeMs, written);
}

test("with a grid, a rate that diverges is recorded and loses; the runs trained one after another finish, and so do the steps", async () => {
  const c = { ...base, outputDir: path.join(dir, "alone"), concurrentArms: 1 };
  await gridWithADivergedRate(c, false);

  // A record made with other settings is not done with these: the step says why (and needs `force`).
  const L = experimentLayout(c);
  const file = L.diverged("random-lr1e37");
  const kept = fs.readFileSync(file, "utf8");
  const record = JSON.parse(kept);
  record.identity.training.epochs = 7;
  record.identity.evaluation.epochs = 7;
  fs.writeFileSync(file, JSON.stringify(record));
  try {
    assert.deepEqual(stepState(c, 1), { done: false, why: "random-lr1e37 was made with epochs 7 (now 1)", stale: true });
  } finally {
    fs.writeFileSync(file, kept);
  }
  assert.deepEqual(stepState(c, 1), { done: true });
});

test("with a grid and runs trained together, the diverged run is recorded while the others finish", async () => {
  await gridWithADivergedRate({ ...base, outputDir: path.join(dir, "together"), concurrentArms: 3 }, true);
});

test("with one learning rate, a run that diverges is still an error: one line, a non-zero exit, nothing recorded", async () => {
  const out = path.join(dir, "one-rate");
  const r = await runCli(
    "run",
    "--steps",
    "1",
    "--train-data",
    base.trainData,
    "--eval-data",
    base.evalData!,
    "--epochs",
    "1",
    "--batch-size",
    "2",
    "--accuracy-samples",
    "0",
    "--learning-rate",
    String(DIVERGES),
    "--output-dir",
    out,
    "--quiet",
  );
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /loss became NaN at step 2: lower --learning-rate \(now 1e\+37\) or set --skip-nonfinite/);
  const training = experimentLayout({ ...base, outputDir: out }).training;
  assert.deepEqual(
    fs.readdirSync(training).filter((f) => /^(diverged|train_summary)_/.test(f)),
    [],
  );
});
