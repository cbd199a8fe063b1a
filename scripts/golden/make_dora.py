# Makes the DoRA parity fixture, test/fixtures/golden/qwen2-tiny-dora/, with PEFT: a DoRA adapter on
# the tiny Qwen2 of test/fixtures/golden/qwen2-tiny/ (make_golden.py) and, for one prompt-masked,
# right-padded batch, the loss, the logits and the gradient of every trained tensor (lora_A, lora_B
# and the magnitude vector) of the first training step, in fp32.
# Run from the repo root on a machine with torch, transformers and peft (no network, CPU is enough):
#   python3 scripts/golden/make_dora.py test/fixtures/golden/qwen2-tiny-dora
# Writes adapter_config.json + adapter_model.safetensors (PEFT's save_pretrained) and
# expected.safetensors: input_ids, attention_mask, labels, loss [1], logits, grad.<key> for every
# trained tensor (keys as in the adapter file), and init_magnitude.<module>: the magnitude PEFT
# started from (‖W + s·B·A‖ per output row) before this script perturbed it.
import json, os, sys
import torch
import peft
import transformers
from peft import LoraConfig, get_peft_model
from safetensors.torch import save_file
from transformers import Qwen2ForCausalLM

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODEL = os.path.join(REPO, "test", "fixtures", "golden", "qwen2-tiny")
PREFIX = "base_model.model."

torch.manual_seed(3)
base = Qwen2ForCausalLM.from_pretrained(MODEL, dtype=torch.float32)
base.config._attn_implementation = "eager"
# init_lora_weights=False: B random too, so A gets a gradient and m differs from ‖W‖; q_proj and
# v_proj have a bias (DoRA takes it out of the scaled part), down_proj has none.
config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"], lora_dropout=0.0,
                    init_lora_weights=False, use_dora=True, task_type="CAUSAL_LM")
model = get_peft_model(base, config)
init_magnitude = {}
with torch.no_grad():
    for name, module in model.named_modules():
        if hasattr(module, "lora_magnitude_vector") and "default" in module.lora_magnitude_vector:
            m = module.lora_magnitude_vector["default"].weight
            init_magnitude[f"init_magnitude.{name[len(PREFIX):]}"] = m.detach().clone()
            # Moves m away from the norm it starts at, so that m / ‖W + s·B·A‖ ≠ 1 is tested.
            m.mul_(1 + 0.2 * torch.rand_like(m) - 0.1)
model.train()

ids = torch.randint(0, 300, (2, 12), generator=torch.Generator().manual_seed(4))
attention_mask = torch.ones_like(ids)
attention_mask[1, 9:] = 0  # second sample: 9 real tokens, right-padded
ids[1, 9:] = 0
labels = ids.clone()
labels[0, :5] = -100  # prompt tokens do not count
labels[1, :3] = -100
labels[1, 9:] = -100
output = model(input_ids=ids, attention_mask=attention_mask, labels=labels)
output.loss.backward()

model.save_pretrained(out)
os.remove(os.path.join(out, "README.md"))  # PEFT's model card template names this machine's paths
# The adapter file's keys (PEFT drops the adapter name and, for DoRA, the ".weight" of the magnitude).
grads = {}
for name, p in model.named_parameters():
    if not p.requires_grad:
        continue
    key = name.replace(".default", "")
    if key.endswith("lora_magnitude_vector.weight"):
        key = key[: -len(".weight")]
    grads[f"grad.{key}"] = p.grad.detach().contiguous()
save_file({"input_ids": ids, "attention_mask": attention_mask, "labels": labels, "loss": output.loss.detach().reshape(1),
           "logits": output.logits.detach().contiguous(), **grads, **init_magnitude},
          os.path.join(out, "expected.safetensors"))
with open(os.path.join(out, "versions.json"), "w") as f:
    json.dump({"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__}, f, indent=1)
print(f"DoRA fixture written to {out}: {len(grads)} gradients")
