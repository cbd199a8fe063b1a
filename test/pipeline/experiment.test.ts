// The experiment end to end on the embedded tiny model with a few samples: every step's files,
// one teacher per seed, skipping done steps, refusing stale ones, and experiment files.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { before, test } from "node:test";
import { experimentLayout, readExperimentFile, runExperiment, stepState } from "../../src/pipeline/experiment.js";
import { teacherLayout } from "../../src/pipeline/layout.js";
import { renderExperimentReport } from "../../src/pipeline/report.js";
import { EXPERIMENT, type ExperimentConfig } from "../../src/pipeline/settings.js";
import { EMBEDDED_EVAL, EMBEDDED_TRAIN } from "../../src/paths.js";
import { defaults } from "../../src/util/settings.js";
import { dataSubset, tempDir } from "../helpers.js";

const dir = tempDir("exp");
const config: ExperimentConfig = {
  ...(defaults(EXPERIMENT) as ExperimentConfig),
  trainData: dataSubset(EMBEDDED_TRAIN, 4, dir, "train.json"),
  evalData: dataSubset(EMBEDDED_EVAL, 4, dir, "eval.json"),
  outputDir: path.join(dir, "exp"),
  epochs: 1,
  learningRate: 1e-3,
  accuracySamples: 2,
  maxNewTokens: 16, // the accuracy check runs; how long the answers are does not matter here
  seeds: 2,
  quiet: true,
};
const L = experimentLayout(config);
let lines: string[] = [];

before(async () => {
  await runExperiment(config, [1, 2, 3, 4], { log: (l) => lines.push(l) });
});

test("all four steps write their files, with one teacher per seed", () => {
  const T2 = teacherLayout(config.outputDir, 1, config);
  for (const file of [
    `${L.adapter("random")}/adapter_model.safetensors`,
    L.log("random"),
    L.lossPlot("random"),
    L.log("random-s2"),
    L.delta,
    L.synthesisReport,
    L.synthesisPlot,
    `${L.factors}/adapter_config.json`,
    L.analysis,
    L.svdReport,
    L.svdPlot,
    T2.delta,
    `${T2.factors}/adapter_config.json`,
    `${L.adapter("svd")}/adapter_model.safetensors`,
    L.log("svd-s2"),
    L.log("pissa"),
    L.comparisonReport,
    L.comparisonPlot,
    L.comparisonJson,
    L.html,
  ])
    assert.ok(fs.existsSync(file), `missing ${file}`);
  assert.ok(([1, 2, 3, 4] as const).every((s) => stepState(config, s).done));
  // The svd run of seed 2 started from the teacher of the random run of seed 2.
  const svd2 = JSON.parse(fs.readFileSync(L.summary("svd-s2"), "utf8"));
  assert.equal(svd2.settings.svdFactors, T2.factors);
  assert.equal(svd2.settings.seed, config.seed + 1);
  assert.equal(svd2.result.accuracy.total, 2);
  const html = fs.readFileSync(L.html, "utf8");
  assert.match(html, /data:image\/png;base64,/);
  assert.match(html, /Training and held-out loss of every arm/);
  assert.match(html, /<div data-spec="chart-1">/);
  assert.doesNotMatch(html, /(src|href)="https?:/);
  assert.ok(lines.some((l) => l.startsWith("step 3:")));
});

test("done steps are skipped; a step made with other settings is refused, and force redoes it", async () => {
  lines = [];
  const before = fs.statSync(L.log("random")).mtimeMs;
  await runExperiment(config, [1, 2], { log: (l) => lines.push(l) });
  assert.equal(lines.filter((l) => l.includes("skipped")).length, 2);
  assert.equal(fs.statSync(L.log("random")).mtimeMs, before);

  const changed = { ...config, noiseScale: 0.2 };
  assert.deepEqual(stepState(changed, 1), { done: true });
  assert.match((stepState(changed, 2) as { why: string }).why, /the teacher of seed 42 was made with noiseScale 0\.1 \(now 0\.2\)/);
  await assert.rejects(runExperiment(changed, [2], {}), /step 2: .*noiseScale 0\.1 \(now 0\.2\); rerun with `force`/);
  const longer = { ...config, epochs: 2 };
  assert.match((stepState(longer, 1) as { why: string }).why, /random was made with epochs 1 \(now 2\)/);
  // The same settings but other data: not done, and why.
  const data = fs.readFileSync(config.trainData);
  fs.writeFileSync(config.trainData, `${data.toString().trimEnd()} \n`);
  try {
    assert.match((stepState(config, 1) as { why: string }).why, /^random: its trainData .*train\.json has changed since it ran$/);
  } finally {
    fs.writeFileSync(config.trainData, data);
  }
  assert.deepEqual(stepState(config, 1), { done: true });
  // Other SVD factors than the svd run started from (the teacher made again, differently).
  const factorsConfig = path.join(L.factors, "adapter_config.json");
  const factors = fs.readFileSync(factorsConfig);
  fs.writeFileSync(factorsConfig, `${factors.toString().trimEnd()} \n`);
  try {
    assert.match((stepState(config, 3) as { why: string }).why, /^svd: its svdFactors .*svd_factors_rank16 has changed since it ran$/);
  } finally {
    fs.writeFileSync(factorsConfig, factors);
  }
  // A run whose adapter is gone is not done either.
  fs.renameSync(L.adapter("pissa"), `${L.adapter("pissa")}.away`);
  try {
    assert.match((stepState(config, 3) as { why: string }).why, /^pissa is incomplete: .*final_model_pissa is missing$/);
  } finally {
    fs.renameSync(`${L.adapter("pissa")}.away`, L.adapter("pissa"));
  }

  await runExperiment(config, [2], { force: true });
  assert.ok(fs.statSync(L.analysis).mtimeMs > before);
  // Step 4 is to do again once what it was made from has changed (here the teacher's timing).
  assert.match(
    (stepState(config, 4) as { why: string }).why,
    /^(svd_results|synthesized_teacher)\S*_timing\.json has changed since the report was made$/,
  );
});

test("report.html is labelled with the settings the runs were made with, not the experiment file's", () => {
  const html = renderExperimentReport({ ...config, learningRate: 5e-4, epochs: 3 }, L);
  assert.match(html, /<td>learning rate<\/td><td>0\.001<\/td>/);
  assert.match(html, /<td>epochs<\/td><td>1<\/td>/);
  assert.match(html, /<td>seeds<\/td><td>42, 43<\/td>/);
  assert.match(html, /<td>teacher<\/td><td>rank K = 64, noise 0\.1, /);
});

test("a step that needs an earlier one says which", async () => {
  const empty = { ...config, outputDir: path.join(dir, "empty") };
  await assert.rejects(runExperiment(empty, [3]), /step 3 needs the SVD factors of seed 42: run step 2 first/);
  await assert.rejects(runExperiment(empty, [2]), /step 2 needs the baseline adapter .*: run step 1 first/);
});

test("experiment files: JSON and YAML, Hugging Face / LLaMA-Factory spellings, unknown keys and bad syntax refused", () => {
  assert.deepEqual(readExperimentFile("epochs: 3\nlearningRate: 1.0e-4\nlora_rank: 8\nlora_target: all\n", "exp.yaml"), {
    epochs: 3,
    learningRate: 1e-4,
    loraRank: 8,
    targetModules: "all-linear",
  });
  assert.deepEqual(
    readExperimentFile(JSON.stringify({ num_train_epochs: 2, per_device_train_batch_size: 8, bf16: true, cutoff_len: 512 }), "exp.json"),
    {
      epochs: 2,
      batchSize: 8,
      dtype: "bfloat16",
      maxLength: 512,
    },
  );
  assert.throws(
    () => readExperimentFile(JSON.stringify({ epochs: 2, lerning_rate: 1 }), "exp.json"),
    /unknown setting "lerning_rate" \(did you mean learning_rate\?\)/,
  );
  assert.throws(() => readExperimentFile('{"__proto__": {"epochs": 1}}', "exp.json"), /unknown setting "__proto__"/);
  assert.throws(() => readExperimentFile('{"toString": 2}', "exp.json"), /unknown setting "toString"/);
  assert.throws(() => readExperimentFile("{ epochs: ", "exp.json"), /exp\.json: not valid JSON/);
  assert.throws(() => readExperimentFile("epochs: .inf\n", "exp.yaml"), /exp\.yaml: epochs must be an integer ≥ 1, got Infinity/);
  assert.throws(() => readExperimentFile("seeds: 1e12\n", "exp.yaml"), /seeds must be an integer in \[1, 1000\], got 1000000000000/);
  assert.throws(
    () => readExperimentFile("epochs: 2\nnum_train_epochs: 3\n", "exp.yaml"),
    /num_train_epochs and epochs set the same setting/,
  );
});
