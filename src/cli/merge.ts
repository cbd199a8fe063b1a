// `svdlora merge`: folds a LoRA adapter into its base model and writes a plain model directory.
import type { Command } from "commander";
import { resolveBaseModel } from "../hf/hub.js";
import { loadAdapter } from "../hf/peft.js";
import { loadCausalLM } from "../model/loader.js";
import { loadLora, mergeLora } from "../model/lora.js";
import { copyTokenizerFiles, saveCausalLM } from "../model/save.js";
import * as torch from "../torch/index.js";
import { replaceDirectoryAtomic } from "../util/atomic.js";
import * as arg from "./args.js";

export function registerMerge(program: Command): void {
  program
    .command("merge")
    .description("merge a LoRA adapter into the base weights (W + s·B·A) and write a Hugging Face model directory")
    .requiredOption("--base-model <dir|hub-id>", "model directory or Hugging Face hub id")
    .requiredOption("--adapter <dir>", "PEFT LoRA adapter directory")
    .requiredOption("--output-dir <dir>", "where the merged model goes")
    .option(
      "--dtype <dtype>",
      "dtype of the saved weights (default: the base model's)",
      arg.oneOf(["float32", "bfloat16", "float16"] as const),
    )
    .action(async (o) => {
      const base = await resolveBaseModel(o.baseModel);
      // Merge in float32, then save in the requested dtype.
      const model = loadCausalLM(base, { dtype: "float32" });
      const { config, weights } = loadAdapter(o.adapter);
      loadLora(model, config, weights, false);
      torch.dispose([...weights.values()]);
      const merged = mergeLora(model);
      const dtype = o.dtype ?? model.config.torchDtype ?? "float32";
      replaceDirectoryAtomic(o.outputDir, (dir) => {
        saveCausalLM(model, dir, dtype);
        copyTokenizerFiles(base, dir);
      });
      console.log(`merged ${merged} LoRA modules into ${o.outputDir} (${dtype})`);
    });
}
