// `svdlora pretrain`: makes the embedded tiny model from scratch (tokenizer and weights).
import type { Command } from "commander";
import { PRETRAIN_DEFAULTS, pretrainTinyModel } from "../pipeline/pretrain.js";
import * as arg from "./args.js";

export function registerPretrain(program: Command): void {
  const d = PRETRAIN_DEFAULTS;
  program
    .command("pretrain")
    .description("train a small Qwen2-architecture model from scratch on generated probability text (how models/tiny-prob is made)")
    .option("--output-dir <dir>", "model directory to write", "models/tiny-prob")
    .option("--samples <n>", "generated problems in the corpus", arg.positiveInt, d.samples)
    .option("--chat-fraction <f>", "share of samples in ChatML form", arg.fraction, d.chatFraction)
    .option("--merges <n>", "BPE merges learned for the tokenizer", arg.int, d.merges)
    .option("--hidden <n>", "hidden size", arg.positiveInt, d.size.hidden)
    .option("--layers <n>", "decoder layers", arg.positiveInt, d.size.layers)
    .option("--heads <n>", "attention heads", arg.positiveInt, d.size.heads)
    .option("--kv-heads <n>", "key/value heads", arg.positiveInt, d.size.kvHeads)
    .option("--intermediate <n>", "MLP size", arg.positiveInt, d.size.intermediate)
    .option("--epochs <n>", "passes over the corpus", arg.positiveInt, d.epochs)
    .option("--batch-size <n>", "samples per step", arg.positiveInt, d.batchSize)
    .option("--learning-rate <lr>", "peak learning rate", arg.positiveNumber, d.learningRate)
    .option("--max-length <n>", "longest sample in tokens", arg.positiveInt, d.maxLength)
    .option("--seed <n>", "random seed", arg.int, d.seed)
    .option("--device <device>", "cpu | cuda | cuda:N", arg.device, d.device)
    .option("--quiet", "no progress output")
    .action(async (o) => {
      const summary = await pretrainTinyModel({
        outputDir: o.outputDir,
        samples: o.samples,
        chatFraction: o.chatFraction,
        merges: o.merges,
        size: { hidden: o.hidden, layers: o.layers, heads: o.heads, kvHeads: o.kvHeads, intermediate: o.intermediate },
        epochs: o.epochs,
        batchSize: o.batchSize,
        learningRate: o.learningRate,
        maxLength: o.maxLength,
        seed: o.seed,
        device: o.device,
        quiet: Boolean(o.quiet),
      });
      console.log(JSON.stringify(summary, null, 2));
      console.log(`model written to ${o.outputDir}`);
    });
}
