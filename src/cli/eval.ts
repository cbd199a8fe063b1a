// `svdlora eval`: held-out loss and exact-answer accuracy of a base model, with or without an adapter.
import path from "node:path";
import type { Command } from "commander";
import { formatSamples } from "../data/format.js";
import { resolveBaseModel } from "../hf/hub.js";
import { EMBEDDED_EVAL } from "../paths.js";
import { LORA, TRAINING } from "../train/settings.js";
import { writeFileAtomic } from "../util/atomic.js";
import { checkOutputPath } from "../util/files.js";
import { assertOurs, writeOutputs } from "../util/outputs.js";
import { bool, defaults, int, pick, text } from "../util/settings.js";
import { println } from "./io.js";
import type { Cli } from "./main.js";
import { addSettingFlags, checkDevice, givenSettings } from "./settings.js";

const SCHEMA = {
  ...pick(TRAINING, ["baseModel", "maxLength", "systemPrompt", "device", "quiet"]),
  adapter: { kind: text("<dir>"), help: "PEFT LoRA adapter folder (omit to evaluate the base model)" },
  data: { kind: text("<file>"), help: "evaluation data (same shapes as --train-data)", default: EMBEDDED_EVAL },
  limit: { kind: int({ min: 1 }), help: "evaluate only the first n samples" },
  batchSize: { ...TRAINING.batchSize, help: "samples per loss batch", default: 8 },
  generate: { kind: bool(), help: "answer each question by greedy decoding and check it", default: true },
  maxNewTokens: LORA.maxNewTokens,
  output: { kind: text("<file>"), help: "write the results (and every generated answer) as JSON" },
};

export function registerEval(program: Command, cli: Cli): void {
  const cmd = program
    .command("eval")
    .description("held-out loss and exact-answer accuracy (greedy generation) of a model, with or without a LoRA adapter");
  addSettingFlags(cmd, SCHEMA).action(async () => {
    const given = givenSettings(cmd, SCHEMA);
    const o = { ...defaults(SCHEMA), ...given } as Required<ReturnType<typeof defaults<typeof SCHEMA>>> & {
      adapter?: string;
      limit?: number;
      output?: string;
    };
    await checkDevice(cmd, o.device);
    if (!o.generate && given.maxNewTokens !== undefined)
      throw new Error("--max-new-tokens bounds generated answers, and --no-generate turns generation off: drop one of them");
    const { loadDataset } = await import("../data/dataset.js");
    const { loadAdapter } = await import("../hf/peft.js");
    const { loadTokenizer } = await import("../hf/tokenizer.js");
    const { loadCausalLM } = await import("../model/loader.js");
    const { detachLora, loadLora } = await import("../model/lora.js");
    const torch = await import("../torch/index.js");
    const { evaluateAccuracy, evaluateLoss } = await import("../train/evaluate.js");
    const { defaultDtype } = await import("../train/trainer.js");
    const { TrainingProgress } = await import("./progress.js");
    // The output path is checked before the evaluation, not after it.
    if (o.output) {
      checkOutputPath(o.output, "results file");
      assertOurs(o.output); // a file svdlora did not write is never replaced
    }
    const baseModel = await resolveBaseModel(o.baseModel);
    const tokenizer = await loadTokenizer(baseModel);
    const samples = loadDataset(o.data).slice(0, o.limit);
    const systemPrompt = o.systemPrompt ?? undefined;
    const model = loadCausalLM(baseModel, { device: o.device, dtype: defaultDtype(o.device) });
    // The model is freed whatever happens (a refused adapter, an empty data set), not left to the garbage collector.
    let loss: number;
    let accuracy = null;
    try {
      if (o.adapter) {
        const { config, weights } = loadAdapter(o.adapter);
        try {
          loadLora(model, config, weights, false);
        } finally {
          torch.dispose([...weights.values()]);
        }
      }
      const { encoded, stats } = formatSamples(samples, tokenizer, { systemPrompt, maxLength: o.maxLength });
      if (encoded.length === 0)
        throw new Error(`${o.data}: no sample has answer tokens left after formatting (is --max-length ${o.maxLength} too small?)`);
      const padId = tokenizer.pad?.id ?? tokenizer.eos?.id ?? 0;
      loss = evaluateLoss(model, encoded, { batchSize: o.batchSize, padId, device: o.device, packing: o.device.startsWith("cuda") });
      println(
        cli.io.stdout,
        `held-out loss ${loss.toFixed(4)} over ${encoded.length} samples (${stats.lossTokens} answer tokens)${truncation(stats, o.maxLength)}`,
      );
      if (o.generate) {
        const progress = new TrainingProgress({ totalSteps: samples.length, label: "generate", quiet: o.quiet, stream: cli.io.stderr });
        accuracy = evaluateAccuracy(model, tokenizer, samples, {
          systemPrompt,
          maxLength: o.maxLength,
          maxNewTokens: o.maxNewTokens,
          onProgress: (done) => progress.update({ step: done }),
        });
        progress.stop();
        const pct = accuracy.total ? ((100 * accuracy.correct) / accuracy.total).toFixed(1) : "n/a";
        println(
          cli.io.stdout,
          `accuracy  ${accuracy.correct}/${accuracy.total} = ${pct} %${accuracy.skipped ? ` (${accuracy.skipped} samples had no boxed answer to check)` : ""}${accuracy.tooLong ? ` (${accuracy.tooLong} prompts longer than --max-length could hold were left out)` : ""}`,
        );
      }
    } finally {
      detachLora(model);
      torch.dispose([...model.namedWeights().values()]);
    }
    if (o.output) {
      const results = { baseModel, adapter: o.adapter ?? null, data: o.data, samples: samples.length, loss, accuracy };
      const name = path.basename(o.output);
      await writeOutputs(
        { root: path.dirname(o.output), name: "eval", by: "eval", outputs: [name] },
        (staged) => writeFileAtomic(staged(name), `${JSON.stringify(results, null, 2)}\n`),
        (line) => println(cli.io.stderr, `svdlora: ${line}`),
      );
      println(cli.io.stdout, `results: ${o.output}`);
    }
  });
}

/** "; 4 truncated to --max-length 90, 2 skipped (no answer token left)", or "" when none of it happened. */
function truncation(stats: { truncated: number; droppedEmpty: number; droppedTooLong: number }, maxLength: number): string {
  const parts = [];
  if (stats.droppedTooLong) parts.push(`${stats.droppedTooLong} left out (longer than --max-length ${maxLength} could hold)`);
  if (stats.truncated) parts.push(`${stats.truncated} truncated to --max-length ${maxLength}`);
  if (stats.droppedEmpty) parts.push(`${stats.droppedEmpty} skipped (no answer token left)`);
  return parts.length ? `; ${parts.join(", ")}` : "";
}
