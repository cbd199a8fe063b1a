# Writes a Qwen2.5-Math-7B-architecture model with random bf16 weights as a Hugging Face model
# directory, sharded like the real one (model-0000k-of-0000n.safetensors + model.safetensors.index.json,
# shards of at most 5 GB), with config.json and the tokenizer files of models/tiny-prob (its ids are
# all < 152064), so that `node dist/bench/load-7b.js OUT_DIR` and `svdlora run --base-model OUT_DIR`
# have a real 15 GB checkpoint to read. The architecture is bench/configs/qwen2.5-math-7b.json's
# (seed 0, built on the GPU in fp32 and cast to bf16).
#
#   python3 bench/write_checkpoint_7b.py OUT_DIR            # 28 layers, about 15.2 GB, 4 shards
#   LAYERS=2 SHARD=1GB python3 bench/write_checkpoint_7b.py OUT_DIR   # quick test: 3.1 GB, several shards
#   (a checkpoint smaller than SHARD is written as one model.safetensors, without an index)
#   DEVICE=cpu LAYERS=1 ...                                  # without a GPU (slow for 28 layers)
#
# Needs torch and transformers (written for transformers 5.x, works with 4.56+). Note: right after
# writing, the shards sit in the page cache, so a load measured then is a warm-cache load.
import json, os, shutil, sys, time

import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

if len(sys.argv) != 2:
    sys.exit("usage: python3 bench/write_checkpoint_7b.py OUT_DIR   (env: LAYERS=28, DEVICE=cuda, SHARD=5GB)")
out = sys.argv[1]
layers = int(os.environ.get("LAYERS", 28))
device = os.environ.get("DEVICE", "cuda")
shard = os.environ.get("SHARD", "5GB")
tiny = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "models", "tiny-prob")

t0 = time.time()
torch.manual_seed(0)
cfg = Qwen2Config(
    hidden_size=3584, intermediate_size=18944, num_hidden_layers=layers, num_attention_heads=28, num_key_value_heads=4,
    rope_theta=10000.0, rms_norm_eps=1e-6, max_position_embeddings=4096, vocab_size=152064, tie_word_embeddings=False,
    hidden_act="silu", use_sliding_window=False, dtype="bfloat16",
    # the token ids of the tiny tokenizer copied below (<|im_end|> ends a turn, <|endoftext|> pads)
    bos_token_id=None, eos_token_id=1455, pad_token_id=1453,
)
with torch.device(device):
    model = Qwen2ForCausalLM(cfg).to(torch.bfloat16)
if device.startswith("cuda"):
    torch.cuda.synchronize()
t_build = time.time() - t0

os.makedirs(out, exist_ok=True)
# stale shards of an earlier run with another layer count would confuse the index
for f in os.listdir(out):
    if f.startswith("model") and (f.endswith(".safetensors") or f.endswith(".safetensors.index.json")):
        os.remove(os.path.join(out, f))
t1 = time.time()
model.save_pretrained(out, max_shard_size=shard)  # safetensors is the default (the only format in v5)
t_save = time.time() - t1

copied = []
for f in ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja", "chat_template.json",
          "generation_config.json", "vocab.json", "merges.txt"]:
    src = os.path.join(tiny, f)
    if os.path.exists(src):
        shutil.copyfile(src, os.path.join(out, f))
        copied.append(f)

# what was written, checked: every weight of the model is in the index, shards exist, config as asked
shards = sorted(f for f in os.listdir(out) if f.startswith("model") and f.endswith(".safetensors"))
index_path = os.path.join(out, "model.safetensors.index.json")
if os.path.exists(index_path):
    weight_map = json.load(open(index_path))["weight_map"]
    missing = [n for n in model.state_dict() if n not in weight_map]
    assert not missing, f"weights missing from the index: {missing[:5]}"
    assert set(weight_map.values()) == set(shards), (sorted(set(weight_map.values())), shards)
written = json.load(open(os.path.join(out, "config.json")))
theta = written.get("rope_theta", (written.get("rope_parameters") or {}).get("rope_theta"))  # absent: 10000, the default
assert theta in (None, 10000, 10000.0) and written["num_hidden_layers"] == layers and written["vocab_size"] == 152064, written
assert written.get("tie_word_embeddings", False) is False, written
total = sum(os.path.getsize(os.path.join(out, f)) for f in shards)
print(json.dumps({
    "what": "write_checkpoint_7b", "dir": out, "layers": layers, "device": device,
    "build_s": round(t_build, 1), "save_s": round(t_save, 1), "seconds": round(time.time() - t0, 1),
    "bytes": total, "gib": round(total / 2**30, 2), "shards": shards, "tokenizer_files": copied,
    "params": sum(p.numel() for p in model.parameters()),
}), flush=True)
