// The settings of an experiment (`svdlora run`, an experiment file): the training settings its
// runs share, and the experiment's own (arms, seeds, the teacher). Defined once here; flags,
// file keys, validation, defaults and the summary all come from this (util/settings.ts).
import { CONCURRENT, type InitKind, LORA, TRAINING, initList, initsExcept } from "../train/settings.js";
import { type Values, bool, int, list, num, oneOf, pick, text } from "../util/settings.js";

/** Other inits trained beside random (the baseline) and svd (the teacher's SVD); `all` trains each of these. */
export const INIT_ARMS = initsExcept(["random", "svd"]);
/**
 * Controls that make "svd vs random" readable: random-continued (the random run trained again
 * from its own adapter: the svd arm's compute without the teacher), svd-full (svd from a real full
 * fine-tune's ΔW, no leak), svd-xfit (svd from a teacher built on a random run over the other half
 * of the training data).
 */
export const CONTROL_ARMS = ["random-continued", "svd-full", "svd-xfit"] as const;
export type ExtraArm = InitKind | (typeof CONTROL_ARMS)[number];
export const EXTRA_ARMS: readonly ExtraArm[] = [...INIT_ARMS, ...CONTROL_ARMS];
export const FACTOR_SPLITS = ["seed", "balanced"] as const;

/** What the comparison measures for every arm (step 4, pipeline/compare.ts). */
export const METRICS = [
  "heldOutFinal",
  "heldOutInitial",
  "heldOutAuc",
  "stepsToTarget",
  "trainFinal",
  "accuracy",
  "seconds",
  "totalTokens",
  "totalSeconds",
] as const;
export type MetricKey = (typeof METRICS)[number];

/** How the arms are compared (step 4). */
export const COMPARISON = {
  baseline: { kind: text("<arm>"), help: "the arm the others are measured against", default: "random" },
  primary: {
    kind: oneOf(METRICS, "<metric>"),
    help: `the endpoint the verdict is about (Holm-adjusted across arms): ${METRICS.join(", ")}`,
    default: "heldOutFinal" as MetricKey,
  },
  targetLoss: {
    kind: num({ above: 0, placeholder: "<loss>" }),
    help: "held-out loss for 'steps to target' (default: the baseline's held-out loss after training)",
  },
  allowMismatch: {
    kind: bool(),
    help: "compare runs whose settings differ beyond their arm, seed and learning rate (the differences are listed in the report)",
    default: false,
  },
};

/** The synthesized teacher (step 2a). */
export const TEACHER = {
  targetRank: { kind: int({ min: 1 }), help: "rank K of the synthesized teacher", default: 64, identity: "training" as const },
  noiseScale: {
    kind: num({ min: 0 }),
    help: "teacher noise: ‖ΔW_synth − ΔW_clean‖_F / ‖ΔW_clean‖_F",
    default: 0.1,
    identity: "training" as const,
  },
  decay: {
    kind: num({ above: 0, placeholder: "<λ>" }),
    help: "teacher tail: σ_{r+j} = σ_r·e^(−λj)",
    default: 0.1,
    identity: "training" as const,
  },
};

/** How the SVD's factors are split between B and A (step 2b). */
export const FACTORS = {
  factorSplit: {
    kind: oneOf(FACTOR_SPLITS, "<split>"),
    help: "seed (B = UΣ/s, A = Vᵀ) | balanced (√ on both sides)",
    default: "seed" as (typeof FACTOR_SPLITS)[number],
    identity: "training" as const,
  },
};

export const EXPERIMENT = {
  ...pick(TRAINING, [
    "baseModel",
    "trainData",
    "evalData",
    "evalLimit",
    "evalSteps",
    "maxLength",
    "systemPrompt",
    "epochs",
    "batchSize",
    "gradientAccumulationSteps",
    "learningRate",
    "warmupRatio",
    "lrScheduler",
    "weightDecay",
    "maxGradNorm",
    "seed",
    "device",
    "dtype",
    "packing",
    "gradientCheckpointing",
    "maxMemory",
    "quiet",
  ]),
  ...pick(LORA, [
    "loraRank",
    "loraAlpha",
    "loraDropout",
    "rslora",
    "targetModules",
    "accuracyData",
    "accuracySamples",
    "maxNewTokens",
    "generationBatchSize",
    "calibrationBatches",
  ]),
  outputDir: { kind: text("<dir>"), help: "experiment folder", default: "svdlora-experiment" },
  arms: {
    kind: initList(INIT_ARMS, CONTROL_ARMS),
    help: `arms beside random and svd: the controls ${CONTROL_ARMS.join(", ")}; any other init (${INIT_ARMS.join(", ")}), all of them (all), or none`,
    default: ["pissa"] as ExtraArm[],
    aliases: ["extra_arms"],
  },
  seeds: { kind: int({ min: 1, max: 1000 }), help: "repeat every arm with seeds seed, seed+1, … (paired by seed)", default: 1 },
  lrGrid: {
    kind: list(num({ above: 0 }), { placeholder: "<lr,lr,…>" }),
    help: "run every arm at each of these learning rates and compare each at the one with its lowest validation loss (overrides the learning rate)",
    aliases: ["lr_grid"],
  },
  validationFraction: {
    ...TRAINING.validationFraction,
    help: "with lrGrid: share of the held-out samples kept apart to choose the learning rate",
    default: 0.5,
  },
  ...TEACHER,
  ...FACTORS,
  primary: COMPARISON.primary,
  fullFinetune: { kind: bool(), help: "also fine-tune every weight (small models) and analyse the real ΔW", default: false },
  ...CONCURRENT,
};

export type ExperimentConfig = Values<typeof EXPERIMENT>;

const size = (help: string, value: number) => ({ kind: int({ min: 1 }), help, default: value, identity: "training" as const });

/** The settings of `svdlora pretrain`: the corpus, the tokenizer, the model's size and its training. */
export const PRETRAIN = {
  outputDir: { kind: text("<dir>"), help: "model folder to write (a new one, or one svdlora wrote)", default: "tiny-prob-pretrained" },
  samples: { kind: int({ min: 1 }), help: "generated problems in the corpus", default: 12000 },
  chatFraction: { kind: num({ min: 0, max: 1 }), help: "share of samples in ChatML form (the rest plain text)", default: 0.3 },
  merges: { kind: int({ min: 0 }), help: "BPE merges learned for the tokenizer", default: 1200 },
  hidden: size("hidden size", 256),
  layers: size("decoder layers", 4),
  heads: size("attention heads", 8),
  kvHeads: size("key/value heads", 2),
  intermediate: size("MLP size", 704),
  epochs: { ...TRAINING.epochs, help: "passes over the corpus", default: 3 },
  batchSize: { ...TRAINING.batchSize, help: "samples per step", default: 32 },
  learningRate: { ...TRAINING.learningRate, default: 2e-3 },
  maxLength: { ...TRAINING.maxLength, default: 512 },
  seed: { ...TRAINING.seed, default: 2024 },
  device: TRAINING.device,
  quiet: TRAINING.quiet,
};

export const PEFT_CHECKPOINTING = ["on", "off"] as const;

/** The settings of `svdlora bench` (pipeline/bench.ts): the model and LoRA to measure, and the PEFT reference. */
export const BENCH = {
  ...pick(TRAINING, ["baseModel", "device", "dtype", "gradientCheckpointing", "maxMemory", "quiet"]),
  batchSize: { ...TRAINING.batchSize, help: "samples per step" },
  seed: { ...TRAINING.seed, help: "random seed (the synthetic samples, the LoRA init)" },
  trainData: {
    ...TRAINING.trainData,
    default: undefined,
    help: "time on this data set's samples, formatted as `svdlora train` formats them, in file order (repeated to fill the steps), every token a target on both sides; default: synthetic samples of 150–600 random tokens",
  },
  ...pick(TRAINING, ["maxLength", "systemPrompt"]),
  ...pick(LORA, ["loraRank", "loraAlpha", "targetModules"]),
  steps: { kind: int({ min: 1 }), help: "optimizer steps timed, after 3 warm-up steps", default: 20 },
  peakTflops: {
    kind: num({ above: 0, placeholder: "<TFLOP/s>" }),
    help: "the device's dense peak in the training dtype, for MFU (default: known for H200, H100 SXM and A100 in bfloat16)",
  },
  peft: { kind: bool(), help: "also measure the PEFT reference (scripts/bench_peft.py) when Python can import peft", default: true },
  peftCheckpointing: {
    kind: oneOf(PEFT_CHECKPOINTING, "<mode>"),
    help: "the PEFT reference with gradient checkpointing (how PEFT fits a memory budget) or without",
    default: "on" as (typeof PEFT_CHECKPOINTING)[number],
  },
  python: { kind: text("<cmd>"), help: "the Python that runs the PEFT reference (with torch, transformers and peft)", default: "python3" },
};

export type BenchSettings = Values<typeof BENCH>;
