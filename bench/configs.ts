// The model architectures the benches build with random weights (bench/configs/*.json), read once
// here, and the embedded tiny model with its training samples.
import fs from "node:fs";
import { loadDataset } from "../src/data/dataset.js";
import { formatSamples } from "../src/data/format.js";
import type { Encoded } from "../src/data/types.js";
import { loadTokenizer } from "../src/hf/tokenizer.js";
import { ArmGenerators } from "../src/model/arms.js";
import { loadCausalLM } from "../src/model/loader.js";
import { type LoraSettings, armAdapters } from "../src/model/lora.js";
import type { CausalLM } from "../src/model/qwen2.js";
import { EMBEDDED_MODEL, EMBEDDED_TRAIN } from "../src/paths.js";
import * as torch from "../src/torch/index.js";
import { AdamW } from "../src/train/optim.js";

/** The Qwen2.5-Math-7B architecture's config.json. */
export const MATH_7B_CONFIG = new URL("../../bench/configs/qwen2.5-math-7b.json", import.meta.url).pathname;

/** A config.json's raw keys, as Hugging Face writes them. */
export const readConfigFile = (file: string): Record<string, unknown> => JSON.parse(fs.readFileSync(file, "utf8"));

/** The embedded tiny model (bfloat16 on CUDA, float32 elsewhere) and its 81 training samples, chat-formatted. */
export async function tinyWorkload(device: string): Promise<{ model: CausalLM; samples: Encoded[]; padId: number }> {
  const tokenizer = await loadTokenizer(EMBEDDED_MODEL);
  const { encoded } = formatSamples(loadDataset(EMBEDDED_TRAIN), tokenizer, { maxLength: 1024 });
  const model = loadCausalLM(EMBEDDED_MODEL, { dtype: device.startsWith("cuda") ? "bfloat16" : "float32", device });
  return { model, samples: encoded, padId: tokenizer.pad?.id ?? tokenizer.eos?.id ?? 0 };
}

/**
 * `arms` random-init LoRA arms attached to the model (arm k's factors drawn after manualSeed(k + 1)),
 * each with its own AdamW (lr 2e-4, weight decay 0.01), as the concurrent benches train them;
 * `detach` takes them off and frees them.
 */
export function attachRandomArms(
  model: CausalLM,
  lora: LoraSettings,
  arms: number,
  device: string,
): { optimizers: AdamW[]; detach(): void } {
  const generators = new ArmGenerators(device);
  const adapters = Array.from({ length: arms }, (_, k) => {
    torch.manualSeed(k + 1);
    const a = armAdapters(model, lora, "random");
    generators.add();
    return a;
  });
  model.attachArms(adapters, generators);
  const optimizers = adapters.map(
    (a) =>
      new AdamW(
        [...a.values()].flatMap((x) => x.lora.parameters()),
        { lr: 2e-4, weightDecay: 0.01 },
      ),
  );
  return {
    optimizers,
    detach: () => {
      model.detachArms();
      for (const o of optimizers) o.dispose();
      for (const a of adapters) for (const x of a.values()) x.lora.dispose();
    },
  };
}
