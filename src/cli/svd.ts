// `svdlora svd` (step 2b).
import type { Command } from "commander";
import { resolveBaseModel } from "../hf/hub.js";
import { targetNames } from "../hf/peft.js";
import { svdStep } from "../pipeline/svd.js";
import * as arg from "./args.js";

export function registerSvd(program: Command): void {
  program
    .command("svd")
    .description("truncated SVD of a teacher ΔW at the LoRA rank: metrics, figures, and SVD-init factors as a PEFT adapter")
    .option("--synthesized-delta <file>", "teacher written by synthesize-teacher")
    .option("--lora-adapter <dir>", "any PEFT LoRA adapter (ΔW = s·B·A)")
    .option("--finetuned-model <dir>", "a fully fine-tuned model: ΔW = W_finetuned − W_base (needs --base-model)")
    .option("--base-model <dir|hub-id>", "the base model (recorded in the factors' adapter config)")
    .option("--target-modules <list>", "modules to take from --finetuned-model", arg.targets, ["q_proj", "v_proj"])
    .option("--rank <r>", "LoRA rank of the factors", arg.positiveInt, 16)
    .option("--lora-alpha <alpha>", "alpha of the LoRA to be trained from the factors (s = α/r)", arg.positiveNumber, 16)
    .option("--rslora", "rank-stabilized scaling α/√r")
    .option(
      "--factor-split <split>",
      "seed (B = UΣ/s, A = Vᵀ) | balanced (√ on both sides)",
      arg.oneOf(["seed", "balanced"] as const),
      "seed",
    )
    .option("--output-dir <dir>", "output directory", "svd_results")
    .action(async (o) => {
      if (!o.synthesizedDelta && !o.loraAdapter && !o.finetunedModel)
        o.synthesizedDelta = "synthesized_teacher/synthesized_delta_rank64.safetensors";
      const baseModel = o.baseModel ? await resolveBaseModel(o.baseModel) : undefined;
      const targets = targetNames(o.targetModules);
      const out = await svdStep({
        synthesizedDelta: o.synthesizedDelta,
        loraAdapter: o.loraAdapter,
        finetunedModel: o.finetunedModel,
        baseModel,
        targetModules: targets,
        rank: o.rank,
        alpha: o.loraAlpha,
        rslora: Boolean(o.rslora),
        split: o.factorSplit,
        outputDir: o.outputDir,
      });
      const s = out.summary;
      console.log(
        `rank ${o.rank}: mean relative error ${s.relativeError.mean.toFixed(4)}, mean energy ratio ${s.energyRatio.mean.toFixed(4)}; ${s.meetingBar}/${s.modules} modules meet error < 0.1 and energy > 0.9`,
      );
      console.log(`factors:  ${out.factorsDir}\nanalysis: ${out.analysisFile}\nreport:   ${out.reportFile}\nfigure:   ${out.plotFile}`);
    });
}
