// `svdlora train-full`: full-parameter fine-tune of a small model, whose real ΔW feeds `svdlora svd`.
import type { Command } from "commander";
import { resolveBaseModel } from "../hf/hub.js";
import { TRAIN_FULL_DEFAULTS, trainFullStep } from "../pipeline/train-full.js";
import { addTrainingFlags, trainingFlagValues } from "./training-flags.js";

export function registerTrainFull(program: Command): void {
  const d = TRAIN_FULL_DEFAULTS;
  addTrainingFlags(
    program
      .command("train-full")
      .description(
        "full-parameter fine-tune (small models: fp32 AdamW needs ~16 bytes per parameter) and save a Hugging Face model directory",
      ),
    d,
  )
    .option(
      "--output-dir <dir>",
      "the fine-tuned model directory (float32 weights, tokenizer, training_log_full.csv, train_full_summary.json)",
      "full_finetune/model",
    )
    .action(async (o) => {
      const flags = trainingFlagValues(o);
      const evalData = flags.evalData;
      const r = await trainFullStep({ ...d, ...flags, baseModel: await resolveBaseModel(o.baseModel), outputDir: o.outputDir });
      console.log(
        `fine-tuned all ${r.parameters.toLocaleString("en-US")} parameters: ${r.steps} steps on ${r.samples} samples (${r.tokens} tokens) in ${r.seconds.toFixed(1)} s`,
      );
      console.log(`train loss ${r.firstLoss.toFixed(4)} (first step) → ${r.finalLoss.toFixed(4)} (last step)`);
      if (r.evalLossBefore !== null)
        console.log(`eval loss  ${r.evalLossBefore.toFixed(4)} → ${r.evalLossAfter!.toFixed(4)} (${evalData})`);
      if (r.truncated) console.log(`${r.truncated} samples were longer than --max-length and were truncated`);
      console.log(`model:   ${r.modelDir}\nlog:     ${r.logPath}\nsummary: ${r.summaryPath}`);
      console.log(`next:    svdlora svd --finetuned-model ${o.outputDir} --base-model ${o.baseModel}`);
    });
}
