// A learning rate that diverges is a result of the grid, not the end of the experiment. On the
// embedded tiny model an absurd rate (1e37) makes the loss NaN at step 2 for real: with a grid the
// run is recorded as diverged (diverged_<run>.json with its log of step 1, no checkpoint left), the
// svd run that would start from its teacher is not trained, the steps complete, a rerun keeps the
// record and log, the comparison tunes random at a finite rate, bracketed by the diverged one, and
// report.html shows the diverged run's loss until it stopped; runs trained one after another and
// together alike. A rerun over the record, finite or diverging, replaces record and log alike.
// With one learning rate the same divergence is still an error.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { type ComparisonResult, compareRuns } from "../../src/pipeline/compare.js";
import { experimentLayout, runExperiment, stepState } from "../../src/pipeline/experiment.js";
import { EXPERIMENT, type ExperimentConfig } from "../../src/pipeline/settings.js";
import { type DivergedRecord, trainRun } from "../../src/pipeline/train.js";
import { EMBEDDED_EVAL, EMBEDDED_TRAIN } from "../../src/paths.js";
import { readTrainingLog } from "../../src/train/log.js";
import { svgPathFor } from "../../src/report/index.js";
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
  maxLength: 128, // cuts the answers (every prompt fits): a divergence needs no whole samples
  seeds: 1,
  accuracySamples: 0,
  arms: [],
  // 2 steps at 1e-6 barely move the adapter; at 1e-2 the validation loss drops: the finite best is 1e-2, below the diverged rate.
  lrGrid: [1e-6, 1e-2, DIVERGES],
  quiet: true,
};

async function gridWithADivergedRate(c: ExperimentConfig, together: boolean): Promise<void> {
  const L = experimentLayout(c);
  const run = "random-lr1e37";
  const lines: string[] = [];
  await runExperiment(c, [1, 2, 3, 4], { log: (l) => lines.push(l) });
  const text = lines.join("\n");
  if (together) assert.match(text, /training random-lr1e-6, random-lr1e-2, random-lr1e37 together/);
  assert.match(
    text,
    /^ {2}random-lr1e37: diverged \(loss became NaN at step 2\), recorded in diverged_random-lr1e37\.json with its log up to then \(training_log_random-lr1e37\.csv\)/m,
  );
  assert.match(text, /^ {2}teacher of random-lr1e37: none, random-lr1e37 diverged$/m);
  assert.match(text, /^ {2}svd-lr1e37: not trained, random-lr1e37 \(which it starts from\) diverged$/m);
  assert.ok(([1, 2, 3, 4] as const).every((s) => stepState(c, s).done));

  // The record names the run, where it stopped and its log, with what made it; nothing else of the run is left.
  const record = JSON.parse(fs.readFileSync(L.diverged("random-lr1e37"), "utf8"));
  assert.equal(record.made_by, "svdlora");
  assert.deepEqual(
    [record.run, record.arm, record.seed, record.learningRate, record.step, record.message, record.log],
    ["random-lr1e37", "random", c.seed, DIVERGES, 2, "loss became NaN at step 2", "training_log_random-lr1e37.csv"],
  );
  assert.equal(record.identity.training.learningRate, DIVERGES);
  assert.equal(record.inputs.trainData.path, path.resolve(c.trainData));
  for (const gone of [L.summary(run), L.adapter(run), L.jsonl(run), L.tensorboard(run), L.lossPlot(run), L.checkpoint(run)])
    assert.equal(fs.existsSync(gone), false, gone);
  assert.equal(fs.existsSync(path.dirname(L.checkpoint("random"))), false, "no checkpoint left behind");
  // Its log: the held-out loss before training and step 1, every value finite, ending before the step that was not.
  assertLogUpTo(L.log(run), 1);

  // The comparison: random tuned at the finite rate below the diverged one, bracketed; the diverged rate shown as such.
  const r = JSON.parse(fs.readFileSync(L.comparisonJson, "utf8")) as ComparisonResult;
  const random = r.arms.find((a) => a.arm === "random")!;
  const [low, high, diverged] = random.learningRates;
  assert.ok(high.validation.mean! < low.validation.mean!, `1e-2 (${high.validation.mean}) should beat 1e-6 (${low.validation.mean})`);
  assert.equal(random.learningRate, 1e-2);
  assert.equal(random.rateAtEdge, false, "bracketed by the diverged rate above it");
  assert.deepEqual([diverged.learningRate, diverged.diverged, diverged.runs], [DIVERGES, ["random-lr1e37"], []]);
  assert.deepEqual(
    r.diverged.map((d) => [d.name, d.step, d.logPath && path.basename(d.logPath)]),
    [["random-lr1e37", 2, "training_log_random-lr1e37.csv"]],
  );
  assert.ok(!r.runs.some((x) => x.name === run), "its log does not make it a finished run");
  // svd was tried at the two finite rates only (its teacher's source diverged at the third): its edge is over those.
  assert.deepEqual(
    r.arms.find((a) => a.arm === "svd")!.learningRates.map((p) => p.learningRate),
    [1e-6, 1e-2],
  );
  const report = fs.readFileSync(L.comparisonReport, "utf8");
  assert.match(report, /^random +1e\+37 +diverged \(1 of 1 seeds\) +– +1$/m);
  assert.match(report, /^random +0\.01 \* /m);
  assert.match(
    report,
    /^ {2}random-lr1e37 \(arm random, .*\): diverged, loss became NaN at step 2; its log up to then: training_log_random-lr1e37\.csv$/m,
  );

  // report.html: the diverged rate in the table, and the run under its own heading with its record, log and curve.
  const html = fs.readFileSync(L.html, "utf8");
  assert.match(html, /<td>diverged \(1 of 1 seeds\)<\/td>/);
  assert.match(html, /<h2>Runs that diverged<\/h2>/);
  assert.match(html, /<a href="training_results\/training_log_random-lr1e37\.csv"/);
  assert.match(html, /<a href="training_results\/diverged_random-lr1e37\.json"/);
  const specs = [...html.matchAll(/<script type="application\/json" id="chart-\d+">(.*?)<\/script>/g)].map((m) => JSON.parse(m[1]));
  assert.equal(specs.length, 2, "the finished runs' chart and the diverged run's");
  const [finished, curve] = specs;
  assert.match(JSON.stringify(curve.title), /runs that diverged/);
  const [train, heldOut] = curve.hconcat.map((panel: { data: { values: { run: string; step: number }[] } }) => panel.data.values);
  assert.deepEqual(
    [train.map((p: { run: string; step: number }) => [p.run, p.step]), heldOut.map((p: { run: string; step: number }) => [p.run, p.step])],
    [[[run, 1]], [[run, 0]]],
  );
  assert.ok(!JSON.stringify(finished).includes(run), "the finished runs' chart leaves it out");

  // The same command again trains nothing and keeps the record and the log.
  const written = [L.diverged(run), L.log(run)].map((f) => fs.statSync(f).mtimeMs);
  lines.length = 0;
  await runExperiment(c, [1, 2, 3, 4], { log: (l) => lines.push(l) });
  assert.equal(lines.filter((l) => / done with these settings, skipped/.test(l)).length, 4, lines.join("\n"));
  assert.deepEqual(
    [L.diverged(run), L.log(run)].map((f) => fs.statSync(f).mtimeMs),
    written,
  );
}

/** A diverged run's log: train rows up to `last` (each finite) and held-out rows no later, nothing after. */
function assertLogUpTo(file: string, last: number): void {
  const log = readTrainingLog(file);
  assert.deepEqual(
    log.train.map((r) => r.step),
    Array.from({ length: last }, (_, i) => i + 1),
  );
  assert.ok(
    log.train.every((r) => Number.isFinite(r.loss) && Number.isFinite(r.gradNorm)),
    JSON.stringify(log.train),
  );
  assert.ok(log.eval.length > 0 && log.eval.every((e) => e.step <= last && Number.isFinite(e.evalLoss)), JSON.stringify(log.eval));
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
  // A record whose log is gone is incomplete, as a finished run without its log is.
  const run = "random-lr1e37";
  const log = fs.readFileSync(L.log(run));
  fs.rmSync(L.log(run));
  assert.deepEqual(stepState(c, 1), { done: false, why: `${run} is incomplete: ${L.log(run)} is missing`, stale: true });
  fs.writeFileSync(L.log(run), log);

  // Trained again over its record with `overwrite` (as `force` does): at a finite rate the run's
  // files replace record and log; diverging again, a new record and log replace those files.
  const settings = (JSON.parse(kept) as DivergedRecord).settings;
  const experiment = (JSON.parse(kept) as DivergedRecord).experiment;
  const finite = await trainRun({ ...settings, learningRate: 1e-2, overwrite: true }, { runName: run, recordDivergence: true, experiment });
  assert.ok(!("diverged" in finite));
  assert.equal(fs.existsSync(file), false, "the record is gone");
  assert.deepEqual(
    readTrainingLog(L.log(run)).train.map((r) => r.step),
    [1, 2],
  );
  assert.ok([L.summary(run), L.adapter(run), L.lossPlot(run)].every((f) => fs.existsSync(f)));
  assert.equal(compareRuns(L.training).diverged.length, 0);
  const again = await trainRun({ ...settings, overwrite: true }, { runName: run, recordDivergence: true, experiment });
  assert.deepEqual("diverged" in again && [again.step, again.logPath], [2, L.log(run)]);
  for (const gone of [L.summary(run), L.adapter(run), L.jsonl(run), L.lossPlot(run), svgPathFor(L.lossPlot(run))])
    assert.equal(fs.existsSync(gone), false, gone);
  assertLogUpTo(L.log(run), 1);
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
