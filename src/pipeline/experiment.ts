// The whole experiment as four steps over one directory (SPEC's workflow), driven by a config
// object (from a JSON/YAML file and flags). A step whose outputs are complete is skipped unless
// forced; every step writes its last file only when all others are done, so "complete" is a
// single file check.
import fs from "node:fs";
import path from "node:path";
import YAML from "yaml";
import { EMBEDDED_EVAL, EMBEDDED_MODEL, EMBEDDED_TRAIN } from "../paths.js";
import { TRAIN_DEFAULTS, type TrainConfig } from "../train/trainer.js";
import { compareRuns, writeComparison } from "./compare.js";
import { checkExperimentSettings } from "./experiment-settings.js";
import { layout } from "./layout.js";
import { writeExperimentReport } from "./report.js";
import { svdStep } from "./svd.js";
import { fullFinetuneBaseline, fullFinetuneLayout } from "./train-full.js";
import { SYNTHESIZE_DEFAULTS, synthesizeStep } from "./synthesize.js";
import { trainStep } from "./train.js";

export interface ExperimentConfig {
  baseModel: string;
  trainData: string;
  evalData: string | null;
  outputDir: string;
  lora: { rank: number; alpha: number; dropout: number; targets: string[] | "all-linear" };
  epochs: number;
  batchSize: number;
  learningRate: number;
  gradientAccumulationSteps: number;
  device: string;
  /** The SVD arm is always trained; "pissa" adds the leak-free PiSSA baseline. */
  extraArms: ("pissa" | "gaussian")[];
  /** Repeat each training arm with seeds seed, seed+1, … (mean ± std in the comparison). */
  seeds: number;
  seed: number;
  targetRank: number;
  noiseScale: number;
  decay: number;
  factorSplit: "seed" | "balanced";
  /** Eval questions answered by greedy decoding per arm after training (0 = none). */
  accuracySamples: number;
  /** Eval samples used for the per-epoch eval loss (null = all). */
  evalLimit: number | null;
  /** Also fine-tune every weight (small models) and analyse the real ΔW beside the synthesized teacher (step 2). */
  fullFinetune: boolean;
  quiet: boolean;
}

export const EXPERIMENT_DEFAULTS: ExperimentConfig = {
  baseModel: EMBEDDED_MODEL,
  trainData: EMBEDDED_TRAIN,
  evalData: EMBEDDED_EVAL,
  outputDir: "svdlora-experiment",
  lora: { rank: 16, alpha: 16, dropout: 0, targets: ["q_proj", "v_proj"] },
  epochs: 5,
  batchSize: 4,
  learningRate: 2e-4,
  gradientAccumulationSteps: 1,
  device: "cpu",
  extraArms: ["pissa"],
  seeds: 1,
  seed: 42,
  targetRank: SYNTHESIZE_DEFAULTS.targetRank,
  noiseScale: SYNTHESIZE_DEFAULTS.noiseScale,
  decay: SYNTHESIZE_DEFAULTS.decay,
  factorSplit: "seed",
  accuracySamples: 0,
  evalLimit: null,
  fullFinetune: false,
  quiet: false,
};

/** Reads a JSON or YAML experiment file; unknown keys are an error (typos should not pass). */
export function readExperimentFile(file: string): Partial<ExperimentConfig> {
  if (!fs.existsSync(file)) throw new Error(`--config ${file}: no such file`);
  let parsed: unknown;
  try {
    parsed = /\.ya?ml$/i.test(file) ? YAML.parse(fs.readFileSync(file, "utf8")) : JSON.parse(fs.readFileSync(file, "utf8"));
  } catch (e) {
    throw new Error(
      `--config ${file}: not valid ${/\.ya?ml$/i.test(file) ? "YAML" : "JSON"}: ${(e as Error).message.split("\n")[0].replace(/:\s*$/, "")}`,
    );
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed))
    throw new Error(`--config ${file}: expected a mapping of settings`);
  const unknown = Object.keys(parsed).filter((k) => !(k in EXPERIMENT_DEFAULTS));
  if (unknown.length)
    throw new Error(
      `--config ${file}: unknown setting${unknown.length > 1 ? "s" : ""} ${unknown.join(", ")} (known: ${Object.keys(EXPERIMENT_DEFAULTS).join(", ")})`,
    );
  return checkExperimentSettings(parsed as Record<string, unknown>, `--config ${file}`);
}

export type StepId = 1 | 2 | 3 | 4;
export const STEP_NAMES: Record<StepId, string> = {
  1: "train the random-init LoRA baseline",
  2: "synthesize the teacher ΔW and analyse it with SVD (and a real full fine-tune's ΔW with fullFinetune)",
  3: "train the SVD-initialized LoRA (and the extra arms)",
  4: "compare the runs and write report.html",
};

export const experimentLayout = (c: ExperimentConfig) => layout(c.outputDir, { targetRank: c.targetRank, rank: c.lora.rank });

const runName = (init: string, k: number) => (k === 0 ? init : `${init}-s${k + 1}`);

function trainConfig(c: ExperimentConfig, init: TrainConfig["init"], k: number, svdFactors?: string): TrainConfig {
  return {
    ...TRAIN_DEFAULTS,
    baseModel: c.baseModel,
    trainData: c.trainData,
    evalData: c.evalData ?? undefined,
    outputDir: experimentLayout(c).training,
    init,
    svdFactors,
    lora: { ...c.lora, rslora: false },
    epochs: c.epochs,
    batchSize: c.batchSize,
    learningRate: c.learningRate,
    gradientAccumulationSteps: c.gradientAccumulationSteps,
    device: c.device,
    seed: c.seed + k,
    runName: runName(init, k),
    accuracySamples: c.accuracySamples,
    evalLimit: c.evalLimit ?? undefined,
    quiet: c.quiet,
  };
}

/** Whether a step's outputs are all there (its last-written file exists). */
export function stepComplete(c: ExperimentConfig, step: StepId): boolean {
  const L = experimentLayout(c);
  const seeds = Array.from({ length: c.seeds }, (_, k) => k);
  switch (step) {
    case 1:
      return seeds.every((k) => fs.existsSync(L.summary(runName("random", k))));
    case 2:
      return (
        fs.existsSync(L.svdTiming) &&
        fs.existsSync(L.synthesisTiming) &&
        (!c.fullFinetune || fs.existsSync(fullFinetuneLayout(c.outputDir, c.lora.rank).svdTiming))
      );
    case 3:
      return ["svd", ...c.extraArms].every((arm) => seeds.every((k) => fs.existsSync(L.summary(runName(arm, k)))));
    case 4: {
      if (!fs.existsSync(L.html)) return false;
      const built = fs.statSync(L.html).mtimeMs;
      const inputs = fs
        .readdirSync(L.training)
        .filter((f) => f.startsWith("train_summary_"))
        .map((f) => fs.statSync(path.join(L.training, f)).mtimeMs);
      return inputs.every((t) => t <= built);
    }
  }
}

export async function runStep(c: ExperimentConfig, step: StepId, log: (line: string) => void = console.log): Promise<void> {
  const L = experimentLayout(c);
  const seeds = Array.from({ length: c.seeds }, (_, k) => k);
  switch (step) {
    case 1:
      for (const k of seeds) {
        const r = await trainStep(trainConfig(c, "random", k));
        log(
          `  ${r.runName}: ${r.steps} steps, ${r.seconds.toFixed(1)} s, eval loss ${r.evalLosses[0]?.loss.toFixed(4) ?? "-"} → ${r.evalLosses.at(-1)?.loss.toFixed(4) ?? "-"}`,
        );
      }
      return;
    case 2: {
      if (!fs.existsSync(L.adapter("random")))
        throw new Error(`step 2 needs the baseline adapter ${L.adapter("random")}: run step 1 first`);
      const s = await synthesizeStep({
        loraAdapter: L.adapter("random"),
        outputDir: L.teacher,
        targetRank: c.targetRank,
        noiseScale: c.noiseScale,
        decay: c.decay,
        seed: c.seed,
      });
      log(`  teacher: ${s.modules} modules, rank ${c.targetRank}, noise ${c.noiseScale}, ${s.seconds.toFixed(2)} s`);
      const v = await svdStep({
        synthesizedDelta: s.deltaFile,
        baseModel: c.baseModel,
        targetModules: [],
        rank: c.lora.rank,
        alpha: c.lora.alpha,
        rslora: false,
        split: c.factorSplit,
        outputDir: L.svd,
      });
      log(
        `  SVD at rank ${c.lora.rank}: mean error ${v.summary.relativeError.mean.toFixed(4)}, mean energy ${v.summary.energyRatio.mean.toFixed(4)} (${v.seconds.toFixed(2)} s)`,
      );
      if (c.fullFinetune) await fullFinetuneBaseline(c, { log });
      return;
    }
    case 3:
      if (!fs.existsSync(L.factors)) throw new Error(`step 3 needs the SVD factors ${L.factors}: run step 2 first`);
      for (const arm of ["svd", ...c.extraArms] as const)
        for (const k of seeds) {
          const r = await trainStep(trainConfig(c, arm, k, arm === "svd" ? L.factors : undefined));
          log(
            `  ${r.runName}: ${r.steps} steps, ${r.seconds.toFixed(1)} s, eval loss ${r.evalLosses[0]?.loss.toFixed(4) ?? "-"} → ${r.evalLosses.at(-1)?.loss.toFixed(4) ?? "-"}`,
          );
        }
      return;
    case 4: {
      const result = compareRuns(L.training, {});
      await writeComparison(L.training, result);
      await writeExperimentReport(c, L);
      log(`  ${L.comparisonReport}\n  ${L.html}`);
      return;
    }
  }
}

/** Runs the given steps in order, skipping complete ones unless forced. */
export async function runExperiment(
  c: ExperimentConfig,
  steps: StepId[],
  o: { force?: boolean; log?: (line: string) => void } = {},
): Promise<void> {
  const log = o.log ?? console.log;
  fs.mkdirSync(c.outputDir, { recursive: true });
  for (const step of steps) {
    if (!o.force && stepComplete(c, step)) {
      log(`step ${step}: ${STEP_NAMES[step]} — outputs complete, skipped (--force redoes it)`);
      continue;
    }
    log(`step ${step}: ${STEP_NAMES[step]}`);
    await runStep(c, step, log);
  }
}
