// A leak-free teacher: a real full-parameter fine-tune (small models only) whose ΔW = W_ft − W_base
// feeds the SVD step, and a chart/report section setting its spectrum beside the synthesized one.
//
// Layout under an experiment directory:
//   full_finetune/model/                          the fine-tuned model (HF directory, float32),
//                                                 with training_log_full.csv and train_full_summary.json
//   full_finetune/svd_results/                    svdStep on ΔW (svd_analysis_rank{r}.json, factors, …)
//   full_finetune/spectra_real_vs_synthesized.png real vs synthesized spectra (when the teacher exists)
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { loadDataset } from "../data/dataset.js";
import { QWEN25_MATH_SYSTEM_PROMPT, formatSamples } from "../data/format.js";
import type { Encoded } from "../data/types.js";
import { SafetensorsCheckpoint } from "../hf/checkpoint.js";
import { targetNames } from "../hf/peft.js";
import { type HfTokenizer, loadTokenizer } from "../hf/tokenizer.js";
import { loadCausalLM } from "../model/loader.js";
import type { CausalLM } from "../model/qwen2.js";
import { copyTokenizerFiles, saveCausalLM } from "../model/save.js";
import { type ReportSection, saveChart, spectraChart } from "../report/index.js";
import * as torch from "../torch/index.js";
import { evaluateLoss } from "../train/evaluate.js";
import { trainFull } from "../train/full.js";
import { TrainingLogWriter } from "../train/log.js";
import type { ScheduleKind } from "../train/schedule.js";
import { replaceDirectoryAtomic, writeFileAtomic } from "../util/atomic.js";
import type { ExperimentConfig } from "./experiment.js";
import { layout, shortName } from "./layout.js";
import { type SvdOutputs, svdStep } from "./svd.js";

export interface TrainFullConfig {
  baseModel: string;
  trainData: string;
  evalData?: string;
  /** The model directory written (atomically), holding the log and summary too. */
  outputDir: string;
  epochs: number;
  batchSize: number;
  learningRate: number;
  weightDecay: number;
  warmupRatio: number;
  scheduler: ScheduleKind;
  maxGradNorm: number;
  maxLength: number;
  seed: number;
  device: string;
  systemPrompt: string | null;
  quiet?: boolean;
  /** Bytes the fine-tune may use; default: free RAM on cpu, free CUDA memory on cuda (tests inject one). */
  memoryBudget?: number;
}

export const TRAIN_FULL_DEFAULTS = {
  epochs: 5,
  batchSize: 4,
  learningRate: 1e-4,
  weightDecay: 0,
  warmupRatio: 0,
  scheduler: "linear" as ScheduleKind,
  maxGradNorm: 1.0,
  maxLength: 1024,
  seed: 42,
  device: "cpu",
  systemPrompt: QWEN25_MATH_SYSTEM_PROMPT as string | null,
};

/** fp32 weights + gradients + AdamW's two moments; activations come on top. */
export const FULL_FINETUNE_BYTES_PER_PARAM = 16;
export const FULL_LOG = "training_log_full.csv";
export const FULL_SUMMARY = "train_full_summary.json";
/** What `svdlora merge` copies too: a fine-tuned directory must tokenize like its base. */
export interface TrainFullResult {
  modelDir: string;
  logPath: string;
  summaryPath: string;
  parameters: number;
  samples: number;
  truncated: number;
  steps: number;
  tokens: number;
  seconds: number;
  firstLoss: number;
  finalLoss: number;
  evalLossBefore: number | null;
  evalLossAfter: number | null;
}

/** Parameters of a checkpoint from its safetensors headers, without loading any weight. */
export function checkpointParameters(dir: string): number {
  const ckpt = SafetensorsCheckpoint.open(dir);
  try {
    return ckpt.keys().reduce((n, k) => n + ckpt.entry(k).shape.reduce((a, b) => a * b, 1), 0);
  } finally {
    ckpt.close();
  }
}

/** Memory a full fine-tune may take on this device, and how to name it in a message. */
export function availableMemory(device: string): { bytes: number; where: string } {
  if (device.startsWith("cuda")) {
    const index = Number(device.split(":")[1] ?? 0);
    const d = torch.cuda.isAvailable() ? torch.cuda.devices()[index] : undefined;
    if (!d) throw new Error(`--device ${device}: no such CUDA device (${torch.cuda.isAvailable() ? torch.cuda.deviceCount() : 0} found)`);
    let reserved = 0;
    try {
      reserved = torch.cuda.memory(index).reserved;
    } catch {
      // libtorch's allocator answers "Invalid device argument" until its first CUDA allocation: nothing reserved yet
    }
    return { bytes: d.totalMemory - reserved, where: `${device} (${d.name})` };
  }
  // In a container os.freemem() sees the host; the cgroup limit (when there is one) is the real bound.
  const limit = process.constrainedMemory?.() ?? 0;
  const free = os.freemem();
  const bytes = limit > 0 && limit < free ? Math.max(0, limit - process.memoryUsage().rss) : free;
  return { bytes, where: "cpu (free RAM)" };
}

const gib = (bytes: number) => `${(bytes / 2 ** 30).toFixed(bytes < 2 ** 30 ? 3 : 1)} GiB`;

/** Throws one line (suggesting LoRA) when fp32 AdamW over every parameter cannot fit the budget. */
export function assertFullFinetuneFits(parameters: number, budget: number, where: string, model: string): void {
  const need = parameters * FULL_FINETUNE_BYTES_PER_PARAM;
  if (need <= budget) return;
  throw new Error(
    `${model} is too large for a full fine-tune on ${where}: ${parameters.toLocaleString("en-US")} parameters × ${FULL_FINETUNE_BYTES_PER_PARAM} bytes ` +
      `(fp32 weights, gradients, AdamW moments) ≈ ${gib(need)} before activations, but ${gib(budget)} is available; ` +
      `train a LoRA instead (svdlora train) or use a smaller model`,
  );
}

function encode(file: string, tokenizer: HfTokenizer, cfg: TrainFullConfig): { encoded: Encoded[]; truncated: number } {
  const { encoded, stats } = formatSamples(loadDataset(file), tokenizer, {
    systemPrompt: cfg.systemPrompt ?? undefined,
    maxLength: cfg.maxLength,
  });
  if (encoded.length === 0) throw new Error(`${file}: no sample has answer tokens left after formatting (is --max-length too small?)`);
  return { encoded, truncated: stats.truncated };
}

function validate(cfg: TrainFullConfig): void {
  for (const [flag, v] of [
    ["--epochs", cfg.epochs],
    ["--batch-size", cfg.batchSize],
  ] as const)
    if (!Number.isInteger(v) || v < 1) throw new Error(`${flag} must be a positive integer, got ${v}`);
  if (!(cfg.learningRate > 0)) throw new Error(`--learning-rate must be > 0, got ${cfg.learningRate}`);
  for (const [flag, file] of [
    ["--base-model", cfg.baseModel],
    ["--train-data", cfg.trainData],
    ["--eval-data", cfg.evalData],
  ] as const)
    if (file !== undefined && !fs.existsSync(file)) throw new Error(`${flag} ${file}: no such file or directory`);
}

/** Full-parameter fine-tune (fp32 AdamW); writes a complete HF model directory at cfg.outputDir. */
export async function trainFullStep(cfg: TrainFullConfig): Promise<TrainFullResult> {
  validate(cfg);
  const parameters = checkpointParameters(cfg.baseModel);
  const memory =
    cfg.memoryBudget !== undefined ? { bytes: cfg.memoryBudget, where: `${cfg.device} (given budget)` } : availableMemory(cfg.device);
  assertFullFinetuneFits(parameters, memory.bytes, memory.where, cfg.baseModel);

  const tokenizer = await loadTokenizer(cfg.baseModel);
  const train = encode(cfg.trainData, tokenizer, cfg);
  const evalSet = cfg.evalData ? encode(cfg.evalData, tokenizer, cfg).encoded : [];
  const padId = tokenizer.pad?.id ?? tokenizer.eos?.id ?? 0;
  torch.manualSeed(cfg.seed);
  // Always float32: AdamW on bf16 weights loses small updates, and ΔW is what we are after.
  const model = loadCausalLM(cfg.baseModel, { dtype: "float32", device: cfg.device });
  const evalLoss = (m: CausalLM) =>
    evalSet.length ? evaluateLoss(m, new Map(), evalSet, { batchSize: cfg.batchSize, padId, device: cfg.device }) : null;

  let result: TrainFullResult | undefined;
  try {
    replaceDirectoryAtomic(cfg.outputDir, (dir) => {
      const evalLossBefore = evalLoss(model);
      const logPath = path.join(dir, FULL_LOG);
      const run = trainFull(model, train.encoded, {
        epochs: cfg.epochs,
        batchSize: cfg.batchSize,
        learningRate: cfg.learningRate,
        weightDecay: cfg.weightDecay,
        warmupRatio: cfg.warmupRatio,
        scheduler: cfg.scheduler,
        maxGradNorm: cfg.maxGradNorm,
        seed: cfg.seed,
        padId,
        device: cfg.device,
        packing: false,
        logPath,
        label: "train-full",
        quiet: cfg.quiet,
      });
      const evalLossAfter = evalLoss(model);
      if (evalLossAfter !== null) {
        const log = new TrainingLogWriter(logPath, { resumeAfterStep: run.losses.length });
        log.writeEval({ step: run.losses.length, epoch: cfg.epochs, evalLoss: evalLossAfter, tokens: run.tokens, elapsedS: run.seconds });
        log.close();
      }
      saveCausalLM(model, dir, "float32");
      copyTokenizerFiles(cfg.baseModel, dir);
      const final = path.resolve(cfg.outputDir);
      result = {
        modelDir: final,
        logPath: path.join(final, FULL_LOG),
        summaryPath: path.join(final, FULL_SUMMARY),
        parameters,
        samples: train.encoded.length,
        truncated: train.truncated,
        steps: run.losses.length,
        tokens: run.tokens,
        seconds: run.seconds,
        firstLoss: run.losses[0],
        finalLoss: run.losses[run.losses.length - 1],
        evalLossBefore,
        evalLossAfter,
      };
      const summary = {
        made_by: "svdlora train-full",
        config: { ...cfg, memoryBudget: undefined },
        result,
        memory: { estimated_bytes: parameters * FULL_FINETUNE_BYTES_PER_PARAM, available_bytes: memory.bytes, where: memory.where },
        saved_dtype: "float32",
        libtorch: torch.buildInfo().torchVersion,
      };
      writeFileAtomic(path.join(dir, FULL_SUMMARY), `${JSON.stringify(summary, null, 2)}\n`);
    });
  } finally {
    torch.dispose([...model.namedWeights().values()]);
  }
  return result!;
}

// ---- the baseline inside an experiment -------------------------------------------------------

export function fullFinetuneLayout(experimentDir: string, rank: number) {
  const root = path.join(experimentDir, "full_finetune");
  const svd = path.join(root, "svd_results");
  return {
    root,
    model: path.join(root, "model"),
    summary: path.join(root, "model", FULL_SUMMARY),
    svd,
    factors: path.join(svd, `svd_factors_rank${rank}`),
    analysis: path.join(svd, `svd_analysis_rank${rank}.json`),
    svdTiming: path.join(svd, "svd_timing.json"),
    chart: path.join(root, "spectra_real_vs_synthesized.png"),
  };
}

interface Analysis {
  summary: {
    modules: number;
    relativeError: { mean: number };
    energyRatio: { mean: number };
    decayRate: { median: number };
    meetingBar: number;
  };
  modules: Record<string, { spectrum: number[] }>;
}
const readAnalysis = (file: string): Analysis | null =>
  fs.existsSync(file) ? (JSON.parse(fs.readFileSync(file, "utf8")) as Analysis) : null;

/**
 * Draws the real-vs-synthesized spectra chart from the two analysis files of an experiment;
 * returns its path, or null when either analysis is missing.
 */
export async function drawSpectraComparison(experimentDir: string, rank: number): Promise<string | null> {
  const F = fullFinetuneLayout(experimentDir, rank);
  const real = readAnalysis(F.analysis);
  const synth = readAnalysis(layout(experimentDir, { targetRank: 0, rank }).analysis);
  if (!real || !synth) return null;
  const synthByName = new Map(Object.entries(synth.modules).map(([k, m]) => [shortName(k), m.spectrum]));
  const modules = Object.entries(real.modules)
    .map(([k, m]) => ({ name: shortName(k), real: m.spectrum, synthesized: synthByName.get(shortName(k)) }))
    .filter((m): m is { name: string; real: number[]; synthesized: number[] } => m.synthesized !== undefined);
  if (modules.length === 0)
    throw new Error(
      `no module is in both ${F.analysis} and the synthesized teacher's analysis: were they made with the same target modules?`,
    );
  await saveChart(F.chart, spectraChart({ modules, rank }));
  return F.chart;
}

/**
 * The leak-free teacher baseline of an experiment: full fine-tune of the base model on the
 * experiment's data, SVD of its real ΔW at the LoRA rank, and the spectra chart.
 */
export async function fullFinetuneBaseline(
  c: ExperimentConfig,
  o: { learningRate?: number; memoryBudget?: number; log?: (line: string) => void } = {},
): Promise<{ train: TrainFullResult; svd: SvdOutputs; chart: string | null }> {
  const log = o.log ?? console.log;
  const F = fullFinetuneLayout(c.outputDir, c.lora.rank);
  const train = await trainFullStep({
    ...TRAIN_FULL_DEFAULTS,
    baseModel: c.baseModel,
    trainData: c.trainData,
    evalData: c.evalData ?? undefined,
    outputDir: F.model,
    epochs: c.epochs,
    batchSize: c.batchSize,
    learningRate: o.learningRate ?? TRAIN_FULL_DEFAULTS.learningRate,
    seed: c.seed,
    device: c.device,
    quiet: c.quiet,
    memoryBudget: o.memoryBudget,
  });
  const evals = train.evalLossBefore !== null ? `, eval loss ${train.evalLossBefore.toFixed(4)} → ${train.evalLossAfter!.toFixed(4)}` : "";
  log(`  full fine-tune: ${train.steps} steps, ${train.seconds.toFixed(1)} s${evals}`);
  const svd = await svdStep({
    finetunedModel: F.model,
    baseModel: c.baseModel,
    targetModules: targetNames(c.lora.targets),
    rank: c.lora.rank,
    alpha: c.lora.alpha,
    rslora: false,
    split: c.factorSplit,
    outputDir: F.svd,
  });
  log(
    `  real ΔW at rank ${c.lora.rank}: mean error ${svd.summary.relativeError.mean.toFixed(4)}, mean energy ${svd.summary.energyRatio.mean.toFixed(4)}`,
  );
  const chart = await drawSpectraComparison(c.outputDir, c.lora.rank);
  log(chart ? `  ${chart}` : "  no synthesized teacher analysis yet (step 2): spectra chart not drawn");
  return { train, svd, chart };
}

/** report.html's section for full_finetune/ results; null when the experiment has none. */
export function fullFinetuneReportSection(experimentDir: string, rank: number): ReportSection | null {
  const F = fullFinetuneLayout(experimentDir, rank);
  const real = readAnalysis(F.analysis);
  if (!real) return null;
  const synth = readAnalysis(layout(experimentDir, { targetRank: 0, rank }).analysis);
  const t = fs.existsSync(F.summary) ? (JSON.parse(fs.readFileSync(F.summary, "utf8")).result as TrainFullResult) : null;
  const row = (what: string, pick: (a: Analysis) => number) => [what, pick(real), synth ? pick(synth) : null];
  const text = [
    "ΔW = W_finetuned − W_base of a real full-parameter fine-tune on the same training data. Unlike the",
    "synthesized teacher it is not built from the random-init LoRA run, so an SVD init taken from it carries",
    "no information from the baseline arm (its own compute counts instead).",
    ...(t
      ? [
          `full fine-tune: ${t.parameters.toLocaleString("en-US")} parameters, ${t.steps} steps, ${t.tokens} tokens, ${t.seconds.toFixed(1)} s` +
            (t.evalLossBefore !== null ? `; held-out loss ${t.evalLossBefore.toFixed(4)} → ${t.evalLossAfter!.toFixed(4)}` : ""),
        ]
      : []),
  ].join("\n");
  return {
    heading: "Real fine-tune ΔW vs synthesized teacher",
    text,
    table: {
      columns: [`at rank r = ${rank}`, "real fine-tune ΔW", "synthesized teacher ΔW"],
      rows: [
        row("matrices", (a) => a.summary.modules),
        row("mean relative error", (a) => a.summary.relativeError.mean),
        row("mean energy ratio", (a) => a.summary.energyRatio.mean),
        row("median decay rate", (a) => a.summary.decayRate.median),
        row("error < 0.1 and energy > 0.9", (a) => a.summary.meetingBar),
      ],
    },
    images: fs.existsSync(F.chart)
      ? [
          {
            path: F.chart,
            caption:
              "Singular-value spectra, each divided by its largest value: real fine-tune ΔW (solid) vs synthesized teacher (dashed); r marked",
          },
        ]
      : [],
  };
}
