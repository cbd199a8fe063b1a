// Building a CausalLM from a Hugging Face model directory, or with fresh random weights.
import { SafetensorsCheckpoint } from "../hf/checkpoint.js";
import { type ModelConfig, loadModelConfig } from "../hf/config.js";
import * as torch from "../torch/index.js";
import type { DType, Tensor } from "../torch/index.js";
import { CausalLM } from "./qwen2.js";

export interface LoadOptions {
  dtype?: DType;
  device?: string;
}

/** Reads config.json and the safetensors weights (one tensor at a time) into a frozen model. */
export function loadCausalLM(dir: string, o: LoadOptions = {}): CausalLM {
  const config = loadModelConfig(dir);
  const ckpt = SafetensorsCheckpoint.open(dir);
  try {
    const dtype = o.dtype ?? config.torchDtype ?? "float32";
    return new CausalLM(config, (name, shape) => {
      if (!ckpt.has(name)) throw new Error(`${dir}: weight ${name} is missing from the checkpoint`);
      const raw = ckpt.read(name);
      if (`${raw.shape}` !== `${shape}`) throw new Error(`${dir}: weight ${name} has shape [${raw.shape}], config.json implies [${shape}]`);
      const t = torch.keep(raw.to({ dtype, device: o.device ?? "cpu" }));
      if (t !== raw) raw.dispose();
      return t;
    });
  } finally {
    ckpt.close();
  }
}

/** Fresh weights as transformers initializes them: N(0, 0.02) matrices, zero biases, unit norms. */
export function randomCausalLM(config: ModelConfig, o: LoadOptions & { std?: number } = {}): CausalLM {
  const dtype = o.dtype ?? "float32";
  const device = o.device ?? "cpu";
  return new CausalLM(config, (name: string, shape: number[]): Tensor => {
    const t = name.endsWith("norm.weight")
      ? torch.ones(shape, { dtype, device })
      : name.endsWith(".bias")
        ? torch.zeros(shape, { dtype, device })
        : torch.empty(shape, { dtype, device }).normal_(0, o.std ?? 0.02);
    return torch.keep(t);
  });
}
