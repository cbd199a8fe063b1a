// `svdlora run` (the one-click runner) and `svdlora demo` (all of it on the embedded default).
import fs from "node:fs";
import readline from "node:readline/promises";
import type { Command } from "commander";
import {
  EXPERIMENT_DEFAULTS,
  type ExperimentConfig,
  STEP_NAMES,
  type StepId,
  experimentLayout,
  readExperimentFile,
  runExperiment,
} from "../pipeline/experiment.js";
import * as arg from "./args.js";

function parseSteps(value: string): StepId[] {
  if (value === "all") return [1, 2, 3, 4];
  const steps = value.split(",").map((s) => Number(s.trim()));
  if (steps.length === 0 || steps.some((s) => ![1, 2, 3, 4].includes(s)))
    throw new Error(`--steps ${value}: use all, or step numbers 1-4 separated by commas (e.g. 1,2)`);
  return [...new Set(steps)].sort() as StepId[];
}

async function menu(): Promise<StepId[] | null> {
  const rl = readline.createInterface({ input: process.stdin, output: process.stdout });
  try {
    console.log("svdlora experiment — choose what to run:");
    console.log("  A  all steps (1-4)");
    for (const [id, name] of Object.entries(STEP_NAMES)) console.log(`  ${id}  ${name}`);
    console.log("  q  quit");
    for (;;) {
      const answer = (await rl.question("> ").catch(() => "q")).trim().toLowerCase(); // Ctrl+D: quit
      if (answer === "q" || answer === "quit") return null;
      if (answer === "a" || answer === "all") return [1, 2, 3, 4];
      if (["1", "2", "3", "4"].includes(answer)) return [Number(answer) as StepId];
      console.log("please answer A, 1, 2, 3, 4 or q");
    }
  } finally {
    rl.close();
  }
}

/** Flags that override the config file; only those given on the command line (lora: field by field over `lora`). */
function overrides(o: Record<string, unknown>, lora: ExperimentConfig["lora"]): Partial<ExperimentConfig> {
  const out: Partial<ExperimentConfig> = {};
  const set = <K extends keyof ExperimentConfig>(key: K, value: unknown) => {
    if (value !== undefined) out[key] = value as ExperimentConfig[K];
  };
  set("outputDir", o.outputDir);
  set("baseModel", o.baseModel);
  set("trainData", o.trainData);
  set("evalData", o.evalData);
  set("epochs", o.epochs);
  set("batchSize", o.batchSize);
  set("learningRate", o.learningRate);
  set("gradientAccumulationSteps", o.gradientAccumulationSteps);
  set("device", o.device);
  set("seeds", o.seeds);
  set("seed", o.seed);
  set("targetRank", o.targetRank);
  set("noiseScale", o.noiseScale);
  set("factorSplit", o.factorSplit);
  set("accuracySamples", o.accuracySamples);
  if (o.fullFinetune) out.fullFinetune = true;
  set("extraArms", o.arms);
  if (o.loraRank !== undefined || o.loraAlpha !== undefined)
    out.lora = {
      ...lora,
      ...(o.loraRank !== undefined ? { rank: o.loraRank as number } : {}),
      ...(o.loraAlpha !== undefined ? { alpha: o.loraAlpha as number } : {}),
    };
  return out;
}

function experimentOptions(cmd: Command): Command {
  return cmd
    .option("--output-dir <dir>", "experiment directory")
    .option("--base-model <dir|hub-id>", "model directory or hub id")
    .option("--train-data <file>", "training data")
    .option("--eval-data <file>", "held-out data")
    .option("--lora-rank <r>", "LoRA rank", arg.positiveInt)
    .option("--lora-alpha <alpha>", "LoRA alpha", arg.positiveNumber)
    .option("--epochs <n>", "epochs per training run", arg.positiveInt)
    .option("--batch-size <n>", "batch size", arg.positiveInt)
    .option("--learning-rate <lr>", "learning rate", arg.positiveNumber)
    .option("--gradient-accumulation-steps <n>", "micro-batches per step", arg.positiveInt)
    .option("--target-rank <K>", "teacher rank", arg.positiveInt)
    .option("--noise-scale <x>", "teacher noise", arg.nonNegative)
    .option("--factor-split <split>", "seed | balanced", arg.oneOf(["seed", "balanced"] as const))
    .option("--arms <list>", "extra arms beside random and svd: pissa, gaussian, or none", arg.listOf(["pissa", "gaussian"] as const))
    .option("--seeds <n>", "repeat each arm with n seeds (mean ± std)", arg.positiveInt)
    .option("--seed <n>", "first seed", arg.int)
    .option("--accuracy-samples <n>", "eval questions answered by each arm after training", arg.nonNegativeInt)
    .option("--device <device>", "cpu | cuda | cuda:N", arg.device)
    .option("--full-finetune", "also fine-tune every weight (small models) and analyse the real ΔW")
    .option("--force", "redo steps whose outputs are complete")
    .option("--quiet", "no progress bars");
}

function printOutcome(c: ExperimentConfig): void {
  const L = experimentLayout(c);
  if (fs.existsSync(L.comparisonReport)) console.log(`\n${fs.readFileSync(L.comparisonReport, "utf8")}`);
  if (fs.existsSync(L.html)) console.log(`report: ${L.html}`);
}

export function registerRun(program: Command): void {
  experimentOptions(
    program
      .command("run")
      .description("run the experiment's steps (menu on a terminal; --steps otherwise) from a JSON/YAML config and flags")
      .option("--config <file>", "experiment config (JSON or YAML); flags override it")
      .option("--steps <list>", "all, or step numbers: 1 baseline, 2 teacher + SVD, 3 SVD-init training, 4 comparison"),
  ).action(async (o) => {
    const file = o.config ? readExperimentFile(o.config) : {};
    const lora = { ...EXPERIMENT_DEFAULTS.lora, ...file.lora }; // a file may set only some LoRA fields
    const c: ExperimentConfig = { ...EXPERIMENT_DEFAULTS, ...file, lora, ...overrides(o, lora) };
    if (o.quiet) c.quiet = true;
    const deviceIssue = arg.deviceProblem(c.device);
    if (deviceIssue) throw new Error(`--config ${o.config}: device ${c.device}: ${deviceIssue}`);
    const steps = o.steps ? parseSteps(o.steps) : process.stdin.isTTY ? await menu() : [1, 2, 3, 4];
    if (!steps) return;
    await runExperiment(c, steps as StepId[], { force: Boolean(o.force) });
    printOutcome(c);
  });

  experimentOptions(
    program
      .command("demo")
      .description("the whole experiment on the embedded tiny model and probability data, on the CPU in a few minutes"),
  ).action(async (o) => {
    // Per-epoch eval on 120 of the 240 held-out questions and accuracy on 40 keep it within minutes;
    // the tiny model is small enough for a real full fine-tune beside the synthesized teacher.
    const c: ExperimentConfig = {
      ...EXPERIMENT_DEFAULTS,
      outputDir: "svdlora-demo",
      evalLimit: 120,
      accuracySamples: 40,
      fullFinetune: true,
      ...overrides(o, EXPERIMENT_DEFAULTS.lora),
    };
    if (o.quiet) c.quiet = true;
    const started = Date.now();
    await runExperiment(c, [1, 2, 3, 4], { force: Boolean(o.force) });
    printOutcome(c);
    console.log(`demo finished in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  });
}
