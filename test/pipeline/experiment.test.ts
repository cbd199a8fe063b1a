// The experiment end to end on the small model of test/small-model.ts with a few samples: every
// step's files, one teacher per seed, the same results with runs trained together, skipping done
// steps, refusing stale ones, and experiment files; no tensor is left behind.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { before, test } from "node:test";
import { experimentLayout, readExperimentFile, plan, runExperiment, stepState } from "../../src/pipeline/experiment.js";
import { measureAccuracy } from "../../src/pipeline/accuracy.js";
import { teacherLayout } from "../../src/pipeline/layout.js";
import { renderExperimentReport } from "../../src/pipeline/report.js";
import { EXPERIMENT, INIT_ARMS, type ExperimentConfig } from "../../src/pipeline/settings.js";
import { EMBEDDED_ACCURACY, EMBEDDED_EVAL, EMBEDDED_TRAIN } from "../../src/paths.js";
import { defaults } from "../../src/util/settings.js";
import * as torch from "../../src/torch/index.js";
import { dataSubset, settledMemory, tempDir } from "../helpers.js";
import { smallModel } from "../small-model.js";
import { compareRunFiles } from "../train/concurrent-runs.js";

const dir = tempDir("exp");
const config: ExperimentConfig = {
  ...(defaults(EXPERIMENT) as ExperimentConfig),
  baseModel: smallModel(dir),
  trainData: dataSubset(EMBEDDED_TRAIN, 4, dir, "train.json"),
  evalData: dataSubset(EMBEDDED_EVAL, 4, dir, "eval.json"),
  outputDir: path.join(dir, "exp"),
  maxLength: 128, // cuts the answers (every prompt fits): what is tested here does not need whole samples
  epochs: 1,
  learningRate: 1e-3,
  accuracyData: dataSubset(EMBEDDED_ACCURACY, 3, dir, "accuracy.json"),
  accuracySamples: 2,
  maxNewTokens: 16, // the accuracy check runs; how long the answers are does not matter here
  seeds: 2,
  quiet: true,
};
const L = experimentLayout(config);
// Runs trained together against alone, with BLAS threads as they are (test/train/concurrent.test.ts
// says why they differ at all): largest relative difference of losses, and of adapter tensors (Frobenius).
const LOSS = 1e-4;
const ADAPTER = 1e-4;
let lines: string[] = [];
// The live tensors before and after the experiment's four steps.
const live: { before?: torch.LiveTensors; after?: torch.LiveTensors } = {};

before(async () => {
  live.before = await settledMemory();
  await runExperiment(config, [1, 2, 3, 4], { log: (l) => lines.push(l) });
  live.after = torch.memory();
});

test("the experiment leaves no tensor behind: its runs, teachers, analyses and accuracy pass free what they make", () => {
  assert.deepEqual(live.after, live.before);
});

test("all four steps write their files, with one teacher per seed", () => {
  const T2 = teacherLayout(config.outputDir, "-s2", config);
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
  // Accuracy is measured after training, on the same questions for every run the comparison uses.
  const accuracy = JSON.parse(fs.readFileSync(path.join(L.training, "accuracy_svd-s2.json"), "utf8"));
  assert.equal(accuracy.total, 2);
  assert.equal(accuracy.items.length, 2);
  const comparison = JSON.parse(fs.readFileSync(L.comparisonJson, "utf8"));
  assert.equal(comparison.arms[1].mcnemar.length, 2, "svd vs random on the same questions, seed by seed");
  const html = fs.readFileSync(L.html, "utf8");
  assert.match(html, /data:image\/png;base64,/);
  assert.match(html, /Training and held-out loss of every arm/);
  assert.match(html, /<div data-spec="chart-1">/);
  assert.doesNotMatch(html, /(src|href)="https?:/);
  assert.ok(lines.some((l) => l.startsWith("step 3:")));
});

test("with concurrentArms the runs of steps 1 and 3 train together, into the same files with the losses and adapters they get alone", async (t) => {
  const together: ExperimentConfig = { ...config, outputDir: path.join(dir, "together"), concurrentArms: 3 };
  const T = experimentLayout(together);
  const notes: string[] = [];
  await runExperiment(together, [1, 2, 3, 4], { log: (l) => notes.push(l) });
  assert.deepEqual(
    notes.filter((l) => l.startsWith("  training ")).map((l) => l.replace(/ over .*/, "")),
    ["  training random, random-s2 together", "  training svd, svd-s2, pissa together", "  training pissa-s2"],
  );
  assert.ok(([1, 2, 3, 4] as const).every((s) => stepState(together, s).done));
  assert.deepEqual(fs.readdirSync(T.training).sort(), fs.readdirSync(L.training).sort());
  for (const name of ["random", "random-s2", "svd", "svd-s2", "pissa", "pissa-s2"]) {
    const files = (M: typeof L) => ({ log: M.log(name), adapter: path.join(M.adapter(name), "adapter_model.safetensors") });
    const c = compareRunFiles(files(L), files(T));
    t.diagnostic(
      `${name}: losses ${c.lossesEqual ? "equal" : `within ${c.lossRel.toExponential(1)}`}, adapter ${c.adapterEqual ? "equal" : `within ${c.adapterRel.toExponential(1)}`}`,
    );
    assert.deepEqual(c.rows, [c.rows[0], c.rows[0]], `${name}: logs of different lengths`);
    assert.ok(c.lossRel <= LOSS, `${name}: losses differ by ${c.lossRel} (relative)`);
    assert.ok(c.adapterRel <= ADAPTER, `${name}: adapters differ by ${c.adapterRel} (relative Frobenius)`);
    // The same summaries but for paths in the experiment's folder (svd's factors).
    const [alone, shared] = [L, T].map((M) =>
      JSON.parse(fs.readFileSync(M.summary(name), "utf8").replaceAll(together.outputDir, config.outputDir)),
    );
    assert.deepEqual(Object.keys(shared), Object.keys(alone));
    assert.deepEqual(shared.identity, alone.identity, `${name}: recorded with another identity`);
  }
});

test("done steps are skipped; a step made with other settings is refused, and force redoes it", async () => {
  lines = [];
  const before = fs.statSync(L.log("random")).mtimeMs;
  await runExperiment(config, [1, 2], { log: (l) => lines.push(l) });
  assert.equal(lines.filter((l) => l.includes("skipped")).length, 2);
  assert.equal(fs.statSync(L.log("random")).mtimeMs, before);

  const changed = { ...config, noiseScale: 0.2 };
  assert.deepEqual(stepState(changed, 1), { done: true });
  assert.match((stepState(changed, 2) as { why: string }).why, /the teacher of random was made with noiseScale 0\.1 \(now 0\.2\)/);
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

test("a step that stopped part-way keeps the runs it finished and makes only the rest", async () => {
  const kept = fs.statSync(L.log("random")).mtimeMs;
  // As if the step had stopped while training random-s2 (none of its files written yet).
  for (const sub of ["", "tensorboard", "plots"])
    for (const f of fs.readdirSync(path.join(L.training, sub)))
      if (/(^|_)random-s2(\.\w+)?$/.test(f)) fs.rmSync(path.join(L.training, sub, f), { recursive: true });
  assert.match((stepState(config, 1) as { why: string }).why, /random-s2 has not run/);
  lines = [];
  await runExperiment(config, [1], { log: (l) => lines.push(l) });
  assert.ok(lines.includes("  random: done with these settings, kept"), lines.join("\n"));
  assert.ok(lines.some((l) => l.startsWith("  random-s2: ") && l.includes(" steps, ")));
  assert.equal(fs.statSync(L.log("random")).mtimeMs, kept);
  assert.equal(stepState(config, 1).done, true);
});

test("accuracy leaves out a question whose prompt cannot fit maxLength, and a record so made counts as done", async () => {
  const out = path.join(dir, "accuracy");
  fs.mkdirSync(out);
  const questions = path.join(dir, "questions.json");
  const two = JSON.parse(fs.readFileSync(config.accuracyData!, "utf8")).slice(0, 2);
  fs.writeFileSync(questions, JSON.stringify([...two, { ...two[0], question: "long ".repeat(50_000) }]));
  const pass = { ...config, questions, samples: 3 };
  const [r] = await measureAccuracy(out, [{ name: "random", adapterDir: L.adapter("random") }], pass);
  assert.equal(r.total, 2);
  assert.equal(r.leftOut, 1);
  const written = fs.statSync(path.join(out, "accuracy_random.json")).mtimeMs;
  await measureAccuracy(out, [{ name: "random", adapterDir: L.adapter("random") }], pass);
  assert.equal(fs.statSync(path.join(out, "accuracy_random.json")).mtimeMs, written, "not measured again");
});

test("a step that needs an earlier one says which", async () => {
  const empty = { ...config, outputDir: path.join(dir, "empty") };
  await assert.rejects(runExperiment(empty, [3]), /step 3 needs .*svd_results\/svd_factors_rank16 for svd: run step 2 first/);
  await assert.rejects(runExperiment(empty, [2]), /step 2 needs the adapter of random \(.*final_model_random\): run step 1 first/);
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

test("the controls: random-continued, svd-xfit and svd-full run, each with its dependencies counted", async () => {
  const c: ExperimentConfig = {
    ...config,
    outputDir: path.join(dir, "controls"),
    seeds: 1,
    batchSize: 2,
    accuracySamples: 0,
    arms: ["random-continued", "svd-xfit", "svd-full"],
  };
  await runExperiment(c, [1, 2, 3, 4]);
  const L = experimentLayout(c);
  const summary = (run: string) => JSON.parse(fs.readFileSync(L.summary(run), "utf8"));
  // random-continued starts from the random run's own adapter; svd-xfit from the half-data run's teacher.
  assert.equal(summary("random-continued").settings.svdFactors, L.adapter("random"));
  assert.deepEqual(summary("random-continued").experiment.dependsOn, ["random"]);
  assert.equal(summary("random-half").settings.trainData, path.join(c.outputDir, "data", "train_half.json"));
  assert.equal(JSON.parse(fs.readFileSync(path.join(c.outputDir, "data", "train_half.json"), "utf8")).length, 2);
  assert.equal(summary("svd-xfit").settings.svdFactors, teacherLayout(c.outputDir, "-xfit", c).factors);
  assert.deepEqual(summary("svd-xfit").experiment.dependsOn, ["random-half"]);
  const full = summary("svd-full").experiment.external;
  assert.equal(full[0].what, "full fine-tune (full_finetune)");
  assert.ok(full[0].tokens > 0 && full[0].seconds > 0);
  const comparison = JSON.parse(fs.readFileSync(L.comparisonJson, "utf8"));
  assert.deepEqual(
    comparison.arms.map((a: { arm: string }) => a.arm),
    ["random", "svd", "random-continued", "svd-full", "svd-xfit"],
    "the half-data run is a teacher's source, not an arm",
  );
  assert.equal(summary("random-half").experiment.sourceOnly, true);
  const tokens = (run: string) => comparison.runs.find((r: { name: string }) => r.name === run).values.totalTokens;
  assert.equal(tokens("random-continued"), 2 * tokens("random"), "its own run and the random run it continues");
});

test("a learning-rate grid: every arm at every rate, named by rate, tuned on the validation set", async () => {
  const c: ExperimentConfig = {
    ...config,
    trainData: dataSubset(EMBEDDED_TRAIN, 4, dir, "train4.json"),
    outputDir: path.join(dir, "grid"),
    seeds: 1,
    batchSize: 2,
    accuracySamples: 0,
    arms: [],
    lrGrid: [1e-4, 1e-3],
  };
  await runExperiment(c, [1, 2, 3, 4]);
  const L = experimentLayout(c);
  for (const run of ["random-lr1e-4", "random-lr1e-3", "svd-lr1e-4", "svd-lr1e-3"]) assert.ok(fs.existsSync(L.summary(run)), run);
  const svd = JSON.parse(fs.readFileSync(L.summary("svd-lr1e-3"), "utf8"));
  assert.equal(svd.settings.learningRate, 1e-3);
  assert.equal(svd.settings.validationFraction, 0.5);
  assert.equal(svd.settings.svdFactors, teacherLayout(c.outputDir, "-lr1e-3", c).factors, "the teacher of the random run at the same rate");
  assert.equal(svd.result.evalLosses[0].validationLoss > 0, true);
  const comparison = JSON.parse(fs.readFileSync(L.comparisonJson, "utf8"));
  for (const arm of comparison.arms) {
    assert.equal(arm.learningRates.length, 2);
    assert.equal(arm.rateAtEdge, true, "two rates: the best is always at an edge");
  }
  assert.match(comparison.arms[1].verdict, /verdict withheld/);
  // The report shows the teacher of the first rate's first seed.
  assert.equal(L.svd, teacherLayout(c.outputDir, "-lr1e-4", c).svd);
  const html = fs.readFileSync(L.html, "utf8");
  assert.match(html, /Teacher synthesis \(step 2a\)/);
  assert.match(html, /SVD of the teacher at rank \d+ \(step 2b\)/);
});

test("arms: any init but random and svd (trained anyway), pissa-niter-N with its N, and all for every one", () => {
  assert.deepEqual(readExperimentFile("arms: [all]\n", "exp.yaml").arms, INIT_ARMS);
  assert.ok(INIT_ARMS.includes("eva") && INIT_ARMS.includes("pissa-niter-4") && !INIT_ARMS.includes("svd"));
  assert.deepEqual(readExperimentFile("arms: pissa-niter-8,eva,eva\n", "exp.yaml").arms, ["pissa-niter-8", "eva"]);
  assert.deepEqual(readExperimentFile("arms: all,svd-xfit\n", "exp.yaml").arms, [...INIT_ARMS, "svd-xfit"]);
  assert.deepEqual(readExperimentFile("arms: none\n", "exp.yaml").arms, []);
  assert.throws(
    () => readExperimentFile("arms: [random]\n", "exp.yaml"),
    /arms must be none or a comma-separated list of all, random-continued, svd-full, svd-xfit, gaussian, pissa/,
  );
  assert.throws(() => readExperimentFile("arms: [pissa-niter-0]\n", "exp.yaml"), /pissa-niter-N: N from 1 to 100/);
  assert.equal(plan({ ...config, arms: ["corda-kpm"] }, "corda-kpm", config.learningRate, 1).settings.init, "corda-kpm");
});
