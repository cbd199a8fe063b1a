# Loads a model directory and adapter written by svdlora with transformers + PeftModel.from_pretrained
# and compares the logits with svdlora's (from dump-logits.mjs). Prints one JSON line.
#   python3 scripts/golden/check_peft_load.py MODEL_DIR ADAPTER_DIR OURS.safetensors
# check_init_adapters.sh runs it for every kind of adapter svdlora saves.
import json, sys
import torch
from peft import PeftModel
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

model_dir, adapter_dir, ours_file = sys.argv[1:4]
ours = load_file(ours_file)
model = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32).eval()
with torch.no_grad():
    base = model(input_ids=ours["input_ids"]).logits
peft_model = PeftModel.from_pretrained(model, adapter_dir).eval()
with torch.no_grad():
    adapted = peft_model(input_ids=ours["input_ids"]).logits
lora_layers = [m for n, m in peft_model.named_modules() if hasattr(m, "lora_A") and "default" in m.lora_A]
result = {
    "base_max_abs_diff": (base - ours["base_logits"]).abs().max().item(),
    "adapter_max_abs_diff": (adapted - ours["adapter_logits"]).abs().max().item(),
    "adapter_effect_max_abs": (adapted - base).abs().max().item(),
    "peft_modules": len(lora_layers),
    "ranks": sorted({m.r["default"] for m in lora_layers}),
    "dora_modules": sum(1 for m in lora_layers if "default" in getattr(m, "lora_magnitude_vector", {})),
}
print(json.dumps(result))
