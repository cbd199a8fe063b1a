# Makes the parity fixtures under test/fixtures/golden/ with the reference implementation
# (transformers + peft + tokenizers). Run on a machine with them installed, from the repo root:
#   python3 scripts/golden/make_golden.py OUT_DIR
# The CPU tests compare svdlora against these files; svdlora never needs Python.
import json, os, sys
import torch
from safetensors.torch import save_file
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

out = sys.argv[1]
torch.manual_seed(0)


def save_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=1)


def tiny(kind):
    common = dict(hidden_size=64, intermediate_size=176, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                  vocab_size=300, max_position_embeddings=256, rms_norm_eps=1e-6)
    if kind == "qwen2":
        cfg = Qwen2Config(**common, rope_theta=10000.0, tie_word_embeddings=False)
        model = Qwen2ForCausalLM(cfg)
    else:
        cfg = LlamaConfig(**common, rope_theta=500000.0, tie_word_embeddings=True, attention_bias=False)
        model = LlamaForCausalLM(cfg)
    cfg._attn_implementation = "eager"
    model = model.float().eval()
    # Random init of transformers leaves biases zero and norms one: perturb them so they are tested.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias") or "norm" in name:
                p.add_(torch.randn_like(p) * 0.1)
    return model


def write_model(model, d):
    os.makedirs(d, exist_ok=True)
    model.save_pretrained(d, safe_serialization=True)


TOKENIZERS_ONLY = os.environ.get("TOKENIZERS_ONLY") == "1"

# 1. Logits of tiny Qwen2 (GQA, qkv bias) and tiny Llama (tied embeddings) in fp32.
batch = torch.randint(0, 300, (2, 11), generator=torch.Generator().manual_seed(1))
for kind in ([] if TOKENIZERS_ONLY else ["qwen2", "llama"]):
    model = tiny(kind)
    d = os.path.join(out, f"{kind}-tiny")
    write_model(model, d)
    with torch.no_grad():
        logits = model(input_ids=batch).logits
    save_file({"input_ids": batch.contiguous(), "logits": logits.contiguous()}, os.path.join(d, "expected.safetensors"))

# 2. LoRA on tiny Qwen2: loss and gradients of one batch with masked prompts and right padding.
from peft import LoraConfig, PeftModel, get_peft_model


def lora_golden():

    base = Qwen2ForCausalLM.from_pretrained(os.path.join(out, "qwen2-tiny"), torch_dtype=torch.float32)
    base.config._attn_implementation = "eager"
    # init_lora_weights=False: B random too, so every A and B gets a non-zero gradient.
    cfg = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"], lora_dropout=0.0, init_lora_weights=False,
                     task_type="CAUSAL_LM")
    peft_model = get_peft_model(base, cfg)
    ids = torch.randint(0, 300, (2, 12), generator=torch.Generator().manual_seed(2))
    attn = torch.ones_like(ids)
    attn[1, 9:] = 0                          # second sample: 9 real tokens, right-padded
    ids[1, 9:] = 0
    labels = ids.clone()
    labels[0, :5] = -100                     # prompt tokens do not count
    labels[1, :3] = -100
    labels[1, 9:] = -100
    out_ = peft_model(input_ids=ids, attention_mask=attn, labels=labels)
    out_.loss.backward()
    grads = {n.replace(".default", ""): p.grad.contiguous() for n, p in peft_model.named_parameters() if p.requires_grad}
    d = os.path.join(out, "qwen2-tiny-lora")
    peft_model.save_pretrained(d)
    save_file({"input_ids": ids, "attention_mask": attn, "labels": labels, "loss": out_.loss.detach().reshape(1),
               "logits": out_.logits.detach().contiguous(), **{f"grad.{k}": v for k, v in grads.items()}},
              os.path.join(d, "expected.safetensors"))



if not TOKENIZERS_ONLY:
    lora_golden()

# 3. Tokenizers: a byte-level BPE trained here, and every tokenizer fixture of the repo.
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

bpe_dir = os.path.join(out, "tokenizers", "hf-bpe")
bpe = Tokenizer(models.BPE())
bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
bpe.decoder = decoders.ByteLevel()
corpus = [f"The probability of {k} heads in {n} flips is \\boxed{{{k}/{n}}}." for k in range(5) for n in range(5, 9)] * 3
trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                              initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
if not os.path.exists(os.path.join(bpe_dir, "tokenizer.json")):  # keep a committed one as it is
    bpe.train_from_iterator(corpus, trainer)
    os.makedirs(bpe_dir, exist_ok=True)
    bpe.save(os.path.join(bpe_dir, "tokenizer.json"))
save_json(os.path.join(bpe_dir, "tokenizer_config.json"), {
    "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>", "bos_token": None, "clean_up_tokenization_spaces": False,
    "tokenizer_class": "PreTrainedTokenizerFast",
    "chat_template": "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"})

texts = ["Hello world", "The probability of 3 heads in 5 flips is \\boxed{5/16}.", "  two  spaces\nnew line\ttab",
         "émoji 😀 and 数学", "P(A|B) = P(B|A)P(A)/P(B)", "<|im_start|>user\nhi<|im_end|>", ""]
conversation = [{"role": "system", "content": "Please reason step by step, and put your final answer within \\boxed{}."},
                {"role": "user", "content": "A fair coin is flipped twice. What is P(two heads)?"},
                {"role": "assistant", "content": "Each flip is heads with probability 1/2, so \\boxed{1/4}."}]
tok_root = os.path.join(out, "tokenizers")
repo_fixtures = os.path.join("test", "fixtures", "tokenizers")
dirs = [("hf-bpe", bpe_dir)] + [(n, os.path.join(repo_fixtures, n)) for n in sorted(os.listdir(repo_fixtures))
                                if os.path.isfile(os.path.join(repo_fixtures, n, "tokenizer.json"))]
dirs.append(("tiny-prob", os.path.join("models", "tiny-prob")))  # the embedded model's own tokenizer
expected = {}
for name, path in dirs:
    tok = AutoTokenizer.from_pretrained(path)
    entry = {"encode": {t: tok.encode(t, add_special_tokens=False) for t in texts}}
    if tok.chat_template:
        entry["chat"] = tok.apply_chat_template(conversation, tokenize=False)
        entry["chat_prompt"] = tok.apply_chat_template(conversation[:2], tokenize=False, add_generation_prompt=True)
        entry["chat_ids"] = tok(entry["chat"], add_special_tokens=False)["input_ids"]
    expected[name] = entry
save_json(os.path.join(tok_root, "expected.json"), expected)
print("golden files written to", out)
