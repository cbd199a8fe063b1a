// The settings of a training run, each defined once (see util/settings.ts): `svdlora train`,
// `train-full` and the experiment's runs take their flags, config-file keys, defaults,
// validation and resume fingerprint from here.
import { QWEN25_MATH_SYSTEM_PROMPT } from "../data/format.js";
import { PROJECTIONS } from "../hf/peft.js";
import { EMBEDDED_MODEL, EMBEDDED_TRAIN } from "../paths.js";
import { type Kind, type Values, bool, int, num, oneOf, orNull, setting, text, textOrNull } from "../util/settings.js";
import { SCHEDULE_KINDS } from "./schedule.js";

export const DEVICE: Kind<string> = {
  expected: "cpu, cuda or cuda:N",
  placeholder: "<device>",
  fromValue: (v) => (typeof v === "string" && /^(cpu|cuda(:\d+)?)$/.test(v) ? v : undefined),
  fromText: (s) => (/^(cpu|cuda(:\d+)?)$/.test(s.trim()) ? s.trim() : undefined),
  show: (v) => v,
};

/** LoRA target modules: projection names, "all-linear" (LLaMA-Factory's "all" too), or PEFT's single regex string. */
export const TARGETS: Kind<string[] | "all-linear"> = {
  expected: `module names like q_proj,v_proj (${PROJECTIONS.join(", ")}) or all-linear`,
  placeholder: "<list>",
  fromValue: (v) => {
    if (v === "all-linear" || v === "all") return "all-linear";
    if (typeof v === "string") return TARGETS.fromText(v);
    return Array.isArray(v) && v.length > 0 && v.every((t) => typeof t === "string" && /^[\w.]+$/.test(t)) ? (v as string[]) : undefined;
  },
  fromText: (s) => {
    if (s.trim() === "all-linear" || s.trim() === "all") return "all-linear";
    const names = s
      .split(",")
      .map((t) => t.trim())
      .filter(Boolean);
    return names.length > 0 && names.every((t) => /^[\w.]+$/.test(t)) ? names : undefined;
  },
  show: (v) => (v === "all-linear" ? v : v.join(",")),
};

export const DTYPES = ["float32", "bfloat16", "float16"] as const;
export const GRADIENT_CHECKPOINTING = ["auto", "on", "off"] as const;
export type GradientCheckpointing = (typeof GRADIENT_CHECKPOINTING)[number];
/** Inits `train --init` knows; "svd" starts from given factors (--svd-factors). */
export const INITS = ["random", "gaussian", "svd", "pissa"] as const;
export type InitKind = (typeof INITS)[number];

const on = (v: unknown) => (v === true ? true : v === false ? false : undefined);

/** Data, optimization, runtime and output settings shared by every kind of training run. */
export const TRAINING = {
  baseModel: setting({
    kind: text("<dir|hub-id>"),
    help: "model directory or Hugging Face hub id (from the local cache)",
    default: EMBEDDED_MODEL,
    aliases: ["model_name_or_path"],
    identity: "training",
  }),
  trainData: setting({
    kind: text("<file>"),
    help: "JSON array or JSONL: {question,answer}, {instruction,input,output}, {prompt,completion}, {messages} or ShareGPT {conversations}",
    default: EMBEDDED_TRAIN,
    aliases: ["train_file"],
    identity: "training",
  }),
  evalData: setting({
    kind: orNull(text("<file>")),
    help: "held-out data (default: the embedded eval set with the embedded train set; none: no held-out loss)",
    aliases: ["validation_file", "eval_file"],
    identity: "evaluation",
  }),
  evalLimit: setting({
    kind: int({ min: 1 }),
    help: "use only the first n held-out samples for the held-out loss",
    aliases: ["max_eval_samples"],
    identity: "evaluation",
  }),
  evalSteps: setting({
    kind: int({ min: 0 }),
    help: "held-out loss every n optimizer steps as well as at each epoch's end (0: epoch ends only)",
    default: 0,
    identity: "evaluation",
  }),
  maxLength: setting({
    kind: int({ min: 2 }),
    help: "longest sample in tokens (longer ones are truncated and counted)",
    default: 1024,
    aliases: ["cutoff_len", "max_seq_length"],
    identity: "training",
  }),
  systemPrompt: setting({
    kind: textOrNull(),
    help: "system prompt for samples without one (--no-system-prompt: none)",
    default: QWEN25_MATH_SYSTEM_PROMPT as string | null,
    aliases: ["default_system"],
    identity: "training",
  }),
  epochs: setting({
    kind: int({ min: 1 }),
    help: "passes over the training data",
    default: 5,
    aliases: ["num_train_epochs"],
    identity: "training",
  }),
  batchSize: setting({
    kind: int({ min: 1 }),
    help: "samples per micro-batch (per process with --gpus)",
    default: 4,
    aliases: ["per_device_train_batch_size"],
    identity: "training",
  }),
  gradientAccumulationSteps: setting({
    kind: int({ min: 1 }),
    help: "micro-batches per optimizer step",
    default: 1,
    identity: "training",
  }),
  learningRate: setting({
    kind: num({ above: 0, placeholder: "<lr>" }),
    help: "peak learning rate (AdamW)",
    default: 2e-4,
    aliases: ["lr"],
    identity: "training",
  }),
  warmupRatio: setting({ kind: num({ min: 0, below: 1 }), help: "share of steps for linear warmup", default: 0, identity: "training" }),
  lrScheduler: setting({
    kind: oneOf(SCHEDULE_KINDS, "<kind>"),
    help: SCHEDULE_KINDS.join(" | "),
    default: "linear",
    aliases: ["lr_scheduler_type"],
    identity: "training",
  }),
  weightDecay: setting({ kind: num({ min: 0 }), help: "AdamW weight decay", default: 0, identity: "training" }),
  maxGradNorm: setting({ kind: num({ above: 0 }), help: "gradient clipping norm", default: 1.0, identity: "training" }),
  seed: setting({ kind: int(), help: "random seed (init, batch order, dropout)", default: 42, identity: "training" }),
  device: setting({ kind: DEVICE, help: "cpu | cuda | cuda:N", default: "cpu" }),
  dtype: setting({
    kind: oneOf(DTYPES, "<dtype>"),
    help: "weights dtype (default float32 on cpu, bfloat16 on cuda)",
    aliases: [
      { name: "bf16", map: (v) => (on(v) === undefined ? undefined : on(v) ? "bfloat16" : "float32"), expected: "true or false" },
      { name: "fp16", map: (v) => (on(v) === undefined ? undefined : on(v) ? "float16" : "float32"), expected: "true or false" },
    ],
    identity: "training",
  }),
  packing: setting({
    kind: bool(),
    help: "pack each batch into one row, no padding, attention kept inside samples (default on cuda)",
    identity: "training",
  }),
  gradientCheckpointing: setting({
    kind: oneOf(GRADIENT_CHECKPOINTING, "<mode>"),
    help: "recompute layers in backward: auto (on cuda, only as many as --max-memory needs) | on | off",
    default: "auto",
    aliases: [{ name: "gradient_checkpointing", map: (v) => (v === true ? "on" : v === false ? "auto" : v) }],
  }),
  maxMemory: setting({
    kind: num({ above: 0, placeholder: "<GiB>" }),
    help: "GPU memory budget for --gradient-checkpointing auto (default 90% of the card)",
  }),
  gpus: setting({
    kind: int({ min: 1 }),
    help: "data-parallel over n processes, one GPU each (n CPU processes with --device cpu); each takes --batch-size samples per step",
    default: 1,
    identity: "training",
  }),
  outputDir: setting({ kind: text("<dir>"), help: "output folder", default: "training_results" }),
  saveSteps: setting({ kind: int({ min: 0 }), help: "also checkpoint every n optimizer steps (always at each epoch's end)", default: 0 }),
  resume: setting({ kind: bool(), help: "continue from the run's checkpoint (same settings)", default: false }),
  overwrite: setting({
    kind: bool(),
    help: "replace an earlier run of the same name in the output folder",
    default: false,
    aliases: ["overwrite_output_dir"],
  }),
  skipNonfinite: setting({
    kind: bool(),
    help: "skip steps with a NaN/inf loss or gradient (counted) instead of stopping",
    default: false,
  }),
  quiet: setting({ kind: bool(), help: "no progress output", default: false }),
};

/** The LoRA adapter's settings. */
export const LORA = {
  init: setting({ kind: oneOf(INITS, "<kind>"), help: INITS.join(" | "), default: "random" as InitKind, identity: "training" }),
  svdFactors: setting({ kind: text("<dir>"), help: "PEFT adapter with the SVD factors (with --init svd)", identity: "training" }),
  loraRank: setting({ kind: int({ min: 1 }), help: "LoRA rank r", default: 16, aliases: ["r", "lora_r"], identity: "training" }),
  loraAlpha: setting({
    kind: num({ above: 0, placeholder: "<alpha>" }),
    help: "LoRA alpha (scale alpha/r)",
    default: 16,
    identity: "training",
  }),
  loraDropout: setting({
    kind: num({ min: 0, below: 1, placeholder: "<p>" }),
    help: "dropout on the LoRA input",
    default: 0,
    identity: "training",
  }),
  rslora: setting({
    kind: bool(),
    help: "rank-stabilized scale alpha/sqrt(r)",
    default: false,
    aliases: ["use_rslora"],
    identity: "training",
  }),
  targetModules: setting({
    kind: TARGETS,
    help: "comma-separated module names, or all-linear",
    default: ["q_proj", "v_proj"] as string[] | "all-linear",
    aliases: ["lora_target"],
    identity: "training",
  }),
  accuracySamples: setting({
    kind: int({ min: 0 }),
    help: "after training, answer this many held-out questions by greedy decoding and check them",
    default: 0,
    identity: "evaluation",
  }),
  maxNewTokens: setting({ kind: int({ min: 1 }), help: "longest generated answer", default: 384, identity: "evaluation" }),
};

export const LORA_TRAINING = { ...TRAINING, ...LORA };

/** A full fine-tune keeps float32 weights: AdamW on bfloat16 ones loses small updates, and ΔW is what is after. */
const FULL_DTYPE = "float32: a full fine-tune keeps float32 weights (AdamW on bfloat16 ones loses small updates)";

/** A full fine-tune's settings: a smaller default learning rate than LoRA's, float32 weights only. */
export const FULL_TRAINING = {
  ...TRAINING,
  learningRate: { ...TRAINING.learningRate, default: 1e-4 },
  dtype: setting({
    ...TRAINING.dtype,
    kind: { ...oneOf(["float32"] as const, "<dtype>"), expected: FULL_DTYPE } as Kind<(typeof DTYPES)[number]>,
    help: "weights dtype: always float32 for a full fine-tune",
    default: "float32",
    aliases: ["bf16", "fp16"].map((name) => ({
      name,
      map: (v: unknown) => (v === false ? "float32" : undefined),
      expected: `false (${FULL_DTYPE})`,
    })),
  }),
  outputDir: {
    ...TRAINING.outputDir,
    help: "the fine-tuned model folder (float32 weights, tokenizer, training_log.csv, summary.json)",
    default: "full_finetune/model",
  },
};
export type TrainingSettings = Values<typeof TRAINING>;
export type LoraTrainingSettings = Values<typeof LORA_TRAINING>;
