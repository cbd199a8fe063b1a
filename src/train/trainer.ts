// Training runs: a LoRA adapter (trainLora) or every weight (trainFull). Each loads the model and
// data, runs the one training loop (loop.ts) and writes its result into one folder:
//   adapter/ (a PEFT adapter) or the model's own files (a Hugging Face model folder),
//   the run log (training_log.csv, training_log.jsonl, tensorboard/: run-log.ts),
//   summary.json (the settings, the inputs' digests, the code version, the result).
// Where that folder's files end up (final_model_<run>/, training_log_<run>.csv, …) is the caller's
// choice (pipeline/train.ts). Only the main process of a data-parallel run writes.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { loadDataset } from "../data/dataset.js";
import { formatSamples } from "../data/format.js";
import { Random } from "../data/probability/random.js";
import type { Encoded, Sample } from "../data/types.js";
import { SafetensorsCheckpoint } from "../hf/checkpoint.js";
import { loadModelConfig } from "../hf/config.js";
import { type LoraAdapterConfig, type LoraWeights, loadAdapter, saveAdapter } from "../hf/peft.js";
import { type HfTokenizer, loadTokenizer } from "../hf/tokenizer.js";
import { loadCausalLM } from "../model/loader.js";
import { type InitMethod, initStatistic, moduleInit, parseInitMethod } from "../lowrank/inits/index.js";
import { type LoRA, type LoraSettings, addLora, adapterToSave, detachLora, loadLora, targetPaths, withMagnitudes } from "../model/lora.js";
import type { CausalLM } from "../model/qwen2.js";
import { copyTokenizerFiles, saveCausalLM } from "../model/save.js";
import { EMBEDDED_ACCURACY, EMBEDDED_EVAL, EMBEDDED_TRAIN } from "../paths.js";
import * as torch from "../torch/index.js";
import { writeFileAtomic } from "../util/atomic.js";
import { describeInput } from "../util/digest.js";
import { checkValues, defaults, identityOf } from "../util/settings.js";
import { codeVersion } from "../version.js";
import { type RecomputePolicy, countingGradients } from "./backprop.js";
import type { BatchOptions } from "./batches.js";
import { type Calibration, calibrate, calibrationBatches } from "./calibrate.js";
import { type DataParallel, singleProcess } from "./data-parallel.js";
import { evaluateAccuracy } from "./evaluate.js";
import type { TrainingEvents } from "./events.js";
import { type LoopOptions, type LoopResult, type LoopRun, epochLosses, trainLoop } from "./loop.js";
import { runLogFiles } from "./run-log.js";
import {
  type DTYPES,
  FULL_TRAINING,
  type InitKind,
  LORA_TRAINING,
  type LoraTrainingSettings,
  type TRAINING,
  type TrainingSettings,
} from "./settings.js";

/** The files a run folder holds (its log: runLogFiles). */
export const RUN_FILES = { adapter: "adapter", summary: "summary.json" } as const;

export interface RunOptions extends LoopOptions {
  /** The folder the run writes into (created); its checkpoints go to checkpointDir. */
  dir: string;
  checkpointDir: string;
  /** This process's place in a data-parallel run (default: a single process). */
  dataParallel?: DataParallel;
}

export interface TrainResult {
  kind: "lora" | "full";
  init: InitKind | "full";
  seed: number;
  steps: number;
  stepsPerEpoch: number;
  tokens: number;
  /** Training seconds; a run trained together with others (train/concurrent.ts) is charged its share of their time. */
  seconds: number;
  /** The first step's mean loss (before any update). */
  initialLoss: number;
  /** Mean training loss of the last epoch, weighted by each step's predicted tokens. */
  finalLoss: number;
  epochLosses: number[];
  evalLosses: LoopResult["evals"];
  samples: number;
  truncated: number;
  /** Samples left with no answer token after truncation, and so not trained on. */
  dropped: number;
  /** Samples longer than maxLength tokens could hold, left out before they were tokenized. */
  tooLong: number;
  trainableParameters: number;
  /** Exact-answer accuracy on the first held-out questions, with each question's outcome (questions too long for maxLength left out). */
  accuracy: { correct: number; total: number; tooLong?: number; seconds: number; items: boolean[] } | null;
  skippedSteps: number;
  resumedFrom: number | null;
  /** What making the LoRA init cost before training (null for a full fine-tune). */
  preparation: Preparation | null;
  /** How the saved adapter gives the trained model (null for a full fine-tune). */
  saved: SavedAdapter | null;
}

/**
 * The init's work before the first step: the calibration pass of the data-dependent inits (eva,
 * corda-*, lora-ga, lora-one) and the factors' computation. Not part of the run's `tokens` and
 * `seconds`; a comparison that counts what an arm cost adds these.
 */
export interface Preparation {
  /** Tokens the calibration pass put through the model (0 when the init reads only the weights). */
  tokens: number;
  /** Seconds from the loaded model to the adapter in place (this session's, when resumed). */
  seconds: number;
  /** Calibration batches used: forward passes (split statistics repeat the batches), and for EVA each step, also of a cycled batch read from its kept inputs. */
  batches: number;
}

export interface SavedAdapter {
  /**
   * "as trained", or "converted": the init rewrote the base weights (W' = W − s·B₀·A₀) and the
   * adapter was saved for the original base as a LoRA of rank 2r (model/lora.ts adapterToSave).
   */
  form: "as trained" | "converted";
  /** For a conversion: the largest ‖W − (W' + s·B₀·A₀)‖_F / ‖W‖_F over the modules, how far the saved adapter on the original base is from the trained model. */
  conversionError: number | null;
  note?: string;
}

// ---- settings ----------------------------------------------------------------------------------

export const defaultDtype = (device: string): (typeof DTYPES)[number] => (device.startsWith("cuda") ? "bfloat16" : "float32");

/**
 * Settings with defaults filled in and the values that follow from others resolved (held-out
 * data, packing, dtype); bad values, and settings that would have no effect together, are refused.
 */
export function resolveSettings<T extends TrainingSettings>(
  schema: typeof TRAINING | typeof LORA_TRAINING | typeof FULL_TRAINING,
  given: Partial<T>,
): T {
  checkValues(schema, given);
  const s = { ...defaults(schema), ...given } as T;
  // No held-out data given: the embedded eval set goes with the embedded train set; null means none.
  const embedded = path.resolve(s.trainData) === path.resolve(EMBEDDED_TRAIN);
  if (s.evalData === undefined && embedded) s.evalData = EMBEDDED_EVAL;
  if ("accuracySamples" in s && (s as Partial<LoraTrainingSettings>).accuracyData === undefined && embedded)
    (s as Partial<LoraTrainingSettings>).accuracyData = EMBEDDED_ACCURACY;
  s.packing ??= s.device.startsWith("cuda");
  s.evalBatchSize ??= s.device.startsWith("cuda") ? 64 : s.batchSize;
  s.dtype ??= defaultDtype(s.device);
  checkCombination(s);
  return s;
}

/** Questions decoded at once when generationBatchSize is not given: a GPU takes all of a typical accuracy set. */
export const generationBatch = (device: string) => (device.startsWith("cuda") ? 1024 : 32);

/** The layers to recompute in backward, from gradientCheckpointing and maxMemory. */
export function recomputePolicy(s: Pick<TrainingSettings, "gradientCheckpointing" | "maxMemory" | "device">): RecomputePolicy {
  const mode = s.gradientCheckpointing ?? "auto";
  if (mode === "on") return "all";
  if (mode === "off" || !s.device.startsWith("cuda")) return "none";
  return { budgetBytes: memoryBudget(s)! };
}

/** The GPU memory a run may use in bytes: `maxMemory`, default 90 % of the card; null on the CPU. */
export function memoryBudget(s: Pick<TrainingSettings, "maxMemory" | "device">): number | null {
  if (!s.device.startsWith("cuda")) return null;
  const index = torch.cuda.index(s.device);
  const card = torch.cuda.devices()[index];
  if (!card) throw new Error(`device ${s.device}: no such GPU (${torch.cuda.deviceCount()} found)`);
  return (s.maxMemory ?? (0.9 * card.totalMemory) / 2 ** 30) * 2 ** 30;
}

/** Refuses, in one line, settings that would have no effect in this combination. */
function checkCombination(s: TrainingSettings & { accuracySamples?: number }): void {
  const needsEval = (key: string, what: string) =>
    new Error(`\`${key}\` ${what}, but there is no held-out data: give \`evalData\`, or drop \`${key}\``);
  if (!s.evalData) {
    if (s.evalSteps > 0) throw needsEval("evalSteps", "sets how often the held-out loss is measured");
    if (s.evalLimit !== undefined) throw needsEval("evalLimit", "limits the held-out samples");
    if ((s.accuracySamples ?? 0) > 0) throw needsEval("accuracySamples", "answers held-out questions");
  }
  if (s.maxMemory !== undefined && !s.device.startsWith("cuda"))
    throw new Error(`\`maxMemory\` is a GPU memory budget: it has no effect with \`device\` ${s.device}; drop it`);
  if (s.maxMemory !== undefined && s.gradientCheckpointing !== "auto")
    throw new Error(
      `\`maxMemory\` decides how many layers \`gradientCheckpointing\` auto recomputes: with ${s.gradientCheckpointing} it has no effect; drop one of them`,
    );
  if (s.resume && s.overwrite)
    throw new Error("`resume` continues the run's checkpoint and `overwrite` starts the run afresh: give one of them");
}

function checkInputs(s: TrainingSettings & { svdFactors?: string }): void {
  for (const [what, p] of [
    ["baseModel", s.baseModel],
    ["trainData", s.trainData],
    ["evalData", s.evalData],
    ["svdFactors", s.svdFactors],
    ["accuracyData", (s as Partial<LoraTrainingSettings>).accuracyData],
  ] as const)
    if (p && !fs.existsSync(p)) throw new Error(`\`${what}\` ${p}: no such file or directory`);
}

// ---- data --------------------------------------------------------------------------------------

/** A run's data: encoded train samples and the held-out test and validation samples. */
export interface Data {
  train: Encoded[];
  /** Held-out test samples. */
  eval: Encoded[];
  /** Held-out validation samples: validationFraction of the held-out set, drawn by validationSplit. */
  validation: Encoded[];
  truncated: number;
  dropped: number;
  tooLong: number;
}

function encode(samples: Sample[], file: string, tokenizer: HfTokenizer, s: TrainingSettings) {
  const { encoded, stats } = formatSamples(samples, tokenizer, {
    systemPrompt: s.systemPrompt ?? undefined,
    maxLength: s.maxLength,
  });
  if (encoded.length === 0)
    throw new Error(`${file}: no sample has answer tokens left after formatting (is \`maxLength\` ${s.maxLength} too small?)`);
  return { encoded, truncated: stats.truncated, dropped: stats.droppedEmpty, tooLong: stats.droppedTooLong };
}

/** The data sets, read and checked before the model is loaded, then tokenized with the model's tokenizer. */
export async function loadData(s: TrainingSettings, events: TrainingEvents | undefined): Promise<{ tokenizer: HfTokenizer; data: Data }> {
  const trainSamples = loadDataset(s.trainData);
  const evalSamples = s.evalData ? loadDataset(s.evalData) : [];
  const tokenizer = await loadTokenizer(s.baseModel);
  loadModelConfig(s.baseModel); // a bad config.json is one line before any progress output
  events?.phase?.("loading", s.baseModel);
  const train = encode(trainSamples, s.trainData, tokenizer, s);
  const heldOut = s.evalData ? encode(evalSamples, s.evalData, tokenizer, s).encoded.slice(0, s.evalLimit) : [];
  const { validation, test } = validationSplit(heldOut, s.validationFraction);
  const data = {
    train: train.encoded,
    eval: test,
    validation,
    truncated: train.truncated,
    dropped: train.dropped,
    tooLong: train.tooLong,
  };
  return { tokenizer, data };
}

const VALIDATION_SEED = 20261201;

/**
 * The held-out set split into validation and test: a fraction of it drawn at random, with one fixed
 * seed so that every run of an experiment (whatever its own seed) is measured on the same test set.
 * Drawn, not the first samples: a held-out file ordered by source or difficulty would otherwise give a
 * validation set unlike the test set. Each part keeps the file's order.
 */
export function validationSplit<T>(heldOut: T[], fraction: number): { validation: T[]; test: T[] } {
  const n = Math.floor(fraction * heldOut.length);
  const chosen = new Set(new Random(VALIDATION_SEED).shuffle(heldOut.map((_, i) => i)).slice(0, n));
  return { validation: heldOut.filter((_, i) => chosen.has(i)), test: heldOut.filter((_, i) => !chosen.has(i)) };
}

export const padIdOf = (tokenizer: HfTokenizer) => tokenizer.pad?.id ?? tokenizer.eos?.id ?? 0;

// ---- the two kinds of run ----------------------------------------------------------------------

/** Trains a LoRA adapter; writes adapter/, training_log.csv and summary.json into o.dir. */
export async function trainLora(given: Partial<LoraTrainingSettings>, o: RunOptions): Promise<TrainResult> {
  const { s, lora } = loraRun(given);
  const recompute = recomputePolicy(s);
  const dp = o.dataParallel ?? singleProcess(s.device);
  const events = dp.isMain ? o.events : undefined;
  const questions = accuracyQuestions(s);
  const { tokenizer, data } = await loadData(s, events);
  torch.manualSeed(s.seed);
  const model = loadCausalLM(s.baseModel, { dtype: s.dtype, device: dp.device });
  try {
    const batch = { padId: padIdOf(tokenizer), device: dp.device, packing: s.packing ?? false, dtype: model.dtype };
    const { loras, preparation } = await attachLora(model, s, lora, { train: data.train, batch, recompute, signal: o.signal, events });
    const params = loraParams(loras);
    const loop = await trainLoop(
      {
        model,
        batch,
        recompute,
        dataParallel: dp,
        ...loopRun(LORA_TRAINING, s, dp, { params, data, dir: o.dir, checkpointDir: o.checkpointDir }),
      },
      { ...o, events, label: o.label ?? `train ${s.init}` },
    );
    return finishLoraRun(model, { s, lora, loras, questions, tokenizer, loop, data, preparation, dir: o.dir, dp, events });
  } finally {
    // Also when the run stopped (a non-finite loss, a signal): an experiment records a diverged run
    // and trains the next one in this process, which needs the memory back now.
    detachLora(model);
    torch.dispose([...model.namedWeights().values()]);
  }
}

// ---- the parts of a LoRA run, shared with concurrent runs (concurrent.ts) ----------------------

/** A LoRA run's settings, resolved and checked, and its adapter's settings. */
export function loraRun(given: Partial<LoraTrainingSettings>): { s: LoraTrainingSettings; lora: LoraSettings } {
  const s = resolveSettings<LoraTrainingSettings>(LORA_TRAINING, given);
  checkInputs(s);
  if (s.svdFactors !== undefined && s.init !== "svd")
    throw new Error(`SVD factors (${s.svdFactors}) are used only with \`init\` svd, not ${s.init}`);
  if (s.accuracySamples > 0 && !s.accuracyData)
    throw new Error("the accuracy check needs questions: give `accuracyData`, or set `accuracySamples` to 0");
  const lora: LoraSettings = {
    rank: s.loraRank,
    alpha: s.loraAlpha,
    dropout: s.loraDropout,
    rslora: s.rslora,
    targets: s.targetModules,
    dora: s.dora,
  };
  return { s, lora };
}

/** The questions the accuracy check after training asks (none when `accuracySamples` is 0). */
export const accuracyQuestions = (s: LoraTrainingSettings): Sample[] =>
  s.accuracySamples > 0 && s.accuracyData ? loadDataset(s.accuracyData).slice(0, s.accuracySamples) : [];

/** The trained tensors of a LoRA run by checkpoint key (B is frozen under MiCA; DoRA adds m). */
export function loraParams(loras: Map<string, LoRA>): Map<string, torch.Tensor> {
  const params = new Map<string, torch.Tensor>();
  for (const [module, l] of loras) {
    if (l.A.requiresGrad) params.set(`${module}.lora_A`, l.A);
    if (l.B.requiresGrad) params.set(`${module}.lora_B`, l.B);
    if (l.magnitude) params.set(`${module}.lora_magnitude_vector`, l.magnitude);
  }
  return params;
}

/**
 * After training: the accuracy on the questions (with `arm`'s adapter on a model carrying arms),
 * the result, and on the main process the adapter (for the original base: adapterToSave) and
 * summary.json in dir. The adapters stay the caller's.
 */
export function finishLoraRun(
  model: CausalLM,
  r: {
    s: LoraTrainingSettings;
    lora: LoraSettings;
    loras: Map<string, LoRA>;
    questions: Sample[];
    tokenizer: HfTokenizer;
    loop: LoopResult;
    data: Data;
    preparation: Preparation;
    dir: string;
    dp: DataParallel;
    events: TrainingEvents | undefined;
    arm?: number;
  },
): TrainResult {
  const { s, dp, events, loras } = r;
  let accuracy: TrainResult["accuracy"] = null;
  if (r.questions.length > 0 && dp.isMain) {
    events?.phase?.("generating", `${r.questions.length} answers`);
    const t0 = performance.now();
    const a = evaluateAccuracy(model, r.tokenizer, r.questions, {
      systemPrompt: s.systemPrompt ?? undefined,
      maxLength: s.maxLength,
      maxNewTokens: s.maxNewTokens,
      batchSize: s.generationBatchSize ?? generationBatch(s.device),
      arm: r.arm,
    });
    accuracy = {
      correct: a.correct,
      total: a.total,
      tooLong: a.tooLong,
      seconds: (performance.now() - t0) / 1000,
      items: a.outputs.map((x) => x.correct),
    };
  }
  const params = [...loraParams(loras).values()];
  const result = {
    ...resultOf("lora", s.init, s, r.loop, r.data, params, accuracy),
    preparation: r.preparation,
    saved: savedForm(s, loras),
  };
  if (dp.isMain) {
    events?.phase?.("saving", r.dir);
    const { config, weights } = adapterToSave(model, loras, r.lora, s.baseModel);
    saveAdapter(path.join(r.dir, RUN_FILES.adapter), config, weights);
    torch.dispose([...weights.values()].flatMap((f) => [f.A, f.B, f.magnitude]));
    writeSummary(r.dir, "lora", LORA_TRAINING, s, dp, result);
  }
  return result;
}

/** What the data-dependent inits' calibration pass needs from the run. */
export interface InitInputs {
  train: Encoded[];
  batch: BatchOptions;
  recompute: RecomputePolicy;
  signal?: AbortSignal;
  events?: TrainingEvents;
}

/** Puts the run's adapter on the model, by its init, and measures what that took (the calibration pass, the factors). */
export async function attachLora(
  model: CausalLM,
  s: LoraTrainingSettings,
  lora: LoraSettings,
  inputs: InitInputs,
): Promise<{ loras: Map<string, LoRA>; preparation: Preparation }> {
  const t0 = performance.now();
  const done = (loras: Map<string, LoRA>, calibration?: Calibration) => ({
    loras,
    preparation: { tokens: calibration?.tokens ?? 0, seconds: (performance.now() - t0) / 1000, batches: calibration?.batches ?? 0 },
  });
  if (s.init === "svd") return done(svdFactorsLora(model, s, lora, (config, weights) => loadLora(model, config, weights)));
  if (s.init === "random" || s.init === "gaussian") return done(addLora(model, lora, s.init));
  const method = parseInitMethod(s.init);
  inputs.events?.phase?.("preparing", initStatistic(method) === "weight" ? s.init : `${s.init}, calibration batches`);
  const calibration = await calibrationFor(model, s, lora, method, inputs);
  try {
    const init = moduleInit(method, { rank: s.loraRank, alpha: s.loraAlpha, rslora: s.rslora, seed: s.seed, ...calibration?.context });
    return done(addLora(model, lora, init), calibration ?? undefined);
  } finally {
    calibration?.dispose();
  }
}

/** The calibration pass of a data-dependent init over the run's first `calibrationBatches` batches; null for the others. */
async function calibrationFor(
  model: CausalLM,
  s: LoraTrainingSettings,
  lora: LoraSettings,
  method: InitMethod,
  inputs: InitInputs,
): Promise<Calibration | null> {
  if (initStatistic(method) === "weight") return null;
  return calibrate({
    model,
    method,
    targets: targetPaths(model, lora),
    batches: calibrationBatches(inputs.train, { seed: s.seed, batchSize: s.batchSize, count: s.calibrationBatches }),
    batch: inputs.batch,
    recompute: inputs.recompute,
    rank: s.loraRank,
    alpha: s.loraAlpha,
    budgetBytes: memoryBudget(s),
    signal: inputs.signal,
  });
}

/** How the saved adapter gives the trained model (see SavedAdapter). */
function savedForm(s: LoraTrainingSettings, loras: Map<string, LoRA>): SavedAdapter {
  const rewrites = [...loras.values()].flatMap((l) => (l.rewrite ? [l.rewrite.error] : []));
  if (rewrites.length === 0) return { form: "as trained", conversionError: null };
  return {
    form: "converted",
    conversionError: Math.max(...rewrites),
    ...(s.init === "loftq"
      ? {
          note: "LoftQ's base is the NF4-dequantized weight, which its starting factors only approximate: on the original base the saved adapter differs from the trained model by that approximation error (conversionError)",
        }
      : {}),
  };
}

/**
 * init svd: the teacher's factors (`svdFactors`), trained as they are (with DoRA, m from them),
 * made by make: attached (loadLora) or as an arm's (loraFromAdapter).
 */
export function svdFactorsLora(
  model: CausalLM,
  s: LoraTrainingSettings,
  lora: LoraSettings,
  make: (config: LoraAdapterConfig, weights: LoraWeights) => Map<string, LoRA>,
): Map<string, LoRA> {
  if (!s.svdFactors) throw new Error("`init` svd needs `svdFactors`: the svd_factors_rank{r}/ adapter that svdlora svd writes");
  const { config, weights } = loadAdapter(s.svdFactors);
  try {
    if (config.r !== s.loraRank)
      throw new Error(`\`svdFactors\` ${s.svdFactors} has rank ${config.r} but \`loraRank\` is ${s.loraRank}: make them equal`);
    if (config.use_dora) throw new Error(`\`svdFactors\` ${s.svdFactors} is a DoRA adapter: SVD factors are a plain LoRA`);
    const loras = make({ ...config, lora_dropout: s.loraDropout }, weights);
    // The factors' product is scaled by their α: trained with another one, the saved adapter would not be the one trained.
    if (config.lora_alpha !== s.loraAlpha || config.use_rslora !== s.rslora) {
      for (const l of loras.values()) l.dispose();
      throw new Error(
        `\`svdFactors\` ${s.svdFactors} were made for α = ${config.lora_alpha}${config.use_rslora ? " with rsLoRA" : ""} but the run has \`loraAlpha\` ${s.loraAlpha}${s.rslora ? " with rsLoRA" : ""}: ` +
          "train with the factors' α, or make the factors again with this α",
      );
    }
    return lora.dora ? withMagnitudes(model, loras) : loras;
  } finally {
    torch.dispose([...weights.values()]);
  }
}

/** fp32 weights + gradients + AdamW's two moments; activations come on top. */
export const FULL_FINETUNE_BYTES_PER_PARAM = 16;

/** Trains every weight (fp32 AdamW); writes a complete Hugging Face model folder, training_log.csv and summary.json into o.dir. */
export async function trainFull(given: Partial<TrainingSettings>, o: RunOptions & { memoryBudget?: number }): Promise<TrainResult> {
  const s = resolveSettings<TrainingSettings>(FULL_TRAINING, given);
  checkInputs(s);
  const dp = o.dataParallel ?? singleProcess(s.device);
  const events = dp.isMain ? o.events : undefined;
  const parameters = checkpointParameters(s.baseModel);
  const memory = o.memoryBudget !== undefined ? { bytes: o.memoryBudget, where: `${s.device} (given budget)` } : availableMemory(s.device);
  assertFullFinetuneFits(parameters, memory.bytes, memory.where, s.baseModel);
  const { tokenizer, data } = await loadData(s, events);
  torch.manualSeed(s.seed);
  // Always float32: AdamW on bf16 weights loses small updates, and ΔW is what we are after.
  const model = loadCausalLM(s.baseModel, { dtype: "float32", device: dp.device });
  try {
    const params = trainEveryWeight(model);
    const loop = await trainLoop(
      {
        model,
        batch: { padId: padIdOf(tokenizer), device: dp.device, packing: s.packing ?? false, dtype: "float32" },
        recompute: countingGradients(recomputePolicy(s), model, params),
        dataParallel: dp,
        ...loopRun(FULL_TRAINING, s, dp, { params, data, dir: o.dir, checkpointDir: o.checkpointDir }),
      },
      { ...o, events, label: o.label ?? "train-full" },
    );
    const result = resultOf("full", "full", s, loop, data, [...params.values()], null);
    if (dp.isMain) {
      events?.phase?.("saving", o.dir);
      saveCausalLM(model, o.dir, "float32");
      copyTokenizerFiles(s.baseModel, o.dir);
      writeSummary(o.dir, "full", FULL_TRAINING, s, dp, {
        ...result,
        memory: { estimatedBytes: parameters * FULL_FINETUNE_BYTES_PER_PARAM, availableBytes: memory.bytes, where: memory.where },
      });
    }
    return result;
  } finally {
    torch.dispose([...model.namedWeights().values()]); // also when the run stopped part-way
  }
}

/** Marks every weight of the model trainable and returns them by Hugging Face key. */
export function trainEveryWeight(model: CausalLM): Map<string, torch.Tensor> {
  const params = model.namedWeights();
  for (const p of params.values()) p.requiresGrad_();
  return params;
}

// ---- what a run records ------------------------------------------------------------------------

/**
 * A run's own part of trainLoop's job: what it trains, its data and settings, its log in dir (on
 * the main process only) and checkpoints, and the fingerprint a resume must match.
 */
export function loopRun(
  schema: typeof LORA_TRAINING | typeof FULL_TRAINING,
  s: TrainingSettings,
  dp: DataParallel,
  run: { params: Map<string, torch.Tensor>; data: Data; dir: string; checkpointDir: string },
): LoopRun {
  return {
    params: run.params,
    train: run.data.train,
    eval: run.data.eval,
    validation: run.data.validation,
    settings: s,
    log: dp.isMain ? runLogFiles(run.dir) : null,
    checkpointDir: run.checkpointDir,
    fingerprint: fingerprint(schema, s, dp),
  };
}

export function fingerprint(
  schema: typeof TRAINING | typeof LORA_TRAINING | typeof FULL_TRAINING,
  s: TrainingSettings,
  dp: DataParallel,
): Record<string, unknown> {
  const { gpus: _, ...identity } = identityOf(schema, s);
  // The global batch is batchSize × ranks.
  return dp.worldSize > 1 ? { ...identity, ranks: dp.worldSize } : identity;
}

function resultOf(
  kind: TrainResult["kind"],
  init: TrainResult["init"],
  s: TrainingSettings,
  loop: LoopResult,
  data: Data,
  params: torch.Tensor[],
  accuracy: TrainResult["accuracy"],
): TrainResult {
  const epochs = epochLosses(loop.history, loop.stepsPerEpoch);
  return {
    kind,
    init,
    seed: s.seed,
    steps: loop.steps,
    stepsPerEpoch: loop.stepsPerEpoch,
    tokens: loop.tokens,
    seconds: loop.seconds,
    initialLoss: loop.history[0]?.loss ?? Number.NaN,
    finalLoss: epochs.at(-1) ?? Number.NaN,
    epochLosses: epochs,
    evalLosses: loop.evals,
    samples: data.train.length,
    truncated: data.truncated,
    dropped: data.dropped,
    tooLong: data.tooLong,
    trainableParameters: params.reduce((n, t) => n + t.numel(), 0),
    accuracy,
    skippedSteps: loop.skipped,
    resumedFrom: loop.resumedFrom,
    preparation: null,
    saved: null,
  };
}

/**
 * What a run records about what made it, for the checks that it is done with these settings: its
 * identity (the settings that change its training and its evaluation) and its inputs (their digests).
 */
export function provenance(
  schema: typeof TRAINING | typeof LORA_TRAINING | typeof FULL_TRAINING,
  s: TrainingSettings & { svdFactors?: string },
  dp: DataParallel,
): { identity: { training: Record<string, unknown>; evaluation: Record<string, unknown> }; inputs: Record<string, unknown> } {
  const inputs: Record<string, unknown> = { baseModel: describeInput(s.baseModel), trainData: describeInput(s.trainData) };
  if (s.evalData) inputs.evalData = describeInput(s.evalData);
  if (s.svdFactors) inputs.svdFactors = describeInput(s.svdFactors);
  return { identity: { training: fingerprint(schema, s, dp), evaluation: identityOf(schema, s, { evaluation: true }) }, inputs };
}

/** summary.json: what made the run (settings, inputs, code) and what it gave. */
function writeSummary(
  dir: string,
  kind: TrainResult["kind"],
  schema: typeof TRAINING | typeof LORA_TRAINING | typeof FULL_TRAINING,
  s: TrainingSettings & { svdFactors?: string },
  dp: DataParallel,
  result: object,
): void {
  const summary = {
    made_by: "svdlora",
    kind: kind === "lora" ? "LoRA training run" : "full fine-tune",
    code: codeVersion(),
    libtorch: torch.buildInfo().torchVersion,
    hardware: dp.device.startsWith("cuda")
      ? (torch.cuda.devices()[0]?.name ?? dp.device)
      : `${os.cpus()[0]?.model ?? "cpu"} (${os.cpus().length} cores)`,
    processes: dp.worldSize,
    settings: s,
    ...provenance(schema, s, dp),
    result,
  };
  fs.mkdirSync(dir, { recursive: true });
  writeFileAtomic(path.join(dir, RUN_FILES.summary), `${JSON.stringify(summary, null, 2)}\n`);
}

// ---- full fine-tune memory ---------------------------------------------------------------------

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
    const index = torch.cuda.index(device);
    const d = torch.cuda.isAvailable() ? torch.cuda.devices()[index] : undefined;
    if (!d) throw new Error(`device ${device}: no such CUDA device (${torch.cuda.isAvailable() ? torch.cuda.deviceCount() : 0} found)`);
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
      "train a LoRA instead (svdlora train) or use a smaller model",
  );
}

export type { TrainingEvents };
