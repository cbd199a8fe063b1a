// `svdlora synthesize-teacher` (step 2a).
import type { Command } from "commander";
import { SYNTHESIZE_DEFAULTS, synthesizeStep } from "../pipeline/synthesize.js";
import * as arg from "./args.js";

export function registerSynthesize(program: Command): void {
  const d = SYNTHESIZE_DEFAULTS;
  program
    .command("synthesize-teacher")
    .description(
      "build a rank-K teacher ΔW from a trained LoRA adapter (kept spectrum + exponential tail + calibrated noise), stored factored",
    )
    .option("--lora-adapter <dir>", "the baseline's PEFT adapter", "training_results/final_model_random")
    .option("--target-rank <K>", "rank of the teacher", arg.positiveInt, d.targetRank)
    .option("--noise-scale <x>", "‖ΔW_synth − ΔW_clean‖_F / ‖ΔW_clean‖_F", arg.nonNegative, d.noiseScale)
    .option("--decay <λ>", "tail σ_{r+j} = σ_r·e^(−λj)", arg.positiveNumber, d.decay)
    .option("--seed <n>", "random seed", arg.int, d.seed)
    .option("--output-dir <dir>", "output directory", "synthesized_teacher")
    .action(async (o) => {
      const out = await synthesizeStep({
        loraAdapter: o.loraAdapter,
        outputDir: o.outputDir,
        targetRank: o.targetRank,
        noiseScale: o.noiseScale,
        decay: o.decay,
        seed: o.seed,
      });
      console.log(`synthesized ${out.modules} modules in ${out.seconds.toFixed(2)} s`);
      console.log(`delta:  ${out.deltaFile}\nreport: ${out.reportFile}\nplots:  ${out.plotFile}`);
    });
}
