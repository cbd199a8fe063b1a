// The experiment end to end on the embedded tiny model with a few samples: every step's files,
// skipping complete steps, --force, and the config file.
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import {
  EXPERIMENT_DEFAULTS,
  type ExperimentConfig,
  experimentLayout,
  readExperimentFile,
  runExperiment,
  stepComplete,
} from "../../src/pipeline/experiment.js";
import { EMBEDDED_EVAL, EMBEDDED_TRAIN } from "../../src/paths.js";
import { dataSubset } from "../helpers.js";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "svdlora-exp-"));
const subset = (from: string, n: number, name: string) => dataSubset(from, n, dir, name);
const config: ExperimentConfig = {
  ...EXPERIMENT_DEFAULTS,
  trainData: subset(EMBEDDED_TRAIN, 12, "train.json"),
  evalData: subset(EMBEDDED_EVAL, 8, "eval.json"),
  outputDir: path.join(dir, "exp"),
  epochs: 1,
  learningRate: 1e-3,
  accuracySamples: 2,
  quiet: true,
};

test("all four steps write the SPEC's files, and complete steps are skipped", async () => {
  const lines: string[] = [];
  await runExperiment(config, [1, 2, 3, 4], { log: (l) => lines.push(l) });
  const L = experimentLayout(config);
  for (const file of [
    `${L.adapter("random")}/adapter_model.safetensors`,
    L.log("random"),
    L.lossPlot("random"),
    L.delta,
    L.synthesisReport,
    L.synthesisPlot,
    `${L.factors}/adapter_config.json`,
    L.analysis,
    L.svdReport,
    L.svdPlot,
    `${L.adapter("svd")}/adapter_model.safetensors`,
    L.log("svd"),
    L.log("pissa"),
    L.comparisonReport,
    L.comparisonPlot,
    L.comparisonJson,
    L.html,
  ])
    assert.ok(fs.existsSync(file), `missing ${file}`);
  assert.ok(([1, 2, 3, 4] as const).every((s) => stepComplete(config, s)));
  const html = fs.readFileSync(L.html, "utf8");
  assert.match(html, /data:image\/png;base64,/);
  assert.match(html, /Training and held-out loss of every arm/);
  assert.match(html, /<div data-spec="chart-1">/);
  assert.doesNotMatch(html, /(src|href)="https?:/);
  const summary = JSON.parse(fs.readFileSync(L.summary("svd"), "utf8"));
  assert.equal(summary.result.accuracy.total, 2);

  const again: string[] = [];
  const before = fs.statSync(L.log("random")).mtimeMs;
  await runExperiment(config, [1, 2], { log: (l) => again.push(l) });
  assert.equal(again.filter((l) => l.includes("skipped")).length, 2);
  assert.equal(fs.statSync(L.log("random")).mtimeMs, before);
  await runExperiment(config, [2], { force: true, log: () => {} });
  assert.ok(fs.statSync(L.svdTiming).mtimeMs > before);
  // Step 4 is stale once a run is newer than the report.
  fs.utimesSync(L.summary("svd"), new Date(), new Date(Date.now() + 5000));
  assert.equal(stepComplete(config, 4), false);
});

test("a step that needs an earlier one says which", async () => {
  const empty = { ...config, outputDir: path.join(dir, "empty") };
  await assert.rejects(runExperiment(empty, [3], { log: () => {} }), /step 3 needs the SVD factors .*: run step 2 first/);
  await assert.rejects(runExperiment(empty, [2], { log: () => {} }), /step 2 needs the baseline adapter .*: run step 1 first/);
});

test("experiment files: JSON and YAML read, unknown keys and bad syntax refused", () => {
  const yaml = path.join(dir, "exp.yaml");
  fs.writeFileSync(yaml, "epochs: 3\nlearningRate: 1.0e-4\nlora:\n  rank: 8\n  alpha: 16\n  dropout: 0\n  targets: [q_proj, v_proj]\n");
  assert.deepEqual(readExperimentFile(yaml), {
    epochs: 3,
    learningRate: 1e-4,
    lora: { rank: 8, alpha: 16, dropout: 0, targets: ["q_proj", "v_proj"] },
  });
  const json = path.join(dir, "exp.json");
  fs.writeFileSync(json, JSON.stringify({ epochs: 2, lerningRate: 1 }));
  assert.throws(() => readExperimentFile(json), /unknown setting lerningRate/);
  fs.writeFileSync(json, "{ epochs: ");
  assert.throws(() => readExperimentFile(json), /not valid JSON/);
  assert.throws(() => readExperimentFile(path.join(dir, "nope.yaml")), /no such file/);
});
