// The settings of an experiment (`svdlora run`, an experiment file): the training settings its
// runs share, and the experiment's own (arms, seeds, the teacher). Defined once here; flags,
// file keys, validation, defaults and the summary all come from this (util/settings.ts).
import { type InitKind, LORA, TRAINING, initList, initsExcept } from "../train/settings.js";
import { type Values, bool, int, num, oneOf, pick, text } from "../util/settings.js";

/** Arms trained beside random (the baseline) and svd (the teacher's SVD): any other init; `all` trains each of these. */
export const EXTRA_ARMS = initsExcept(["random", "svd"]);
export type ExtraArm = InitKind;
export const FACTOR_SPLITS = ["seed", "balanced"] as const;

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
    "calibrationBatches",
    "accuracySamples",
    "maxNewTokens",
  ]),
  outputDir: { kind: text("<dir>"), help: "experiment folder", default: "svdlora-experiment" },
  arms: {
    kind: initList(EXTRA_ARMS),
    help: `arms beside random and svd: any other init (${EXTRA_ARMS.join(", ")}), all, or none`,
    default: ["pissa"] as ExtraArm[],
    aliases: ["extra_arms"],
  },
  seeds: { kind: int({ min: 1, max: 1000 }), help: "repeat every arm with seeds seed, seed+1, … (paired by seed)", default: 1 },
  ...TEACHER,
  ...FACTORS,
  fullFinetune: { kind: bool(), help: "also fine-tune every weight (small models) and analyse the real ΔW", default: false },
};

export type ExperimentConfig = Values<typeof EXPERIMENT>;
