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

/**
 * Reads config.json and the safetensors weights into a frozen model, one tensor at a time, each
 * read from its shard straight into memory on the target device (CUDA: through pinned staging
 * buffers); a dtype change happens there too (on the GPU for CUDA, where it is fastest). A weight
 * that is not floating point, or holds a NaN or an infinity, is refused naming the file and tensor.
 */
export function loadCausalLM(dir: string, o: LoadOptions = {}): CausalLM {
  const config = loadModelConfig(dir);
  const ckpt = SafetensorsCheckpoint.open(dir);
  const read: Tensor[] = [];
  try {
    const dtype = o.dtype ?? config.torchDtype ?? "float32";
    const device = o.device ?? "cpu";
    return new CausalLM(config, (name, shape) => {
      if (!ckpt.has(name)) throw new Error(`${dir}: weight ${name} is missing from the checkpoint`);
      const entry = ckpt.entry(name);
      if (`${entry.shape}` !== `${shape}`)
        throw new Error(`${dir}: weight ${name} has shape [${entry.shape}], config.json implies [${shape}]`);
      const raw = ckpt.readWeight(name, { device }); // refuses integer dtypes, NaN and infinities
      const t = torch.keep(raw.dtype === dtype ? raw : raw.to({ dtype }));
      if (t !== raw) raw.dispose();
      read.push(t);
      return t;
    });
  } catch (e) {
    torch.dispose(read); // the weights read before the one refused
    throw e;
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
