// `svdlora pretrain`: makes a tiny model like the embedded one from scratch (tokenizer and weights).
import path from "node:path";
import type { Command } from "commander";
import { PACKAGE_ROOT } from "../paths.js";
import { PRETRAIN } from "../pipeline/settings.js";
import { defaults } from "../util/settings.js";
import { withInterrupts } from "./interrupt.js";
import { println } from "./io.js";
import type { Cli } from "./main.js";
import { addSettingFlags, checkDevice, givenSettings } from "./settings.js";

export function registerPretrain(program: Command, cli: Cli): void {
  const cmd = program
    .command("pretrain")
    .description("train a small Qwen2-architecture model from scratch on generated probability text (how models/tiny-prob was made)");
  addSettingFlags(cmd, PRETRAIN).action(async () => {
    const o = { ...defaults(PRETRAIN), ...givenSettings(cmd, PRETRAIN) } as Required<ReturnType<typeof defaults<typeof PRETRAIN>>>;
    await checkDevice(cmd, o.device);
    // The package's own model is never replaced by accident: writing there needs the path spelled out.
    const shipped = path.resolve(PACKAGE_ROOT, "models");
    if (path.resolve(o.outputDir).startsWith(shipped + path.sep))
      throw new Error(
        `--output-dir ${o.outputDir} is inside svdlora's own models/ folder: choose another folder (copy the result there yourself if you mean to replace the shipped model)`,
      );
    const { pretrainTinyModel } = await import("../pipeline/pretrain.js");
    const { terminalEvents } = await import("./progress.js");
    const events = terminalEvents(cli.io.stderr, { quiet: o.quiet });
    const summary = await withInterrupts(cli.io, (signal) => pretrainTinyModel({ ...o, signal, events }));
    println(cli.io.stdout, JSON.stringify(summary, null, 2));
    println(cli.io.stdout, `model written to ${o.outputDir}`);
  });
}
