// A small model folder for the tests of what happens around training — files, logs, locks, runs
// trained together or resumed — where the embedded model's size (4 layers of width 256) tests
// nothing and costs most of the time: tinyQwen2 at width 64, random weights, the embedded model's
// tokenizer and special tokens. Its losses still fall as a LoRA trains, from about ln(vocabulary).
import fs from "node:fs";
import path from "node:path";
import { parseModelConfig } from "../src/hf/config.js";
import { randomCausalLM } from "../src/model/loader.js";
import { copyTokenizerFiles, saveCausalLM } from "../src/model/save.js";
import { EMBEDDED_MODEL } from "../src/paths.js";
import * as torch from "../src/torch/index.js";
import { tinyQwen2 } from "./helpers.js";

/**
 * Writes the small model into dir/small-model (once) and returns that path. Its weights are drawn
 * after torch.manualSeed(0), so they are the same bytes every time (and libtorch's generator is left
 * seeded).
 */
export function smallModel(dir: string): string {
  const out = path.join(dir, "small-model");
  if (fs.existsSync(out)) return out;
  const embedded = JSON.parse(fs.readFileSync(path.join(EMBEDDED_MODEL, "config.json"), "utf8"));
  const keep = ["vocab_size", "max_position_embeddings", "bos_token_id", "eos_token_id", "pad_token_id"];
  const config = tinyQwen2({ hidden_size: 64, intermediate_size: 128, ...Object.fromEntries(keep.map((k) => [k, embedded[k]])) });
  torch.manualSeed(0);
  const model = randomCausalLM(parseModelConfig(config));
  try {
    fs.mkdirSync(out);
    saveCausalLM(model, out);
    copyTokenizerFiles(EMBEDDED_MODEL, out);
  } finally {
    torch.dispose([...model.namedWeights().values()]);
  }
  return out;
}
