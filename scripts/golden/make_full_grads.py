# Gradients of every weight of the tiny Qwen2 and Llama fixture models (transformers, fp32) for one
# prompt-masked, right-padded batch: what svdlora's training step must compute when every weight
# is trained (a full fine-tune), lm_head and the embeddings included (tied ones in Llama).
# Run on a machine with torch and transformers, from the repo root:
#   python3 scripts/golden/make_full_grads.py test/fixtures/golden/full-grads
import os, sys
import torch
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
ids = torch.randint(0, 300, (2, 12), generator=torch.Generator().manual_seed(5))
attention = torch.ones_like(ids)
attention[1, 8:] = 0            # the second sample: 8 real tokens, right-padded
ids[1, 8:] = 0
labels = ids.clone()
labels[0, :4] = -100            # prompt tokens do not count
labels[1, :2] = -100
labels[1, 8:] = -100
for kind in ["qwen2", "llama"]:
    model = AutoModelForCausalLM.from_pretrained(os.path.join("test", "fixtures", "golden", f"{kind}-tiny"), torch_dtype=torch.float32)
    model.config._attn_implementation = "eager"
    model.train()
    loss = model(input_ids=ids, attention_mask=attention, labels=labels).loss
    loss.backward()
    grads = {f"grad.{n}": p.grad.contiguous() for n, p in model.named_parameters()}
    save_file({"input_ids": ids, "labels": labels, "loss": loss.detach().reshape(1), **grads}, os.path.join(out, f"{kind}.safetensors"))
    print(kind, "loss", loss.item(), len(grads), "gradients")
import transformers
print("torch", torch.__version__, "transformers", transformers.__version__)
