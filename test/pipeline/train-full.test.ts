// `svdlora train-full` on the embedded tiny model with 8 samples: a loadable model directory
// that differs from the base and lowers the held-out loss; its real ΔW through svdStep; the
// real-vs-synthesized spectra chart and report section; the too-large refusal; the CLI path (on the
// small model of test/small-model.ts); the baseline (train-full and its SVD) leaves no tensor behind.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { before, test } from "node:test";
import { QWEN25_MATH_SYSTEM_PROMPT, formatSamples } from "../../src/data/format.js";
import { loadDataset } from "../../src/data/dataset.js";
import { loadTokenizer } from "../../src/hf/tokenizer.js";
import { loadCausalLM } from "../../src/model/loader.js";
import { EMBEDDED_EVAL, EMBEDDED_MODEL, EMBEDDED_TRAIN } from "../../src/paths.js";
import { experimentLayout } from "../../src/pipeline/experiment.js";
import { EXPERIMENT, type ExperimentConfig } from "../../src/pipeline/settings.js";
import { writeExperimentReport } from "../../src/pipeline/report.js";
import { svdStep } from "../../src/pipeline/svd.js";
import { drawSpectraComparison, fullFinetuneBaseline, fullFinetuneLayout, trainFullRun } from "../../src/pipeline/train-full.js";
import { energyAtRank, renderChart, spectraChart } from "../../src/report/index.js";
import * as torch from "../../src/torch/index.js";
import { evaluateLoss } from "../../src/train/evaluate.js";
import { readTrainingLog } from "../../src/train/log.js";
import { FULL_FINETUNE_BYTES_PER_PARAM, assertFullFinetuneFits, checkpointParameters } from "../../src/train/trainer.js";
import { defaults } from "../../src/util/settings.js";
import { PNG_SIGNATURE } from "../report/png.js";
import { dataSubset, runCli, settledMemory, tempDir } from "../helpers.js";
import { smallModel } from "../small-model.js";

const dir = tempDir("full");
const subset = (from: string, n: number, name: string) => dataSubset(from, n, dir, name);
const trainData = subset(EMBEDDED_TRAIN, 8, "train.json");
const evalData = subset(EMBEDDED_EVAL, 8, "eval.json");
// Samples cut at 128 tokens (every prompt fits): what is tested here does not need whole samples.
const maxLength = 128;
const config: ExperimentConfig = {
  ...(defaults(EXPERIMENT) as ExperimentConfig),
  trainData,
  evalData,
  outputDir: path.join(dir, "exp"),
  maxLength,
  epochs: 1,
  loraRank: 4,
  loraAlpha: 8,
  quiet: true,
};
const F = fullFinetuneLayout(config.outputDir, 4);
let baseline: Awaited<ReturnType<typeof fullFinetuneBaseline>>;
// The live tensors before the baseline, at each of its steps, and after it.
const live: { before?: torch.LiveTensors; steps: torch.LiveTensors[]; after?: torch.LiveTensors } = { steps: [] };

before(async () => {
  live.before = await settledMemory();
  baseline = await fullFinetuneBaseline(config, { learningRate: 1e-3, events: { step: () => void live.steps.push(torch.memory()) } });
  live.after = torch.memory();
});

test("the full fine-tune and the SVD of its real ΔW leave no tensor behind: the same live tensors after every step, none once done", () => {
  assert.equal(live.steps.length, baseline.train.steps);
  assert.ok(live.steps.length > 1);
  assert.deepEqual(
    live.steps,
    live.steps.map(() => live.steps[0]),
    "live tensors at each step",
  );
  assert.deepEqual(live.after, live.before, "live tensors before and after");
});

/** Token-weighted held-out loss of a model directory, computed here independently of train-full. */
async function heldOutLoss(modelDir: string): Promise<number> {
  const tokenizer = await loadTokenizer(modelDir);
  const { encoded } = formatSamples(loadDataset(evalData), tokenizer, { systemPrompt: QWEN25_MATH_SYSTEM_PROMPT, maxLength });
  const model = loadCausalLM(modelDir);
  try {
    return evaluateLoss(model, encoded, { batchSize: 4, padId: tokenizer.pad?.id ?? 0, device: "cpu" });
  } finally {
    torch.dispose([...model.namedWeights().values()]);
  }
}

test("the fine-tuned directory loads, differs from the base everywhere trained, and lowers the held-out loss", async () => {
  const t = baseline.train;
  assert.equal(t.modelDir, path.resolve(F.model));
  assert.equal(t.steps, 2); // 8 samples, batch 4, 1 epoch
  for (const f of [
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "training_log.csv",
    "summary.json",
    "svdlora.json",
  ])
    assert.ok(fs.existsSync(path.join(F.model, f)), `missing ${f}`);
  assert.deepEqual(
    fs.readdirSync(path.dirname(F.model)).filter((f) => f.startsWith(".")),
    [],
    "no staging folder or lock left",
  );

  const ft = loadCausalLM(F.model);
  const base = loadCausalLM(EMBEDDED_MODEL);
  try {
    const ftW = ft.namedWeights(),
      baseW = base.namedWeights();
    assert.deepEqual([...ftW.keys()].sort(), [...baseW.keys()].sort());
    const changed = [...baseW].filter(([name, w]) => torch.tidy(() => ftW.get(name)!.sub(w).abs().max().item()) > 0).map(([n]) => n);
    for (const name of [
      "model.layers.0.self_attn.q_proj.weight",
      "model.layers.3.mlp.down_proj.weight",
      "model.embed_tokens.weight",
      "lm_head.weight",
    ])
      assert.ok(changed.includes(name), `${name} did not change`);
    assert.ok(changed.length >= baseW.size - 2, `only ${changed.length} of ${baseW.size} tensors changed`);
  } finally {
    torch.dispose([...ft.namedWeights().values(), ...base.namedWeights().values()]);
  }

  const [before_, after_] = [await heldOutLoss(EMBEDDED_MODEL), await heldOutLoss(F.model)];
  assert.ok(after_ < before_ - 0.01, `held-out loss ${before_} → ${after_}`);
  assert.ok(
    Math.abs(t.evalLosses[0].loss - before_) < 1e-4 && Math.abs(t.evalLosses.at(-1)!.loss - after_) < 1e-4,
    "the run's held-out losses match an independent evaluation",
  );

  const summary = JSON.parse(fs.readFileSync(t.summaryPath, "utf8"));
  assert.equal(summary.result.steps, 2);
  assert.equal(summary.result.memory.estimatedBytes, checkpointParameters(EMBEDDED_MODEL) * FULL_FINETUNE_BYTES_PER_PARAM);
  const log = readTrainingLog(t.logPath);
  assert.deepEqual(
    log.train.map((r) => r.step),
    [1, 2],
  );
  assert.equal(log.eval.at(-1)!.evalLoss.toFixed(5), t.evalLosses.at(-1)!.loss.toFixed(5));
});

test("svdStep reads the real ΔW of the directory: factors, metrics, complete spectra", () => {
  const s = baseline.svd;
  assert.equal(s.summary.modules, 8); // q_proj and v_proj of 4 layers
  assert.ok(fs.existsSync(path.join(F.factors, "adapter_model.safetensors")));
  const analysis = JSON.parse(fs.readFileSync(F.analysis, "utf8"));
  const q = analysis.modules["model.layers.0.self_attn.q_proj"],
    v = analysis.modules["model.layers.0.self_attn.v_proj"];
  assert.equal(q.spectrum.length, 256);
  assert.equal(v.spectrum.length, 64);
  assert.ok(q.spectrum[0] > 0 && q.energyRatio > 0 && q.energyRatio < 1 && q.relativeError > 0);
  assert.ok(Math.abs(energyAtRank(q.spectrum, 4) - q.energyRatio) < 1e-6, "the chart's energy agrees with svdStep's");
  assert.equal(baseline.chart, null, "no synthesized teacher yet, so no chart");
});

test("spectraChart renders real vs synthesized spectra per module", async () => {
  const decay = (n: number, rate: number) => Array.from({ length: n }, (_, i) => Math.exp(-rate * i));
  const modules = ["layers.0.self_attn.q_proj", "layers.0.self_attn.v_proj", "layers.1.self_attn.q_proj"].map((name) => ({
    name,
    real: decay(64, 0.05),
    synthesized: [...decay(16, 0.3), 0, NaN],
  }));
  const chart = await renderChart(spectraChart({ modules, rank: 4 }));
  assert.ok(chart.png.subarray(0, 8).equals(PNG_SIGNATURE));
  assert.deepEqual(chart.warnings, []);
  for (const text of [
    "real fine-tune ΔW",
    "synthesized teacher ΔW",
    "layers.1.self_attn.q_proj",
    `energy at r: real ${energyAtRank(decay(64, 0.05), 4).toFixed(3)} · synth ${energyAtRank(decay(16, 0.3), 4).toFixed(3)}`,
  ])
    assert.ok(chart.svg.includes(`>${text}</text>`), `SVG lacks "${text}"`);
});

test("with a synthesized teacher the spectra chart is drawn and report.html gets the section", async () => {
  const L = experimentLayout(config);
  const withoutSection = await writeExperimentReport(
    { ...config, outputDir: path.join(dir, "bare") },
    experimentLayout({ ...config, outputDir: path.join(dir, "bare") }),
  );
  assert.doesNotMatch(fs.readFileSync(withoutSection, "utf8"), /Real fine-tune ΔW vs synthesized teacher/);

  // A stand-in teacher analysis in the real format: svdStep on the rank-4 factors of the real ΔW.
  await svdStep({ loraAdapter: F.factors, targetModules: [], rank: 4, alpha: 8, rslora: false, split: "seed", outputDir: L.svd });
  const png = await drawSpectraComparison(config.outputDir, 4, L.analysis);
  assert.equal(png, F.chart);
  assert.ok(fs.readFileSync(F.chart).subarray(0, 8).equals(PNG_SIGNATURE));

  const html = fs.readFileSync(await writeExperimentReport(config, L), "utf8");
  const section = html.slice(html.indexOf("Real fine-tune ΔW vs synthesized teacher"));
  assert.ok(section.length < html.length, "section heading present");
  assert.match(section, /held-out loss \d\.\d{4} → \d\.\d{4}/);
  assert.match(section, /mean energy ratio/);
  assert.match(section, /data:image\/png;base64,/);
});

test("a model too large for the memory budget is refused in one line that suggests LoRA", async () => {
  const params = checkpointParameters(EMBEDDED_MODEL);
  assert.equal(params, 3_567_360);
  const out = path.join(dir, "refused");
  await assert.rejects(
    trainFullRun({ trainData, outputDir: out, quiet: true }, { memoryBudget: params * FULL_FINETUNE_BYTES_PER_PARAM - 1 }),
    (e: Error) => {
      assert.match(e.message, /too large for a full fine-tune .*3,567,360 parameters × 16 bytes.*train a LoRA instead \(svdlora train\)/);
      assert.equal(e.message.split("\n").length, 1);
      return true;
    },
  );
  assert.equal(fs.existsSync(out), false, "nothing written");
  assert.doesNotThrow(() => assertFullFinetuneFits(params, params * FULL_FINETUNE_BYTES_PER_PARAM, "cpu", "m"));
  assert.throws(
    () => assertFullFinetuneFits(7.6e9, 32 * 2 ** 30, "cuda:0 (32 GB card)", "Qwen2.5-Math-7B"),
    /≈ 113\.2 GiB .* 32\.0 GiB is available/,
  );
});

test("the CLI: train-full writes a folder that `svdlora svd --finetuned-model` accepts, and refuses to replace it unasked", async () => {
  // The small model of test/small-model.ts (2 layers: q_proj and v_proj make 4 modules): the command line is what is tested here.
  const small = smallModel(dir);
  const out = path.join(dir, "cli-model");
  const t = await runCli(
    "train-full",
    "--base-model",
    small,
    "--train-data",
    trainData,
    "--eval-data",
    evalData,
    "--epochs",
    "1",
    "--max-length",
    String(maxLength),
    "--output-dir",
    out,
    "--quiet",
  );
  assert.equal(t.code, 0, t.stderr);
  assert.match(t.stdout, /2 steps on 8 samples/);
  assert.match(t.stdout, /held-out loss \d\.\d{4} → \d\.\d{4}/);
  const s = await runCli("svd", "--finetuned-model", out, "--base-model", small, "--rank", "4", "--output-dir", path.join(dir, "cli-svd"));
  assert.equal(s.code, 0, s.stderr);
  assert.match(s.stdout, /rank 4: mean relative error 0\.\d+, mean energy ratio 0\.\d+; \d\/4 modules/);
  const again = await runCli(
    "train-full",
    "--base-model",
    small,
    "--train-data",
    trainData,
    "--epochs",
    "1",
    "--output-dir",
    out,
    "--quiet",
  );
  assert.equal(again.code, 1);
  assert.match(again.stderr, /^svdlora: error: .*cli-model already holds a fine-tuned model: replace it with --overwrite/);
  const bad = await runCli("train-full", "--learning-rate", "0");
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /^svdlora: .*--learning-rate.*expected a number > 0/);
});
