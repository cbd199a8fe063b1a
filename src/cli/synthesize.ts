// `svdlora synthesize-teacher` (step 2a of docs/experiment.md).
import type { Command } from "commander";
import { TEACHER } from "../pipeline/settings.js";
import { TRAINING } from "../train/settings.js";
import { defaults, text } from "../util/settings.js";
import { println } from "./io.js";
import type { Cli } from "./main.js";
import { addSettingFlags, givenSettings } from "./settings.js";

const SCHEMA = {
  loraAdapter: { kind: text("<dir>"), help: "the baseline's PEFT adapter", default: "training_results/final_model_random" },
  ...TEACHER,
  seed: TRAINING.seed,
  outputDir: { kind: text("<dir>"), help: "output folder", default: "synthesized_teacher" },
};

export function registerSynthesize(program: Command, cli: Cli): void {
  const cmd = program
    .command("synthesize-teacher")
    .description(
      "build a rank-K teacher ΔW from a trained LoRA adapter (kept spectrum + exponential tail + calibrated noise), stored factored",
    );
  addSettingFlags(cmd, SCHEMA).action(async () => {
    const o = { ...defaults(SCHEMA), ...givenSettings(cmd, SCHEMA) } as Required<ReturnType<typeof defaults<typeof SCHEMA>>>;
    const { synthesizeStep } = await import("../pipeline/synthesize.js");
    const out = await synthesizeStep(o, (line) => println(cli.io.stderr, `svdlora: ${line}`));
    println(cli.io.stdout, `synthesized ${out.modules} modules in ${formatSeconds(out.seconds)}`);
    println(cli.io.stdout, `delta:  ${out.deltaFile}\nreport: ${out.reportFile}\nplots:  ${out.plotFile}`);
  });
}

/** Seconds as people read them: "0.049 s", "3.2 s", "84 s". */
export const formatSeconds = (s: number) => (s < 1 ? `${s.toPrecision(2)} s` : s < 10 ? `${s.toFixed(1)} s` : `${Math.round(s)} s`);
