# The PEFT side of the loss-parity check: the same checkpoint, the same initial adapter (saved by
# `node dist/bench/lora-7b.js … --model-dir DIR --save-adapter ADAPTER`), the same batches of 4 in
# file order, AdamW lr 2e-4; prints the first STEPS training losses as one JSON line.
#   python3 bench/peft_loss_parity.py MODEL_DIR ADAPTER_DIR SAMPLES.json [STEPS]
import json, sys, torch
from transformers import AutoModelForCausalLM
from peft import PeftModel

model_dir, adapter_dir, samples_file = sys.argv[1:4]
steps = int(sys.argv[4]) if len(sys.argv) > 4 else 20
model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16, attn_implementation="sdpa", device_map="cuda")
model = PeftModel.from_pretrained(model, adapter_dir, is_trainable=True)
model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
model.enable_input_require_grads()
model.train()
opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-4)
samples = json.load(open(samples_file))
losses = []
for i in range(0, len(samples), 4):
    if len(losses) >= steps:
        break
    chunk = samples[i:i + 4]
    L = max(len(s) for s in chunk)
    ids = torch.full((len(chunk), L), 151643); lab = torch.full((len(chunk), L), -100); att = torch.zeros((len(chunk), L), dtype=torch.long)
    for j, s in enumerate(chunk):
        ids[j, :len(s)] = torch.tensor(s); lab[j, :len(s)] = torch.tensor(s); att[j, :len(s)] = 1
    out = model(input_ids=ids.cuda(), attention_mask=att.cuda(), labels=lab.cuda())
    out.loss.backward(); opt.step(); opt.zero_grad(set_to_none=True)
    losses.append(round(out.loss.item(), 5))
print(json.dumps({"side": "peft", "what": "loss_parity", "first_losses": losses, "gpu": torch.cuda.get_device_name()}), flush=True)
