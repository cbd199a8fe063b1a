// Writing a CausalLM as a Hugging Face model directory (config.json + model.safetensors).
import fs from "node:fs";
import path from "node:path";
import type { ModelConfig } from "../hf/config.js";
import { saveSafetensors } from "../hf/safetensors.js";
import * as torch from "../torch/index.js";
import { writeFileAtomic } from "../util/atomic.js";
import { fsChange } from "../util/outputs.js";
import type { CausalLM } from "./qwen2.js";

/** config.json as transformers writes it for Qwen2ForCausalLM / LlamaForCausalLM. */
export function hfConfigJson(c: ModelConfig, dtype: string): Record<string, unknown> {
  const qwen = c.modelType === "qwen2";
  return {
    ...c.raw,
    architectures: [qwen ? "Qwen2ForCausalLM" : "LlamaForCausalLM"],
    model_type: c.modelType,
    hidden_size: c.hiddenSize,
    intermediate_size: c.intermediateSize,
    num_hidden_layers: c.numHiddenLayers,
    num_attention_heads: c.numAttentionHeads,
    num_key_value_heads: c.numKeyValueHeads,
    head_dim: c.headDim,
    vocab_size: c.vocabSize,
    rms_norm_eps: c.rmsNormEps,
    rope_theta: c.ropeTheta,
    max_position_embeddings: c.maxPositionEmbeddings,
    tie_word_embeddings: c.tieWordEmbeddings,
    hidden_act: "silu",
    torch_dtype: dtype,
    ...(qwen ? {} : { attention_bias: c.qkvBias, mlp_bias: c.mlpBias }),
    bos_token_id: c.bosTokenId ?? null,
    eos_token_id: c.eosTokenId ?? null,
    pad_token_id: c.padTokenId ?? null,
  };
}

/** Saves weights (in `dtype`, default the model's) and config.json into dir. */
export function saveCausalLM(model: CausalLM, dir: string, dtype: torch.DType = model.dtype): void {
  fs.mkdirSync(dir, { recursive: true });
  const tensors = torch.tidy(() => {
    const out = new Map<string, torch.Tensor>();
    for (const [name, t] of model.namedWeights()) out.set(name, t.detach().to({ dtype, device: "cpu" }).contiguous());
    return out;
  });
  saveSafetensors(path.join(dir, "model.safetensors"), tensors, { format: "pt" });
  torch.dispose(tensors);
  writeFileAtomic(path.join(dir, "config.json"), `${JSON.stringify(hfConfigJson(model.config, dtype), null, 2)}\n`);
}

const TOKENIZER_FILES = [
  "tokenizer.json",
  "tokenizer_config.json",
  "chat_template.jinja",
  "generation_config.json",
  "special_tokens_map.json",
];

/** Copies the tokenizer and generation files of a model directory that exist into another. */
export function copyTokenizerFiles(fromDir: string, toDir: string): void {
  for (const f of TOKENIZER_FILES)
    if (fs.existsSync(path.join(fromDir, f))) {
      fsChange(`write ${path.join(toDir, f)}`);
      fs.copyFileSync(path.join(fromDir, f), path.join(toDir, f));
    }
}
