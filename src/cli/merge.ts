// `svdlora merge`: folds a LoRA adapter into its base model and writes a plain model folder.
import path from "node:path";
import type { Command } from "commander";
import { resolveBaseModel } from "../hf/hub.js";
import type { DType } from "../torch/index.js";
import { TRAINING } from "../train/settings.js";
import { assertReplaceable, replaceDirectoryAtomic } from "../util/atomic.js";
import { checkOutputDir } from "../util/files.js";
import { claimFolder } from "../util/outputs.js";
import { text } from "../util/settings.js";
import { println } from "./io.js";
import type { Cli } from "./main.js";
import { addSettingFlags, givenSettings } from "./settings.js";

const SCHEMA = {
  baseModel: { kind: text("<dir|hub-id>"), help: "model folder or Hugging Face hub id" },
  adapter: { kind: text("<dir>"), help: "PEFT LoRA adapter folder" },
  outputDir: { kind: text("<dir>"), help: "where the merged model goes: a new folder, or one svdlora wrote" },
  dtype: { ...TRAINING.dtype, help: "dtype of the saved weights (default: the base model's)" },
};

export function registerMerge(program: Command, cli: Cli): void {
  const cmd = program
    .command("merge")
    .description("merge a LoRA adapter into the base weights (W + s·B·A) and write a Hugging Face model folder");
  addSettingFlags(cmd, SCHEMA).action(async () => {
    const o = givenSettings(cmd, SCHEMA) as { baseModel?: string; adapter?: string; outputDir?: string; dtype?: DType };
    for (const key of ["baseModel", "adapter", "outputDir"] as const)
      if (!o[key]) throw new Error(`--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)} is required`);
    const outputDir = o.outputDir!;
    checkOutputDir(outputDir, "merged model folder");
    const base = await resolveBaseModel(o.baseModel!);
    const { loadAdapter } = await import("../hf/peft.js");
    const { loadCausalLM } = await import("../model/loader.js");
    const { loadLora, mergeLora } = await import("../model/lora.js");
    const { copyTokenizerFiles, saveCausalLM } = await import("../model/save.js");
    const torch = await import("../torch/index.js");
    const lock = claimFolder(path.dirname(path.resolve(outputDir)), `merge into ${path.basename(outputDir)}`, (line) =>
      println(cli.io.stderr, `svdlora: ${line}`),
    );
    try {
      // The output is checked (new, or svdlora's) before the model is read.
      assertReplaceable(outputDir);
      // Merge in float32, then save in the requested dtype.
      const model = loadCausalLM(base, { dtype: "float32" });
      try {
        const { config, weights } = loadAdapter(o.adapter!);
        let loras: ReturnType<typeof loadLora>;
        try {
          loras = loadLora(model, config, weights, false);
        } finally {
          torch.dispose([...weights.values()]);
        }
        const merged = mergeLora(model);
        for (const l of loras.values()) l.dispose(); // folded into the weights
        const dtype = o.dtype ?? model.config.torchDtype ?? "float32";
        replaceDirectoryAtomic(
          outputDir,
          (dir) => {
            saveCausalLM(model, dir, dtype);
            copyTokenizerFiles(base, dir);
          },
          "merged model",
        );
        println(cli.io.stdout, `merged ${merged} LoRA modules into ${outputDir} (${dtype})`);
      } finally {
        // Freed whatever happens (a refused adapter, a failed write), not left to the garbage collector.
        torch.dispose([...model.namedWeights().values()]);
      }
    } finally {
      lock.release();
    }
  });
}
