// Flags that `train` and `train-full` share, and how they become config fields.
import path from "node:path";
import type { Command } from "commander";
import { EMBEDDED_EVAL, EMBEDDED_MODEL, EMBEDDED_TRAIN } from "../paths.js";
import { SCHEDULE_KINDS, type ScheduleKind } from "../train/schedule.js";
import * as arg from "./args.js";

export interface TrainingFlagDefaults {
  epochs: number;
  batchSize: number;
  learningRate: number;
  warmupRatio: number;
  scheduler: ScheduleKind;
  weightDecay: number;
  maxGradNorm: number;
  maxLength: number;
  systemPrompt: string | null;
  seed: number;
  device: string;
}

export function addTrainingFlags(cmd: Command, d: TrainingFlagDefaults): Command {
  return cmd
    .option("--base-model <dir|hub-id>", "model directory or Hugging Face hub id (from the local cache)", EMBEDDED_MODEL)
    .option(
      "--train-data <file>",
      "JSON array or JSONL: {question,answer}, {instruction,input,output}, {prompt,completion} or {messages}",
      EMBEDDED_TRAIN,
    )
    .option("--eval-data <file>", "held-out data (default: the embedded eval set with the embedded train set)")
    .option("--epochs <n>", "passes over the training data", arg.positiveInt, d.epochs)
    .option("--batch-size <n>", "samples per micro-batch", arg.positiveInt, d.batchSize)
    .option("--learning-rate <lr>", "peak learning rate (AdamW)", arg.positiveNumber, d.learningRate)
    .option("--warmup-ratio <f>", "share of steps for linear warmup", arg.fraction, d.warmupRatio)
    .option("--lr-scheduler <kind>", SCHEDULE_KINDS.join(" | "), arg.oneOf(SCHEDULE_KINDS), d.scheduler)
    .option("--weight-decay <wd>", "AdamW weight decay", arg.nonNegative, d.weightDecay)
    .option("--max-grad-norm <n>", "gradient clipping norm", arg.positiveNumber, d.maxGradNorm)
    .option("--max-length <n>", "longest sample in tokens (longer ones are truncated and counted)", arg.positiveInt, d.maxLength)
    .option("--system-prompt <text>", "system prompt for samples without one", d.systemPrompt ?? undefined)
    .option("--no-system-prompt", "add no system prompt")
    .option("--seed <n>", "random seed", arg.int, d.seed)
    .option("--device <device>", "cpu | cuda | cuda:N", arg.device, d.device)
    .option("--quiet", "no progress output");
}

/** The config fields those flags set (baseModel still to be resolved). */
export function trainingFlagValues(o: Record<string, unknown>) {
  const trainData = o.trainData as string;
  return {
    trainData,
    evalData: (o.evalData as string | undefined) ?? (path.resolve(trainData) === path.resolve(EMBEDDED_TRAIN) ? EMBEDDED_EVAL : undefined),
    epochs: o.epochs as number,
    batchSize: o.batchSize as number,
    learningRate: o.learningRate as number,
    warmupRatio: o.warmupRatio as number,
    scheduler: o.lrScheduler as ScheduleKind,
    weightDecay: o.weightDecay as number,
    maxGradNorm: o.maxGradNorm as number,
    maxLength: o.maxLength as number,
    systemPrompt: o.systemPrompt === false ? null : (o.systemPrompt as string),
    seed: o.seed as number,
    device: o.device as string,
    quiet: Boolean(o.quiet),
  };
}
