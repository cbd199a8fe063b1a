// `svdlora train-full`: full-parameter fine-tune of a small model, whose real ΔW feeds `svdlora svd`.
import type { Command } from "commander";
import { resolveBaseModel } from "../hf/hub.js";
import { FULL_TRAINING } from "../train/settings.js";
import { withInterrupts } from "./interrupt.js";
import { println } from "./io.js";
import type { Cli } from "./main.js";
import { addSettingFlags, checkDevice, givenSettings } from "./settings.js";

// Settings a full fine-tune has no use for, or that only one process runs.
const { gpus: _g, ...SCHEMA } = FULL_TRAINING;

export function registerTrainFull(program: Command, cli: Cli): void {
  const cmd = program
    .command("train-full")
    .description("full-parameter fine-tune (small models: fp32 AdamW needs ~16 bytes per parameter) and save a Hugging Face model folder")
    .option("--config <file>", "settings from a JSON or YAML file; flags override it");
  addSettingFlags(cmd, SCHEMA).action(async () => {
    const given = givenSettings(cmd, SCHEMA);
    const device = (given.device as string | undefined) ?? "cpu";
    await checkDevice(cmd, device);
    if (given.baseModel !== undefined) given.baseModel = await resolveBaseModel(given.baseModel as string);
    const { trainFullRun } = await import("../pipeline/train-full.js");
    const { terminalEvents } = await import("./progress.js");
    const events = terminalEvents(cli.io.stderr, { quiet: Boolean(given.quiet) });
    const r = await withInterrupts(cli.io, (signal) => trainFullRun(given, { signal, events }));
    const out = (line: string) => println(cli.io.stdout, line);
    out(
      `fine-tuned all ${r.trainableParameters.toLocaleString("en-US")} parameters: ${r.steps} steps on ${r.samples} samples (${r.tokens} tokens) in ${r.seconds.toFixed(1)} s`,
    );
    out(`train loss ${r.initialLoss.toFixed(4)} (first step) → ${r.finalLoss.toFixed(4)} (mean of the last epoch)`);
    if (r.evalLosses.length > 1) out(`held-out loss ${r.evalLosses[0].loss.toFixed(4)} → ${r.evalLosses.at(-1)!.loss.toFixed(4)}`);
    if (r.truncated) out(`${r.truncated} samples were longer than --max-length and were truncated`);
    out(`model:   ${r.modelDir}\nlog:     ${r.logPath} (and .jsonl)\nsummary: ${r.summaryPath}`);
    out(`watch:   tensorboard --logdir ${r.modelDir}`);
    out(`next:    svdlora svd --finetuned-model ${r.modelDir} --base-model ${given.baseModel ?? FULL_TRAINING.baseModel.default}`);
  });
}
