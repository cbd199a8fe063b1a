// Training runs: a LoRA adapter (trainLora) or every weight (trainFull). Each loads the model and
// data, runs the one training loop (loop.ts) and writes its result into one folder:
//   adapter/ (a PEFT adapter) or the model's own files (a Hugging Face model folder),
//   training_log.csv, summary.json (the settings, the inputs' digests, the code version, the result).
// Where that folder's files end up (final_model_<run>/, training_log_<run>.csv, …) is the caller's
// choice (pipeline/train.ts). Only the main process of a data-parallel run writes.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { loadDataset } from "../data/dataset.js";
import { formatSamples } from "../data/format.js";
import type { Encoded, Sample } from "../data/types.js";
import { SafetensorsCheckpoint } from "../hf/checkpoint.js";
import { loadModelConfig } from "../hf/config.js";
import { loadAdapter, saveAdapter } from "../hf/peft.js";
import { type HfTokenizer, loadTokenizer } from "../hf/tokenizer.js";
import { loadCausalLM } from "../model/loader.js";
import { addLora, adapterConfigFor, type LoRA, type LoraSettings, loadLora, loraWeights, pissaToLora } from "../model/lora.js";
import type { CausalLM } from "../model/qwen2.js";
import { copyTokenizerFiles, saveCausalLM } from "../model/save.js";
import { EMBEDDED_EVAL, EMBEDDED_TRAIN } from "../paths.js";
import * as torch from "../torch/index.js";
import { writeFileAtomic } from "../util/atomic.js";
import { describeInput } from "../util/digest.js";
import { checkValues, defaults, identityOf } from "../util/settings.js";
import { codeVersion } from "../version.js";
import type { RecomputePolicy } from "./backprop.js";
import { type DataParallel, singleProcess } from "./data-parallel.js";
import { evaluateAccuracy } from "./evaluate.js";
import type { TrainingEvents } from "./events.js";
import { type LoopOptions, type LoopResult, epochLosses, trainLoop } from "./loop.js";
import {
  type DTYPES,
  FULL_TRAINING,
  type InitKind,
  LORA_TRAINING,
  type LoraTrainingSettings,
  type TRAINING,
  type TrainingSettings,
} from "./settings.js";

/** The files a run folder holds. */
export const RUN_FILES = { adapter: "adapter", log: "training_log.csv", summary: "summary.json" } as const;

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
}

// ---- settings ----------------------------------------------------------------------------------

export const defaultDtype = (device: string): (typeof DTYPES)[number] => (device.startsWith("cuda") ? "bfloat16" : "float32");

/** Settings with defaults filled in and the values that follow from others resolved (held-out data, packing, dtype). */
export function resolveSettings<T extends TrainingSettings>(
  schema: typeof TRAINING | typeof LORA_TRAINING | typeof FULL_TRAINING,
  given: Partial<T>,
): T {
  checkValues(schema, given);
  const s = { ...defaults(schema), ...given } as T;
  // No held-out data given: the embedded eval set goes with the embedded train set; null means none.
  if (s.evalData === undefined && path.resolve(s.trainData) === path.resolve(EMBEDDED_TRAIN)) s.evalData = EMBEDDED_EVAL;
  s.packing ??= s.device.startsWith("cuda");
  s.dtype ??= defaultDtype(s.device);
  return s;
}

/** The layers to recompute in backward, from gradientCheckpointing and maxMemory. */
export function recomputePolicy(s: Pick<TrainingSettings, "gradientCheckpointing" | "maxMemory" | "device">): RecomputePolicy {
  const mode = s.gradientCheckpointing ?? "auto";
  if (mode === "on") return "all";
  if (mode === "off" || !s.device.startsWith("cuda")) return "none";
  const index = Number(s.device.split(":")[1] ?? 0);
  const card = torch.cuda.devices()[index];
  if (!card) throw new Error(`device ${s.device}: no such GPU (${torch.cuda.deviceCount()} found)`);
  const budgetGib = s.maxMemory ?? (0.9 * card.totalMemory) / 2 ** 30;
  return { budgetBytes: budgetGib * 2 ** 30 };
}

function checkInputs(s: TrainingSettings & { svdFactors?: string }): void {
  for (const [what, p] of [
    ["baseModel", s.baseModel],
    ["trainData", s.trainData],
    ["evalData", s.evalData],
    ["svdFactors", s.svdFactors],
  ] as const)
    if (p && !fs.existsSync(p)) throw new Error(`\`${what}\` ${p}: no such file or directory`);
}

// ---- data --------------------------------------------------------------------------------------

interface Data {
  train: Encoded[];
  eval: Encoded[];
  evalSamples: Sample[];
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
async function loadData(s: TrainingSettings, events: TrainingEvents | undefined): Promise<{ tokenizer: HfTokenizer; data: Data }> {
  const trainSamples = loadDataset(s.trainData);
  const evalSamples = s.evalData ? loadDataset(s.evalData) : [];
  const tokenizer = await loadTokenizer(s.baseModel);
  loadModelConfig(s.baseModel); // a bad config.json is one line before any progress output
  events?.phase?.("loading", s.baseModel);
  const train = encode(trainSamples, s.trainData, tokenizer, s);
  const evalSet = s.evalData ? encode(evalSamples, s.evalData, tokenizer, s).encoded.slice(0, s.evalLimit) : [];
  return {
    tokenizer,
    data: { train: train.encoded, eval: evalSet, evalSamples, truncated: train.truncated, dropped: train.dropped, tooLong: train.tooLong },
  };
}

const padIdOf = (tokenizer: HfTokenizer) => tokenizer.pad?.id ?? tokenizer.eos?.id ?? 0;

// ---- the two kinds of run ----------------------------------------------------------------------

/** Trains a LoRA adapter; writes adapter/, training_log.csv and summary.json into o.dir. */
export async function trainLora(given: Partial<LoraTrainingSettings>, o: RunOptions): Promise<TrainResult> {
  const s = resolveSettings<LoraTrainingSettings>(LORA_TRAINING, given);
  checkInputs(s);
  if (s.svdFactors !== undefined && s.init !== "svd")
    throw new Error(`SVD factors (${s.svdFactors}) are used only with \`init\` svd, not ${s.init}`);
  const recompute = recomputePolicy(s);
  const dp = o.dataParallel ?? singleProcess(s.device);
  const events = dp.isMain ? o.events : undefined;
  const { tokenizer, data } = await loadData(s, events);
  torch.manualSeed(s.seed);
  const model = loadCausalLM(s.baseModel, { dtype: s.dtype, device: dp.device });
  const lora: LoraSettings = { rank: s.loraRank, alpha: s.loraAlpha, dropout: s.loraDropout, rslora: s.rslora, targets: s.targetModules };
  const loras = attachLora(model, s, lora);
  const pissaStart = s.init === "pissa" ? loraWeights(loras) : null;
  const params = new Map<string, torch.Tensor>();
  for (const [module, l] of loras) {
    params.set(`${module}.lora_A`, l.A);
    params.set(`${module}.lora_B`, l.B);
  }
  const loop = await trainLoop(
    {
      model,
      params,
      train: data.train,
      eval: data.eval,
      settings: s,
      batch: { padId: padIdOf(tokenizer), device: dp.device, packing: s.packing ?? false },
      recompute,
      logPath: dp.isMain ? path.join(o.dir, RUN_FILES.log) : null,
      checkpointDir: o.checkpointDir,
      fingerprint: fingerprint(LORA_TRAINING, s, dp),
      dataParallel: dp,
    },
    { ...o, events, label: o.label ?? `train ${s.init}` },
  );

  let accuracy: TrainResult["accuracy"] = null;
  if (s.accuracySamples > 0 && data.evalSamples.length > 0 && dp.isMain) {
    events?.phase?.("generating", `${Math.min(s.accuracySamples, data.evalSamples.length)} held-out answers`);
    const t0 = performance.now();
    model.setTraining(false);
    const a = evaluateAccuracy(model, tokenizer, data.evalSamples.slice(0, s.accuracySamples), {
      systemPrompt: s.systemPrompt ?? undefined,
      maxLength: s.maxLength,
      maxNewTokens: s.maxNewTokens,
    });
    accuracy = {
      correct: a.correct,
      total: a.total,
      tooLong: a.tooLong,
      seconds: (performance.now() - t0) / 1000,
      items: a.outputs.map((x) => x.correct),
    };
  }
  const result = resultOf("lora", s.init, s, loop, data, [...params.values()], accuracy);
  if (dp.isMain) {
    events?.phase?.("saving", o.dir);
    let weights = loraWeights(loras);
    let saved = lora;
    if (pissaStart) {
      // PiSSA's factors only make sense on the residual base: save the plain-LoRA equivalent.
      const converted = pissaToLora(weights, pissaStart, lora);
      torch.dispose([...weights.values(), ...pissaStart.values()]);
      ({ weights, settings: saved } = converted);
    }
    saveAdapter(path.join(o.dir, RUN_FILES.adapter), adapterConfigFor(saved, s.baseModel), weights);
    torch.dispose([...weights.values()]);
    writeSummary(o.dir, "lora", LORA_TRAINING, s, dp, result);
  }
  torch.dispose([...model.namedWeights().values(), ...params.values()]);
  return result;
}

function attachLora(model: CausalLM, s: LoraTrainingSettings, lora: LoraSettings): Map<string, LoRA> {
  if (s.init !== "svd") return addLora(model, lora, s.init);
  if (!s.svdFactors) throw new Error("`init` svd needs `svdFactors`: the svd_factors_rank{r}/ adapter that svdlora svd writes");
  const { config, weights } = loadAdapter(s.svdFactors);
  try {
    if (config.r !== s.loraRank)
      throw new Error(`\`svdFactors\` ${s.svdFactors} has rank ${config.r} but \`loraRank\` is ${s.loraRank}: make them equal`);
    const loras = loadLora(model, { ...config, lora_dropout: s.loraDropout }, weights);
    // The factors' product is scaled by their α: trained with another one, the saved adapter would not be the one trained.
    if (config.lora_alpha !== s.loraAlpha || config.use_rslora !== s.rslora)
      throw new Error(
        `\`svdFactors\` ${s.svdFactors} were made for α = ${config.lora_alpha}${config.use_rslora ? " with rsLoRA" : ""} but the run has \`loraAlpha\` ${s.loraAlpha}${s.rslora ? " with rsLoRA" : ""}: ` +
          "train with the factors' α, or make the factors again with this α",
      );
    return loras;
  } finally {
    torch.dispose([...weights.values()]);
  }
}

/** fp32 weights + gradients + AdamW's two moments; activations come on top. */
export const FULL_FINETUNE_BYTES_PER_PARAM = 16;

/** Trains every weight (fp32 AdamW); writes a complete Hugging Face model folder, training_log.csv and summary.json into o.dir. */
export async function trainFull(given: Partial<TrainingSettings>, o: RunOptions & { memoryBudget?: number }): Promise<TrainResult> {
  const s = resolveSettings<TrainingSettings>(FULL_TRAINING, { ...given, dtype: "float32" });
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
  const params = trainEveryWeight(model);
  const loop = await trainLoop(
    {
      model,
      params,
      train: data.train,
      eval: data.eval,
      settings: s,
      batch: { padId: padIdOf(tokenizer), device: dp.device, packing: s.packing ?? false },
      recompute: recomputePolicy(s),
      logPath: dp.isMain ? path.join(o.dir, RUN_FILES.log) : null,
      checkpointDir: o.checkpointDir,
      fingerprint: fingerprint(FULL_TRAINING, s, dp),
      dataParallel: dp,
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
  torch.dispose([...model.namedWeights().values()]);
  return result;
}

/** Marks every weight of the model trainable and returns them by Hugging Face key. */
export function trainEveryWeight(model: CausalLM): Map<string, torch.Tensor> {
  const params = model.namedWeights();
  for (const p of params.values()) p.requiresGrad_();
  return params;
}

// ---- what a run records ------------------------------------------------------------------------

function fingerprint(
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
  };
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
  const inputs: Record<string, unknown> = { baseModel: describeInput(s.baseModel), trainData: describeInput(s.trainData) };
  if (s.evalData) inputs.evalData = describeInput(s.evalData);
  if (s.svdFactors) inputs.svdFactors = describeInput(s.svdFactors);
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
    identity: { training: fingerprint(schema, s, dp), evaluation: identityOf(schema, s, { evaluation: true }) },
    inputs,
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
    const index = Number(device.split(":")[1] ?? 0);
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
