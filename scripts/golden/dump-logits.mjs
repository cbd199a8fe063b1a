// Writes svdlora's fp32 CPU logits for a model (and optionally a LoRA adapter) to a safetensors
// file, for check_peft_load.py to compare with transformers/peft.
//   node scripts/golden/dump-logits.mjs MODEL_DIR [ADAPTER_DIR|-] OUT.safetensors
import { loadAdapter } from "../../dist/src/hf/peft.js";
import { saveSafetensors } from "../../dist/src/hf/safetensors.js";
import { loadCausalLM } from "../../dist/src/model/loader.js";
import { loadLora } from "../../dist/src/model/lora.js";
import * as torch from "../../dist/src/torch/index.js";

const [modelDir, adapterDir, out] = process.argv.slice(2);
const model = loadCausalLM(modelDir, { dtype: "float32" });
const vocab = model.config.vocabSize;
torch.manualSeed(5);
const ids = torch.randint(0, vocab, [2, 24]);
const base = torch.noGrad(() => model.forward(ids));
const tensors = { input_ids: ids, base_logits: base };
if (adapterDir && adapterDir !== "-") {
  const { config, weights } = loadAdapter(adapterDir);
  loadLora(model, config, weights, false);
  tensors.adapter_logits = torch.noGrad(() => model.forward(ids));
}
saveSafetensors(out, tensors);
console.log(`wrote ${out}`);
