// `svdlora eval`: held-out loss and exact-answer accuracy of a base model, with or without an adapter.
import type { Command } from "commander";
import { loadDataset } from "../data/dataset.js";
import { QWEN25_MATH_SYSTEM_PROMPT, formatSamples } from "../data/format.js";
import { resolveBaseModel } from "../hf/hub.js";
import { loadAdapter } from "../hf/peft.js";
import { loadTokenizer } from "../hf/tokenizer.js";
import { loadCausalLM } from "../model/loader.js";
import { type LoRA, loadLora } from "../model/lora.js";
import { EMBEDDED_EVAL, EMBEDDED_MODEL } from "../paths.js";
import * as torch from "../torch/index.js";
import { evaluateAccuracy, evaluateLoss } from "../train/evaluate.js";
import { TrainingProgress } from "../train/progress.js";
import { defaultDtype, usesPacking } from "../train/trainer.js";
import { writeFileAtomic } from "../util/atomic.js";
import * as arg from "./args.js";

export function registerEval(program: Command): void {
  program
    .command("eval")
    .description("held-out loss and exact-answer accuracy (greedy generation) of a model, with or without a LoRA adapter")
    .option("--base-model <dir|hub-id>", "model directory or Hugging Face hub id", EMBEDDED_MODEL)
    .option("--adapter <dir>", "PEFT LoRA adapter directory (omit to evaluate the base model)")
    .option("--data <file>", "evaluation data (same shapes as --train-data)", EMBEDDED_EVAL)
    .option("--limit <n>", "evaluate only the first n samples", arg.positiveInt)
    .option("--max-new-tokens <n>", "longest generated answer", arg.positiveInt, 384)
    .option("--max-length <n>", "longest sample for the loss", arg.positiveInt, 1024)
    .option("--batch-size <n>", "samples per loss batch", arg.positiveInt, 8)
    .option("--no-generate", "loss only, no generation")
    .option("--system-prompt <text>", "system prompt for samples without one", QWEN25_MATH_SYSTEM_PROMPT)
    .option("--no-system-prompt", "add no system prompt")
    .option("--device <device>", "cpu | cuda | cuda:N", arg.device, "cpu")
    .option("--output <file>", "write the results (and every generated answer) as JSON")
    .option("--quiet", "no progress output")
    .action(async (o) => {
      const baseModel = await resolveBaseModel(o.baseModel);
      const tokenizer = await loadTokenizer(baseModel);
      const samples = loadDataset(o.data).slice(0, o.limit);
      const systemPrompt = o.systemPrompt === false ? undefined : o.systemPrompt;
      const model = loadCausalLM(baseModel, { device: o.device, dtype: defaultDtype(o.device) });
      let loras = new Map<string, LoRA>();
      if (o.adapter) {
        const { config, weights } = loadAdapter(o.adapter);
        loras = loadLora(model, config, weights, false);
        torch.dispose([...weights.values()]);
      }
      const { encoded, stats } = formatSamples(samples, tokenizer, { systemPrompt, maxLength: o.maxLength });
      if (encoded.length === 0)
        throw new Error(`${o.data}: no sample has answer tokens left after formatting (is --max-length ${o.maxLength} too small?)`);
      const padId = tokenizer.pad?.id ?? tokenizer.eos?.id ?? 0;
      const loss = evaluateLoss(model, loras, encoded, {
        batchSize: o.batchSize,
        padId,
        device: o.device,
        packing: usesPacking({ device: o.device }),
      });
      console.log(
        `eval loss ${loss.toFixed(4)} over ${encoded.length} samples (${stats.lossTokens} answer tokens)${truncation(stats, o.maxLength)}`,
      );
      let accuracy = null;
      if (o.generate) {
        const progress = new TrainingProgress({ totalSteps: samples.length, label: "generate", quiet: o.quiet });
        accuracy = evaluateAccuracy(model, tokenizer, samples, {
          systemPrompt,
          maxNewTokens: o.maxNewTokens,
          onProgress: (done) => progress.update({ step: done }),
        });
        progress.stop();
        const pct = accuracy.total ? ((100 * accuracy.correct) / accuracy.total).toFixed(1) : "n/a";
        console.log(
          `accuracy  ${accuracy.correct}/${accuracy.total} = ${pct} %${accuracy.skipped ? ` (${accuracy.skipped} samples had no boxed answer to check)` : ""}`,
        );
      }
      if (o.output) {
        const out = { baseModel, adapter: o.adapter ?? null, data: o.data, samples: samples.length, loss, accuracy };
        writeFileAtomic(o.output, `${JSON.stringify(out, null, 2)}\n`);
        console.log(`results: ${o.output}`);
      }
    });
}

/** "; 4 truncated to --max-length 90, 2 skipped (no answer token left)", or "" when neither happened. */
function truncation(stats: { truncated: number; droppedEmpty: number }, maxLength: number): string {
  const parts = [];
  if (stats.truncated) parts.push(`${stats.truncated} truncated to --max-length ${maxLength}`);
  if (stats.droppedEmpty) parts.push(`${stats.droppedEmpty} skipped (no answer token left)`);
  return parts.length ? `; ${parts.join(", ")}` : "";
}
