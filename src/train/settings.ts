// The settings of a training run, each defined once (see util/settings.ts): `svdlora train`,
// `train-full` and the experiment's runs take their flags, config-file keys, defaults,
// validation and resume fingerprint from here.
import { QWEN25_MATH_SYSTEM_PROMPT } from "../data/format.js";
import { PROJECTIONS } from "../hf/projections.js";
import { INIT_METHODS, type InitName } from "../lowrank/inits/methods.js";
import { EMBEDDED_MODEL, EMBEDDED_TRAIN } from "../paths.js";
import {
  type Kind,
  type NoSetting,
  type Values,
  bool,
  int,
  list,
  num,
  oneOf,
  orNull,
  setting,
  text,
  textOrNull,
} from "../util/settings.js";
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
/**
 * An init `train --init` knows: random and gaussian (model/lora.ts), svd (given factors,
 * --svd-factors), and every method of lowrank/inits, pissa-niter-N with its N.
 */
export type InitKind = "random" | "gaussian" | "svd" | Exclude<InitName, "pissa-niter-N"> | `pissa-niter-${number}`;
/** pissa-niter-N's N: torch.svd_lowrank's subspace iterations (PEFT suggests a few to 16). */
export const PISSA_NITER_MAX = 100;
/** Every init's name, pissa-niter-N standing for its family. */
export const INIT_NAMES = ["random", "gaussian", "svd", ...Object.keys(INIT_METHODS)] as readonly string[];

const isInit = (v: unknown): v is InitKind => {
  if (typeof v !== "string") return false;
  const niter = /^pissa-niter-([1-9]\d*)$/.exec(v);
  if (niter) return Number(niter[1]) <= PISSA_NITER_MAX;
  return v !== "pissa-niter-N" && INIT_NAMES.includes(v);
};

/** An init's name, or for `svdlora run --arms`, any init but those every experiment trains (`except`). */
export function initKind(except: readonly string[] = []): Kind<InitKind> {
  const ok = (v: unknown): v is InitKind => isInit(v) && !except.includes(v);
  const names = INIT_NAMES.filter((n) => !except.includes(n));
  return {
    expected: `one of ${names.join(", ")} (pissa-niter-N: N from 1 to ${PISSA_NITER_MAX})`,
    placeholder: "<kind>",
    fromValue: (v) => (ok(v) ? v : undefined),
    fromText: (t) => (ok(t.trim()) ? (t.trim() as InitKind) : undefined),
    show: (v) => v,
  };
}

/** Every init but those given, pissa-niter-N as pissa-niter-4 (what an experiment's `arms: all` trains). */
export const initsExcept = (except: readonly string[]): InitKind[] =>
  INIT_NAMES.filter((n) => !except.includes(n)).map((n) => (n === "pissa-niter-N" ? "pissa-niter-4" : n) as InitKind);

/** A list of inits among `choices` (any pissa-niter-N if pissa-niter-4 is one), "all" for every choice, "none" or [] for none. */
export function initList<E extends string = never>(choices: readonly InitKind[], extras: readonly E[] = []): Kind<(InitKind | E)[]> {
  const one = initKind(
    INIT_NAMES.filter((n) => !choices.includes(n as InitKind) && !(n === "pissa-niter-N" && choices.includes("pissa-niter-4"))),
  );
  const isExtra = (v: unknown): v is E => extras.includes(v as E);
  const item: Kind<InitKind | E | "all"> = {
    ...one,
    expected: one.expected.replace("one of ", `one of all, ${extras.map((e) => `${e}, `).join("")}`),
    fromValue: (v) => (v === "all" || isExtra(v) ? v : one.fromValue(v)),
    fromText: (t) => (t.trim() === "all" || isExtra(t.trim()) ? (t.trim() as E | "all") : one.fromText(t)),
    show: (v) => v,
  };
  const items = list(item, { min: 0 });
  const expand = (xs: (InitKind | E | "all")[] | undefined) =>
    xs && [...new Set(xs.flatMap((x): (InitKind | E)[] => (x === "all" ? [...choices] : [x])))];
  return { ...items, fromValue: (v) => expand(items.fromValue(v)), fromText: (t) => expand(items.fromText(t)), show: (v) => items.show(v) };
}

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
  validationFraction: setting({
    kind: num({ min: 0, below: 1 }),
    help: "share of the held-out samples, drawn at random with a fixed seed, kept apart as a validation set for choosing settings (the learning rate); the rest is the test set",
    default: 0,
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
  evalBatchSize: setting({
    kind: int({ min: 1 }),
    // No identity: the held-out loss is token-weighted, so the batch size changes it only by float rounding.
    help: "held-out samples per batch when measuring the held-out loss (default 64 on CUDA, the training batch size on the CPU)",
    aliases: ["per_device_eval_batch_size"],
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
    help: "pack each batch into one row, attention kept inside samples (default on cuda, where the row is filled to a multiple of 64 tokens that count in nothing)",
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
  resume: setting({
    kind: bool(),
    help: "continue from the run's checkpoint (same settings)",
    default: false,
    aliases: [
      {
        name: "resume_from_checkpoint",
        map: (v) => (typeof v === "boolean" ? v : undefined),
        expected: "true or false: a run resumes from its own checkpoint",
      },
    ],
  }),
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
  quiet: setting({ kind: bool(), help: "no progress output", default: false, aliases: ["disable_tqdm"] }),
};

/** The LoRA adapter's settings. */
export const LORA = {
  init: setting({
    kind: initKind(),
    help: `${INIT_NAMES.join(" | ")} (docs/inits.md)`,
    default: "random" as InitKind,
    aliases: [
      {
        name: "init_lora_weights",
        // PEFT's init_lora_weights values that name one of svdlora's inits (its "corda" needs corda_config's method: use `init`).
        map: (v) =>
          v === true
            ? "random"
            : typeof v === "string" && /^pissa_niter_\d+$/.test(v)
              ? v.replaceAll("_", "-")
              : ["gaussian", "pissa", "olora", "eva", "loftq"].includes(v as string)
                ? v
                : undefined,
        expected: 'true, "gaussian", "pissa", "pissa_niter_N", "olora", "eva" or "loftq"',
      },
    ],
    identity: "training",
  }),
  dora: setting({
    kind: bool(),
    help: "DoRA: also train a magnitude per output of each adapted module (PEFT's use_dora)",
    default: false,
    aliases: ["use_dora"],
    identity: "training",
  }),
  calibrationBatches: setting({
    kind: int({ min: 1, max: 10000 }),
    help: "batches of --batch-size samples, the run's first, that eva, corda-*, lora-ga and lora-one read before training (EVA cycles through them)",
    default: 8,
    identity: "training",
  }),
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
  accuracyData: setting({
    kind: text("<file>"),
    help: "questions for the accuracy check (default: the embedded 1,000-question accuracy set with the embedded train set)",
    aliases: ["accuracy_file"],
    identity: "evaluation",
  }),
  accuracySamples: setting({
    kind: int({ min: 0 }),
    help: "after training, answer this many accuracy questions by greedy decoding and check them (0: no accuracy check)",
    default: 0,
    identity: "evaluation",
  }),
  maxNewTokens: setting({ kind: int({ min: 1 }), help: "longest generated answer", default: 384, identity: "evaluation" }),
  generationBatchSize: setting({
    kind: int({ min: 1 }),
    help: "questions answered at once by greedy decoding (default 32 on the CPU, 1024 on CUDA)",
  }),
};

export const LORA_TRAINING = { ...TRAINING, ...LORA };

/** A positive whole number of arms, or "auto". */
export const ARMS_PER_PASS: Kind<number | "auto"> = {
  expected: "a whole number ≥ 1 or auto",
  placeholder: "<n|auto>",
  fromValue: (v) => (v === "auto" ? v : typeof v === "number" && Number.isSafeInteger(v) && v >= 1 ? v : ARMS_PER_PASS.fromText(String(v))),
  fromText: (s) => (s.trim() === "auto" ? "auto" : /^\d+$/.test(s.trim()) && Number(s) >= 1 ? Number(s) : undefined),
  show: (v) => String(v),
};

/** How LoRA runs over the same base model share it (train/concurrent.ts). */
export const CONCURRENT = {
  concurrentArms: setting({
    kind: ARMS_PER_PASS,
    help: "LoRA runs trained together over one copy of the base model: n, or auto (on a GPU as many as --max-memory holds; on the CPU one)",
    default: "auto" as number | "auto",
  }),
};

/**
 * Well-known keys of Hugging Face TrainingArguments, PEFT LoraConfig and LLaMA-Factory that svdlora
 * deliberately has no setting for, each with the reason a config file giving it is told.
 */
export const NO_SETTING: Record<string, NoSetting> = {
  // Hugging Face TrainingArguments
  logging_steps: { why: "svdlora logs every optimizer step, to CSV, JSONL and TensorBoard", same: [1] },
  logging_strategy: { why: "svdlora logs every optimizer step", same: ["steps"] },
  logging_dir: { why: "TensorBoard events go to tensorboard/<run>/ in the output folder" },
  report_to: { why: "svdlora writes TensorBoard event files and a JSONL log itself", same: ["tensorboard", ["tensorboard"], "none", []] },
  eval_strategy: { why: "held-out loss is measured at step 0, each epoch's end and every eval_steps", same: ["epoch", "steps"] },
  evaluation_strategy: { why: "held-out loss is measured at step 0, each epoch's end and every eval_steps", same: ["epoch", "steps"] },
  save_strategy: { why: "a checkpoint is saved at each epoch's end and every save_steps", same: ["epoch", "steps"] },
  save_total_limit: { why: "a run keeps one checkpoint, its latest", same: [1] },
  load_best_model_at_end: { why: "the adapter saved is the last step's; compare reads every evaluation", same: [false] },
  metric_for_best_model: { why: "there is no best-model selection: the adapter saved is the last step's" },
  max_steps: { why: "a run's length is set in epochs (num_train_epochs)", same: [-1] },
  warmup_steps: { why: "warmup is set as a share of the steps (warmup_ratio)", same: [0] },
  optim: { why: "the optimizer is AdamW (PyTorch's, fused on CUDA)", same: ["adamw_torch", "adamw_torch_fused"] },
  adam_beta1: { why: "AdamW's β1 is 0.9", same: [0.9] },
  adam_beta2: { why: "AdamW's β2 is 0.999", same: [0.999] },
  adam_epsilon: { why: "AdamW's ε is 1e-8", same: [1e-8] },
  lr_scheduler_kwargs: { why: "the learning-rate schedules take no options", same: [{}] },
  label_smoothing_factor: { why: "the loss is plain cross-entropy over the answer tokens", same: [0] },
  group_by_length: { why: "batches follow a seeded random order (packed into one row on CUDA: packing)", same: [false] },
  dataloader_num_workers: { why: "the data is tokenized once, in memory, before training", same: [0] },
  dataloader_drop_last: { why: "no sample is dropped: the remainder joins the last batch", same: [false] },
  data_seed: { why: "one seed decides the init, the batch order and dropout" },
  torch_compile: { why: "svdlora runs libtorch eagerly, with the decoder's ops fused by hand", same: [false] },
  deepspeed: { why: "svdlora trains data-parallel over GPUs with gpus (c10d), without sharding" },
  fsdp: { why: "svdlora trains data-parallel over GPUs with gpus (c10d), without sharding", same: ["", []] },
  ddp_backend: { why: "the backend follows the device: NCCL on CUDA, Gloo on the CPU" },
  use_cpu: { why: "the device setting chooses the device (device: cpu)" },
  no_cuda: { why: "the device setting chooses the device (device: cpu)" },
  do_train: { why: "svdlora train always trains", same: [true] },
  do_eval: { why: "held-out loss is measured whenever there is held-out data (eval_data)", same: [true] },
  run_name: { why: "a run is named after its init: final_model_<init>/, training_log_<init>.csv" },
  push_to_hub: { why: "svdlora writes local folders only", same: [false] },
  hub_model_id: { why: "svdlora writes local folders only" },
  // PEFT LoraConfig
  bias: { why: "only the LoRA factors are trained (bias none)", same: ["none"] },
  task_type: { why: "svdlora trains causal language models", same: ["CAUSAL_LM"] },
  modules_to_save: { why: "only the LoRA factors are trained", same: [null, []] },
  fan_in_fan_out: { why: "Qwen2 and Llama store their linear weights as (out, in)", same: [false] },
  layers_to_transform: { why: "every layer's targeted modules get a LoRA", same: [null] },
  layers_pattern: { why: "every layer's targeted modules get a LoRA", same: [null] },
  rank_pattern: { why: "every targeted module has the same rank (lora_rank)", same: [{}] },
  alpha_pattern: { why: "every targeted module has the same alpha (lora_alpha)", same: [{}] },
  // LLaMA-Factory
  stage: { why: "svdlora does supervised fine-tuning", same: ["sft"] },
  finetuning_type: { why: "svdlora train trains a LoRA; svdlora train-full fine-tunes every weight", same: ["lora"] },
  template: { why: "the chat template is the model's own (tokenizer_config.json)" },
  dataset: { why: "give the data file itself as train_data (JSON or JSONL)" },
  dataset_dir: { why: "give the data file itself as train_data (JSON or JSONL)" },
  val_size: { why: "held-out data is its own file (eval_data)", same: [0] },
  max_samples: { why: "the whole data file is used: write the samples you want into it" },
  plot_loss: { why: "svdlora always draws the loss curves", same: [true] },
  quantization_bit: { why: "svdlora does not quantize the base model" },
  flash_attn: { why: "on CUDA each batch is packed with flash attention by default (packing)", same: ["auto"] },
  preprocessing_num_workers: { why: "the data is tokenized once, in memory, before training" },
  overwrite_cache: { why: "the data is tokenized once, in memory: there is no cache", same: [true] },
  trust_remote_code: { why: "svdlora implements Qwen2 and Llama itself and runs no model code", same: [false] },
};

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
