// The LoRA training run (SPEC steps 1 and 3): data → tokens → batches → AdamW steps, with the
// CSV log, eval loss per epoch, a progress bar, and the adapter saved in PEFT format.
import fs from "node:fs";
import path from "node:path";
import { loadDataset } from "../data/dataset.js";
import { QWEN25_MATH_SYSTEM_PROMPT, formatSamples } from "../data/format.js";
import type { Encoded, Sample } from "../data/types.js";
import { type LoraWeights, loadAdapter, saveAdapter } from "../hf/peft.js";
import { type HfTokenizer, loadTokenizer } from "../hf/tokenizer.js";
import { loadCausalLM } from "../model/loader.js";
import {
  type LoRA,
  type LoraInit,
  type LoraSettings,
  addLora,
  adapterConfigFor,
  loadLora,
  loraParameters,
  loraWeights,
  pissaToLora,
  setLoraTraining,
} from "../model/lora.js";
import type { CausalLM } from "../model/qwen2.js";
import * as torch from "../torch/index.js";
import { writeFileAtomic } from "../util/atomic.js";
import { epochOrder } from "./batches.js";
import { checkpointDir, hasCheckpoint, loadCheckpoint, saveCheckpoint } from "./checkpoint.js";
import type { CheckpointPolicy } from "./backprop.js";
import { TrainingLogWriter, trainingLogPath } from "./log.js";
import { AdamW } from "./optim.js";
import { evaluateAccuracy, evaluateLoss } from "./evaluate.js";
import { TrainingProgress } from "./progress.js";
import { type DataParallel, broadcastFromMain, joinProcessGroup, leaveProcessGroup, sumNumbers } from "./data-parallel.js";
import { optimizerStep, rankMicroBatch } from "./step.js";
import { type ScheduleKind, lrAt } from "./schedule.js";

export type InitKind = LoraInit | "svd";
export type GradientCheckpointing = "auto" | "on" | "off";
export const GRADIENT_CHECKPOINTING: readonly GradientCheckpointing[] = ["auto", "on", "off"];

export interface TrainConfig {
  baseModel: string;
  trainData: string;
  evalData?: string;
  outputDir: string;
  init: InitKind;
  /** A PEFT adapter whose factors start the run (init "svd"). */
  svdFactors?: string;
  lora: LoraSettings;
  epochs: number;
  batchSize: number;
  learningRate: number;
  gradientAccumulationSteps: number;
  warmupRatio: number;
  scheduler: ScheduleKind;
  weightDecay: number;
  maxGradNorm: number;
  maxLength: number;
  seed: number;
  device: string;
  dtype?: torch.DType;
  /** One row per batch, no padding, attention kept inside each sample; default on for CUDA. */
  packing?: boolean;
  /** Recompute layers during backward: "auto" only where the memory budget needs it (CUDA). */
  gradientCheckpointing?: GradientCheckpointing;
  /** GPU memory budget for "auto" checkpointing, GiB; default 90 % of the card. */
  maxMemoryGib?: number;
  /** System prompt for samples without one; null leaves it to the chat template. */
  systemPrompt: string | null;
  quiet?: boolean;
  /** Shown before the progress bar. */
  label?: string;
  /** Names the outputs (final_model_<name>/, training_log_<name>.csv); default the init. */
  runName?: string;
  /** Use only the first n eval samples for the per-epoch eval loss (all when unset). */
  evalLimit?: number;
  /** Save a checkpoint every n optimizer steps (besides each epoch's end); 0 = epoch ends only. */
  saveSteps?: number;
  /** Continue from this run's checkpoint when there is one. */
  resume?: boolean;
  /** Skip (count, log as nan) a step whose loss or gradient is not finite, instead of stopping. */
  skipNonfinite?: boolean;
  /** After training, answer this many eval questions by greedy decoding and check them (0 = skip). */
  accuracySamples?: number;
  maxNewTokens?: number;
}

export const TRAIN_DEFAULTS = {
  init: "random" as InitKind,
  epochs: 5,
  batchSize: 4,
  learningRate: 2e-4,
  gradientAccumulationSteps: 1,
  warmupRatio: 0,
  scheduler: "linear" as ScheduleKind,
  weightDecay: 0,
  maxGradNorm: 1.0,
  maxLength: 1024,
  seed: 42,
  device: "cpu",
  gradientCheckpointing: "auto" as GradientCheckpointing,
  systemPrompt: QWEN25_MATH_SYSTEM_PROMPT as string | null,
  lora: { rank: 16, alpha: 16, dropout: 0, rslora: false, targets: ["q_proj", "v_proj"] } as LoraSettings,
};

export interface TrainResult {
  init: InitKind;
  runName: string;
  seed: number;
  adapterDir: string;
  logPath: string;
  steps: number;
  tokens: number;
  seconds: number;
  initialLoss: number;
  finalLoss: number;
  /** Mean training loss of each epoch. */
  epochLosses: number[];
  evalLosses: { step: number; epoch: number; loss: number }[];
  truncated: number;
  /** Samples dropped because truncation left them no answer token. */
  dropped: number;
  samples: number;
  trainableParameters: number;
  /** Exact-answer accuracy on the first eval questions after training, when asked for. */
  accuracy: { correct: number; total: number; seconds: number } | null;
  /** Steps skipped for a non-finite loss or gradient (--skip-nonfinite). */
  skippedSteps: number;
  /** The step the run resumed from, or null. */
  resumedFrom: number | null;
}

/** Raised when Ctrl-C stopped a run after saving a checkpoint. */
export class InterruptedError extends Error {}

/** The settings a resumed run must share with the checkpoint it starts from. */
function fingerprint(cfg: TrainConfig, dp: DataParallel): Record<string, unknown> {
  const {
    baseModel,
    trainData,
    init,
    svdFactors,
    lora,
    epochs,
    batchSize,
    learningRate,
    gradientAccumulationSteps,
    warmupRatio,
    scheduler,
    weightDecay,
    maxGradNorm,
    maxLength,
    seed,
    systemPrompt,
  } = cfg;
  const ranks = dp.worldSize > 1 ? { ranks: dp.worldSize } : {}; // the global batch depends on it
  return {
    baseModel,
    trainData,
    init,
    svdFactors,
    lora,
    epochs,
    batchSize,
    learningRate,
    gradientAccumulationSteps,
    warmupRatio,
    scheduler,
    weightDecay,
    maxGradNorm,
    maxLength,
    seed,
    packing: usesPacking(cfg),
    systemPrompt,
    ...ranks,
  };
}

/** Everything a run needs in memory: the model with LoRA attached and the tokenized data. */
export interface Prepared {
  model: CausalLM;
  tokenizer: HfTokenizer;
  loras: Map<string, LoRA>;
  train: Encoded[];
  eval: Encoded[];
  truncated: number;
  /** Training samples left with no answer token after truncation, and so not trained on. */
  dropped: number;
  evalSamples: Sample[];
  /** PiSSA's starting factors, needed to save a plain LoRA for the original base. */
  pissaInitial?: LoraWeights;
}

function encode(file: string, tokenizer: HfTokenizer, cfg: TrainConfig): { encoded: Encoded[]; truncated: number; dropped: number } {
  const { encoded, stats } = formatSamples(loadDataset(file), tokenizer, {
    systemPrompt: cfg.systemPrompt ?? undefined,
    maxLength: cfg.maxLength,
  });
  if (encoded.length === 0)
    throw new Error(`${file}: no sample has answer tokens left after formatting (is --max-length ${cfg.maxLength} too small?)`);
  return { encoded, truncated: stats.truncated, dropped: stats.droppedEmpty };
}

export function defaultDtype(device: string): torch.DType {
  return device.startsWith("cuda") ? "bfloat16" : "float32";
}

export const usesPacking = (cfg: Pick<TrainConfig, "packing" | "device">): boolean => cfg.packing ?? cfg.device.startsWith("cuda");

/** The layers to recompute in backward, from --gradient-checkpointing and --max-memory. */
export function checkpointPolicy(cfg: Pick<TrainConfig, "gradientCheckpointing" | "maxMemoryGib" | "device">): CheckpointPolicy {
  const mode = cfg.gradientCheckpointing ?? "auto";
  if (mode === "on") return "all";
  if (mode === "off" || !cfg.device.startsWith("cuda")) return "off";
  const index = Number(cfg.device.split(":")[1] ?? 0);
  const card = torch.cuda.devices()[index];
  if (!card) throw new Error(`--device ${cfg.device}: no such GPU (${torch.cuda.deviceCount()} found)`);
  const budgetGib = cfg.maxMemoryGib ?? (0.9 * card.totalMemory) / 2 ** 30;
  return { budgetBytes: budgetGib * 2 ** 30 };
}

export async function prepare(cfg: TrainConfig): Promise<Prepared> {
  const tokenizer = await loadTokenizer(cfg.baseModel);
  const train = encode(cfg.trainData, tokenizer, cfg);
  const evalSamples = cfg.evalData ? loadDataset(cfg.evalData) : [];
  const evalSet = cfg.evalData ? encode(cfg.evalData, tokenizer, cfg).encoded.slice(0, cfg.evalLimit) : [];
  torch.manualSeed(cfg.seed);
  const model = loadCausalLM(cfg.baseModel, { dtype: cfg.dtype ?? defaultDtype(cfg.device), device: cfg.device });
  let loras: Map<string, LoRA>;
  if (cfg.init === "svd") {
    if (!cfg.svdFactors) throw new Error("--init svd needs --svd-factors DIR (the svd_factors_rank{r}/ adapter written by `svdlora svd`)");
    const { config, weights } = loadAdapter(cfg.svdFactors);
    if (config.r !== cfg.lora.rank)
      throw new Error(`--svd-factors ${cfg.svdFactors} has rank ${config.r} but --lora-rank is ${cfg.lora.rank}: make them equal`);
    loras = loadLora(model, { ...config, lora_dropout: cfg.lora.dropout ?? 0 }, weights);
    torch.dispose([...weights.values()]);
  } else {
    loras = addLora(model, cfg.lora, cfg.init);
  }
  const pissaInitial = cfg.init === "pissa" ? loraWeights(loras) : undefined;
  return {
    model,
    tokenizer,
    loras,
    train: train.encoded,
    eval: evalSet,
    evalSamples,
    truncated: train.truncated,
    dropped: train.dropped,
    pissaInitial,
  };
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

function validate(cfg: TrainConfig): void {
  const positiveInt = (name: string, v: number) => {
    if (!Number.isInteger(v) || v < 1) throw new Error(`${name} must be a positive integer, got ${v}`);
  };
  positiveInt("--epochs", cfg.epochs);
  positiveInt("--batch-size", cfg.batchSize);
  positiveInt("--gradient-accumulation-steps", cfg.gradientAccumulationSteps);
  if (!(cfg.learningRate > 0)) throw new Error(`--learning-rate must be > 0, got ${cfg.learningRate}`);
  if (cfg.maxMemoryGib !== undefined && !(cfg.maxMemoryGib > 0)) throw new Error(`--max-memory must be > 0 GiB, got ${cfg.maxMemoryGib}`);
  if (!(cfg.warmupRatio >= 0 && cfg.warmupRatio < 1)) throw new Error(`--warmup-ratio must be in [0, 1), got ${cfg.warmupRatio}`);
  for (const [flag, file] of [
    ["--train-data", cfg.trainData],
    ["--eval-data", cfg.evalData],
    ["--base-model", cfg.baseModel],
  ] as const)
    if (file !== undefined && !fs.existsSync(file)) throw new Error(`${flag} ${file}: no such file or directory`);
}

export async function train(cfg: TrainConfig): Promise<TrainResult> {
  validate(cfg);
  // Several processes (svdlora train --gpus N, or torchrun-style variables): join them first.
  const dp = joinProcessGroup(cfg.device);
  try {
    return await trainOn({ ...cfg, device: dp.device, quiet: cfg.quiet || !dp.isMain }, dp);
  } finally {
    leaveProcessGroup(dp);
  }
}

async function trainOn(cfg: TrainConfig, dp: DataParallel): Promise<TrainResult> {
  const p = await prepare(cfg);
  const { model, loras, tokenizer } = p;
  const padId = tokenizer.pad?.id ?? tokenizer.eos?.id ?? 0;
  const params = loraParameters(loras);
  const optimizer = new AdamW(params, { lr: cfg.learningRate, weightDecay: cfg.weightDecay });
  broadcastFromMain(params, dp);
  // Each micro-step takes batchSize samples per rank: a global batch of batchSize × ranks.
  const globalBatch = cfg.batchSize * dp.worldSize;
  const microPerEpoch = Math.ceil(p.train.length / globalBatch);
  const stepsPerEpoch = Math.ceil(microPerEpoch / cfg.gradientAccumulationSteps);
  const totalSteps = stepsPerEpoch * cfg.epochs;
  const schedule = { base: cfg.learningRate, warmupSteps: Math.ceil(cfg.warmupRatio * totalSteps), totalSteps, kind: cfg.scheduler };
  const batchOpts = { padId, device: cfg.device, packing: usesPacking(cfg) };
  const checkpoint = checkpointPolicy(cfg);

  fs.mkdirSync(cfg.outputDir, { recursive: true });
  const runName = cfg.runName ?? cfg.init;
  const logPath = trainingLogPath(cfg.outputDir, runName);
  const ckpt = checkpointDir(cfg.outputDir, runName);
  const print = fingerprint(cfg, dp);
  const resumed = cfg.resume && hasCheckpoint(ckpt) ? loadCheckpoint(ckpt, loras, optimizer, print) : null;
  if (cfg.resume && !resumed && !cfg.quiet) console.error(`svdlora: no checkpoint in ${ckpt}, starting from step 0`);
  // Only rank 0 logs, evaluates and writes.
  const log = dp.isMain ? new TrainingLogWriter(logPath, resumed ? { resumeAfterStep: resumed.step } : {}) : null;
  let step = resumed?.step ?? 0;
  let tokens = resumed?.tokens ?? 0;
  let skipped = resumed?.skipped ?? 0;
  const losses: number[] = resumed?.losses ?? [];
  const evalLosses: TrainResult["evalLosses"] = resumed?.evalLosses ?? [];
  const progress = new TrainingProgress({
    totalSteps,
    totalEpochs: cfg.epochs,
    label: cfg.label ?? `train ${runName}`,
    quiet: cfg.quiet,
    startStep: step,
    startTokens: tokens,
  });
  const started = performance.now() - (resumed?.elapsedS ?? 0) * 1000;
  const elapsed = () => (performance.now() - started) / 1000;
  const runEval = (epoch: number) => {
    if (p.eval.length === 0 || !log) return;
    const loss = evaluateLoss(model, loras, p.eval, { ...batchOpts, batchSize: cfg.batchSize });
    evalLosses.push({ step, epoch, loss });
    log?.writeEval({ step, epoch, evalLoss: loss, tokens, elapsedS: elapsed() });
  };
  const save = () =>
    dp.isMain &&
    saveCheckpoint(ckpt, loras, optimizer, { step, tokens, elapsedS: elapsed(), losses, evalLosses, skipped, fingerprint: print });

  // Ctrl-C: the first one stops at the next step boundary with a checkpoint, a second one at once.
  let interrupted = false;
  const onSigint = () => {
    if (interrupted) process.exit(130);
    interrupted = true;
  };
  process.on("SIGINT", onSigint);
  try {
    if (!resumed) runEval(0);
    for (let epoch = Math.floor(step / stepsPerEpoch); epoch < cfg.epochs; epoch++) {
      const order = epochOrder(p.train.length, cfg.seed, epoch);
      for (let s = step - epoch * stepsPerEpoch; s < stepsPerEpoch; s++) {
        const first = s * cfg.gradientAccumulationSteps;
        const micro = Math.min(cfg.gradientAccumulationSteps, microPerEpoch - first);
        const lr = lrAt(step, schedule);
        const batches = Array.from({ length: micro }, (_, m) => {
          const at = (first + m) * globalBatch;
          return rankMicroBatch(
            order.slice(at, at + globalBatch).map((i) => p.train[i]),
            micro,
            dp,
            batchOpts,
          );
        });
        const r = optimizerStep(model, optimizer, batches, { checkpoint, maxGradNorm: cfg.maxGradNorm, lr, dataParallel: dp });
        const [stepLoss, gradNorm] = [r.loss, r.gradNorm];
        tokens += r.tokens;
        if (!r.updated) {
          if (!cfg.skipNonfinite) {
            const last = hasCheckpoint(ckpt)
              ? `the last good checkpoint is in ${ckpt} (continue with --resume)`
              : "no checkpoint was saved yet";
            throw new Error(
              `${Number.isFinite(stepLoss) ? "gradient norm" : "loss"} became ${Number.isFinite(stepLoss) ? gradNorm : stepLoss} at step ${step + 1}: lower --learning-rate (now ${cfg.learningRate}) or pass --skip-nonfinite; ${last}`,
            );
          }
          skipped++;
        }
        step++;
        losses.push(stepLoss);
        const epochNow = epoch + (s + 1) / stepsPerEpoch;
        log?.writeTrain({ step, epoch: epochNow, loss: stepLoss, lr, gradNorm, tokens, elapsedS: elapsed() });
        progress.update({ step, epoch: epochNow, loss: stepLoss, tokens, lr });
        const lastOfEpoch = s === stepsPerEpoch - 1;
        if (!lastOfEpoch && cfg.saveSteps && step % cfg.saveSteps === 0) save();
        await new Promise(setImmediate); // lets a pending Ctrl-C in
        if (dp.worldSize > 1) interrupted = sumNumbers([interrupted ? 1 : 0], dp)[0] > 0; // all ranks stop together
        if (interrupted) {
          if (!lastOfEpoch) save();
          else {
            runEval(epoch + 1);
            save();
          }
          throw new InterruptedError(
            `interrupted at step ${step}: checkpoint saved in ${ckpt}; continue with the same command and --resume`,
          );
        }
      }
      runEval(epoch + 1);
      save();
    }
  } finally {
    process.off("SIGINT", onSigint);
    progress.stop();
    log?.close();
  }

  const trainSeconds = elapsed();
  let accuracy: TrainResult["accuracy"] = null;
  if (cfg.accuracySamples && p.evalSamples.length > 0 && dp.isMain) {
    const t0 = performance.now();
    setLoraTraining(loras, false);
    const a = evaluateAccuracy(model, tokenizer, p.evalSamples.slice(0, cfg.accuracySamples), {
      systemPrompt: cfg.systemPrompt ?? undefined,
      maxNewTokens: cfg.maxNewTokens ?? 384,
    });
    accuracy = { correct: a.correct, total: a.total, seconds: (performance.now() - t0) / 1000 };
  }

  const adapterDir = path.join(cfg.outputDir, `final_model_${runName}`);
  if (!dp.isMain) {
    // The other ranks hold the same adapter; rank 0 writes it.
    optimizer.dispose();
    return { ...summaryOf(), adapterDir, accuracy };
  }
  let weights = loraWeights(loras);
  let settings = cfg.lora;
  if (p.pissaInitial) {
    // The PiSSA factors only make sense on the residual base: save the plain-LoRA equivalent.
    const converted = pissaToLora(weights, p.pissaInitial, cfg.lora);
    torch.dispose([...weights.values(), ...p.pissaInitial.values()]);
    ({ weights, settings } = converted);
  }
  saveAdapter(adapterDir, adapterConfigFor(settings, cfg.baseModel), weights);
  torch.dispose([...weights.values()]);
  const result: TrainResult = { ...summaryOf(), adapterDir, accuracy };
  writeFileAtomic(path.join(cfg.outputDir, `train_summary_${runName}.json`), `${JSON.stringify({ config: cfg, result }, null, 2)}\n`);
  optimizer.dispose();
  return result;

  function summaryOf(): Omit<TrainResult, "adapterDir" | "accuracy"> {
    return {
      init: cfg.init,
      runName,
      seed: cfg.seed,
      logPath,
      steps: step,
      tokens,
      seconds: trainSeconds,
      initialLoss: losses[0],
      skippedSteps: skipped,
      resumedFrom: resumed?.step ?? null,
      finalLoss: losses[losses.length - 1],
      epochLosses: Array.from({ length: cfg.epochs }, (_, e) => mean(losses.slice(e * stepsPerEpoch, (e + 1) * stepsPerEpoch))),
      evalLosses,
      truncated: p.truncated,
      dropped: p.dropped,
      samples: p.train.length,
      trainableParameters: params.reduce((n, t) => n + t.numel(), 0),
    };
  }
}
