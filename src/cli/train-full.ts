// `svdlora train-full`: full-parameter fine-tune of a small model, whose real ΔW feeds `svdlora svd`.
import path from "node:path";
import type { Command } from "commander";
import { resolveBaseModel } from "../hf/hub.js";
import { EMBEDDED_EVAL, EMBEDDED_MODEL, EMBEDDED_TRAIN } from "../paths.js";
import { TRAIN_FULL_DEFAULTS, trainFullStep } from "../pipeline/train-full.js";
import { SCHEDULE_KINDS } from "../train/schedule.js";
import * as arg from "./args.js";

export function registerTrainFull(program: Command): void {
  const d = TRAIN_FULL_DEFAULTS;
  program
    .command("train-full")
    .description("full-parameter fine-tune (small models: fp32 AdamW needs ~16 bytes per parameter) and save a Hugging Face model directory")
    .option("--base-model <dir|hub-id>", "model directory or Hugging Face hub id (from the local cache)", EMBEDDED_MODEL)
    .option("--train-data <file>", "JSON array or JSONL, the same formats as `svdlora train`", EMBEDDED_TRAIN)
    .option("--eval-data <file>", "held-out data for the loss before and after (default: the embedded eval set with the embedded train set)")
    .option("--epochs <n>", "passes over the training data", arg.positiveInt, d.epochs)
    .option("--batch-size <n>", "samples per optimizer step", arg.positiveInt, d.batchSize)
    .option("--learning-rate <lr>", "peak learning rate (AdamW; full fine-tunes want less than LoRA)", arg.positiveNumber, d.learningRate)
    .option("--warmup-ratio <f>", "share of steps for linear warmup", arg.fraction, d.warmupRatio)
    .option("--lr-scheduler <kind>", SCHEDULE_KINDS.join(" | "), arg.oneOf(SCHEDULE_KINDS), d.scheduler)
    .option("--weight-decay <wd>", "AdamW weight decay", arg.nonNegative, d.weightDecay)
    .option("--max-grad-norm <n>", "gradient clipping norm", arg.positiveNumber, d.maxGradNorm)
    .option("--max-length <n>", "longest sample in tokens (longer ones are truncated and counted)", arg.positiveInt, d.maxLength)
    .option("--system-prompt <text>", "system prompt for samples without one", d.systemPrompt ?? undefined)
    .option("--no-system-prompt", "add no system prompt")
    .option("--seed <n>", "random seed", arg.int, d.seed)
    .option("--device <device>", "cpu | cuda | cuda:N", arg.device, d.device)
    .option("--output-dir <dir>", "the fine-tuned model directory (float32 weights, tokenizer, training_log_full.csv, train_full_summary.json)", "full_finetune/model")
    .option("--quiet", "no progress output")
    .action(async (o) => {
      const baseModel = await resolveBaseModel(o.baseModel);
      const evalData = o.evalData ?? (path.resolve(o.trainData) === path.resolve(EMBEDDED_TRAIN) ? EMBEDDED_EVAL : undefined);
      const r = await trainFullStep({
        ...d,
        baseModel,
        trainData: o.trainData,
        evalData,
        outputDir: o.outputDir,
        epochs: o.epochs,
        batchSize: o.batchSize,
        learningRate: o.learningRate,
        warmupRatio: o.warmupRatio,
        scheduler: o.lrScheduler,
        weightDecay: o.weightDecay,
        maxGradNorm: o.maxGradNorm,
        maxLength: o.maxLength,
        systemPrompt: o.systemPrompt === false ? null : o.systemPrompt,
        seed: o.seed,
        device: o.device,
        quiet: Boolean(o.quiet),
      });
      console.log(`fine-tuned all ${r.parameters.toLocaleString("en-US")} parameters: ${r.steps} steps on ${r.samples} samples (${r.tokens} tokens) in ${r.seconds.toFixed(1)} s`);
      console.log(`train loss ${r.firstLoss.toFixed(4)} (first step) → ${r.finalLoss.toFixed(4)} (last step)`);
      if (r.evalLossBefore !== null) console.log(`eval loss  ${r.evalLossBefore.toFixed(4)} → ${r.evalLossAfter!.toFixed(4)} (${evalData})`);
      if (r.truncated) console.log(`${r.truncated} samples were longer than --max-length and were truncated`);
      console.log(`model:   ${r.modelDir}\nlog:     ${r.logPath}\nsummary: ${r.summaryPath}`);
      console.log(`next:    svdlora svd --finetuned-model ${o.outputDir} --base-model ${o.baseModel}`);
    });
}
