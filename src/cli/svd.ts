// `svdlora svd` (step 2b of docs/experiment.md).
import type { Command } from "commander";
import { resolveBaseModel } from "../hf/hub.js";
import { targetNames } from "../hf/projections.js";
import { FACTORS } from "../pipeline/settings.js";
import { LORA, TRAINING } from "../train/settings.js";
import { defaults, text } from "../util/settings.js";
import { println } from "./io.js";
import type { Cli } from "./main.js";
import { addSettingFlags, givenSettings } from "./settings.js";

const SCHEMA = {
  synthesizedDelta: { kind: text("<file>"), help: "teacher written by synthesize-teacher (the default source)" },
  loraAdapter: { kind: text("<dir>"), help: "any PEFT LoRA adapter (ΔW = s·B·A)" },
  finetunedModel: { kind: text("<dir>"), help: "a fully fine-tuned model: ΔW = W_finetuned − W_base (needs --base-model)" },
  baseModel: { kind: text("<dir|hub-id>"), help: "the base model (for --finetuned-model, and recorded in the factors' adapter config)" },
  targetModules: { ...LORA.targetModules, help: "modules to take from --finetuned-model" },
  rank: { ...LORA.loraRank, help: "LoRA rank r of the factors", aliases: ["r"] },
  loraAlpha: { ...LORA.loraAlpha, help: "alpha of the LoRA to be trained from the factors (s = α/r)" },
  rslora: LORA.rslora,
  ...FACTORS,
  outputDir: { ...TRAINING.outputDir, default: "svd_results" },
};

export function registerSvd(program: Command, cli: Cli): void {
  const cmd = program
    .command("svd")
    .description("truncated SVD of a teacher ΔW at the LoRA rank: metrics, figures, and SVD-init factors as a PEFT adapter");
  addSettingFlags(cmd, SCHEMA).action(async () => {
    const given = givenSettings(cmd, SCHEMA);
    const o = { ...defaults(SCHEMA), ...given } as ReturnType<typeof defaults<typeof SCHEMA>> &
      Required<
        Pick<ReturnType<typeof defaults<typeof SCHEMA>>, "rank" | "loraAlpha" | "rslora" | "factorSplit" | "outputDir" | "targetModules">
      >;
    if (given.targetModules !== undefined && !o.finetunedModel)
      throw new Error(
        "--target-modules picks the modules of --finetuned-model (a teacher or an adapter brings its own): drop it, or use --finetuned-model",
      );
    if (!o.synthesizedDelta && !o.loraAdapter && !o.finetunedModel)
      o.synthesizedDelta = "synthesized_teacher/synthesized_delta_rank64.safetensors";
    const { svdStep } = await import("../pipeline/svd.js");
    const out = await svdStep(
      {
        synthesizedDelta: o.synthesizedDelta,
        loraAdapter: o.loraAdapter,
        finetunedModel: o.finetunedModel,
        baseModel: o.baseModel ? await resolveBaseModel(o.baseModel) : undefined,
        targetModules: targetNames(o.targetModules),
        rank: o.rank,
        alpha: o.loraAlpha,
        rslora: o.rslora,
        split: o.factorSplit,
        outputDir: o.outputDir,
      },
      (line) => println(cli.io.stderr, `svdlora: ${line}`),
    );
    const s = out.summary;
    println(
      cli.io.stdout,
      `rank ${o.rank}: mean relative error ${s.relativeError.mean.toFixed(4)}, mean energy ratio ${s.energyRatio.mean.toFixed(4)}; ${s.meetingBar}/${s.modules} modules meet error < 0.1 and energy > 0.9`,
    );
    println(
      cli.io.stdout,
      `factors:  ${out.factorsDir}\nanalysis: ${out.analysisFile}\nreport:   ${out.reportFile}\nfigure:   ${out.plotFile}`,
    );
  });
}
