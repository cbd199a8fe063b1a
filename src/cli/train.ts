// `svdlora train`: LoRA fine-tuning (SPEC steps 1 and 3).
import path from "node:path";
import type { Command } from "commander";
import { resolveBaseModel } from "../hf/hub.js";
import { EMBEDDED_EVAL, EMBEDDED_MODEL, EMBEDDED_TRAIN } from "../paths.js";
import type { DType } from "../torch/index.js";
import { SCHEDULE_KINDS } from "../train/schedule.js";
import { trainStep } from "../pipeline/train.js";
import { TRAIN_DEFAULTS, type InitKind } from "../train/trainer.js";
import * as arg from "./args.js";

export function registerTrain(program: Command): void {
  const d = TRAIN_DEFAULTS;
  program
    .command("train")
    .description("train a LoRA adapter (random, gaussian, svd or pissa init) and save it in PEFT format")
    .option("--base-model <dir|hub-id>", "model directory or Hugging Face hub id (from the local cache)", EMBEDDED_MODEL)
    .option("--train-data <file>", "JSON array or JSONL: {question,answer}, {instruction,input,output}, {prompt,completion} or {messages}", EMBEDDED_TRAIN)
    .option("--eval-data <file>", "held-out data for the eval loss per epoch (default: the embedded eval set with the embedded train set)")
    .option("--init <kind>", "random | gaussian | svd | pissa", arg.oneOf(["random", "gaussian", "svd", "pissa"] as const), d.init)
    .option("--svd-factors <dir>", "PEFT adapter with the SVD factors (for --init svd)")
    .option("--lora-rank <r>", "LoRA rank", arg.positiveInt, d.lora.rank)
    .option("--lora-alpha <alpha>", "LoRA alpha (scaling alpha/r)", arg.positiveNumber, d.lora.alpha)
    .option("--lora-dropout <p>", "dropout on the LoRA input", arg.fraction, 0)
    .option("--rslora", "rank-stabilized scaling alpha/sqrt(r)")
    .option("--target-modules <list>", "comma-separated module names, or all-linear", arg.targets, d.lora.targets)
    .option("--epochs <n>", "passes over the training data", arg.positiveInt, d.epochs)
    .option("--batch-size <n>", "samples per micro-batch", arg.positiveInt, d.batchSize)
    .option("--gradient-accumulation-steps <n>", "micro-batches per optimizer step", arg.positiveInt, d.gradientAccumulationSteps)
    .option("--learning-rate <lr>", "peak learning rate (AdamW)", arg.positiveNumber, d.learningRate)
    .option("--warmup-ratio <f>", "share of steps for linear warmup", arg.fraction, d.warmupRatio)
    .option("--lr-scheduler <kind>", SCHEDULE_KINDS.join(" | "), arg.oneOf(SCHEDULE_KINDS), d.scheduler)
    .option("--weight-decay <wd>", "AdamW weight decay", arg.nonNegative, d.weightDecay)
    .option("--max-grad-norm <n>", "gradient clipping norm", arg.positiveNumber, d.maxGradNorm)
    .option("--max-length <n>", "longest sample in tokens (longer ones are truncated and counted)", arg.positiveInt, d.maxLength)
    .option("--packing", "pack samples into one row per batch (no attention across samples)")
    .option("--system-prompt <text>", "system prompt for samples without one", d.systemPrompt ?? undefined)
    .option("--no-system-prompt", "add no system prompt")
    .option("--seed <n>", "random seed", arg.int, d.seed)
    .option("--device <device>", "cpu | cuda | cuda:N", arg.device, d.device)
    .option("--dtype <dtype>", "weights dtype (default float32 on cpu, bfloat16 on cuda)", arg.oneOf(["float32", "bfloat16", "float16"] as const))
    .option("--output-dir <dir>", "where final_model_<init>/ and training_log_<init>.csv go", "training_results")
    .option("--quiet", "no progress output")
    .action(async (o) => {
      const baseModel = await resolveBaseModel(o.baseModel);
      const evalData = o.evalData ?? (path.resolve(o.trainData) === path.resolve(EMBEDDED_TRAIN) ? EMBEDDED_EVAL : undefined);
      const result = await trainStep({
        ...TRAIN_DEFAULTS,
        baseModel,
        trainData: o.trainData,
        evalData,
        outputDir: o.outputDir,
        init: o.init as InitKind,
        svdFactors: o.svdFactors,
        lora: { rank: o.loraRank, alpha: o.loraAlpha, dropout: o.loraDropout, rslora: Boolean(o.rslora), targets: o.targetModules },
        epochs: o.epochs,
        batchSize: o.batchSize,
        gradientAccumulationSteps: o.gradientAccumulationSteps,
        learningRate: o.learningRate,
        warmupRatio: o.warmupRatio,
        scheduler: o.lrScheduler,
        weightDecay: o.weightDecay,
        maxGradNorm: o.maxGradNorm,
        maxLength: o.maxLength,
        packing: Boolean(o.packing),
        systemPrompt: o.systemPrompt === false ? null : o.systemPrompt,
        seed: o.seed,
        device: o.device,
        dtype: o.dtype as DType | undefined,
        quiet: Boolean(o.quiet),
      });
      const evals = result.evalLosses;
      console.log(`trained ${result.steps} steps on ${result.samples} samples (${result.tokens} tokens) in ${result.seconds.toFixed(1)} s`);
      console.log(`train loss by epoch: ${result.epochLosses.map((l) => l.toFixed(4)).join(", ")}`);
      if (evals.length > 1) console.log(`eval loss  ${evals[0].loss.toFixed(4)} → ${evals[evals.length - 1].loss.toFixed(4)} (${evalData})`);
      if (result.truncated) console.log(`${result.truncated} samples were longer than --max-length and were truncated`);
      console.log(`adapter: ${result.adapterDir}\nlog:     ${result.logPath}\nfigure:  ${result.plotFile}`);
    });
}
