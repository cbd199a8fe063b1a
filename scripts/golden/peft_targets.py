# Which modules PEFT adapts, with what rank and scale, for the adapter configs in
# test/fixtures/peft-targets/cases.json, on a tiny 4-layer Qwen2; and the module names
# transformers gives tiny Qwen2 and Llama models. Run from the repo root where transformers and
# peft are installed (peft 0.21, transformers 5):
#   python3 scripts/golden/peft_targets.py test/fixtures/golden/peft-targets.json
# test/hf/peft-targets.test.ts checks svdlora's choices against the file.
import copy, json, sys
import peft, transformers
from peft import LoraConfig, get_peft_model
from peft.tuners.lora import LoraLayer
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

common = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2,
              vocab_size=64, max_position_embeddings=64)
qwen2 = Qwen2ForCausalLM(Qwen2Config(**common))
llama = LlamaForCausalLM(LlamaConfig(**common))
module_names = {kind: [n for n, _ in model.named_modules() if n] for kind, model in (("qwen2", qwen2), ("llama", llama))}

with open("test/fixtures/peft-targets/cases.json") as f:
    cases = json.load(f)
results = []
for case in cases:
    try:
        config = LoraConfig(task_type="CAUSAL_LM", **case["config"])
        model = get_peft_model(copy.deepcopy(qwen2), config)
    except Exception as e:  # PEFT refuses the config or finds no module
        results.append({"name": case["name"], "error": f"{type(e).__name__}: {e}"})
        continue
    modules = {}
    for name, module in model.named_modules():
        if isinstance(module, LoraLayer) and "default" in module.r:
            modules[name.removeprefix("base_model.model.")] = {"r": module.r["default"], "scaling": module.scaling["default"]}
    results.append({"name": case["name"], "modules": modules})

with open(sys.argv[1], "w") as f:
    json.dump({"peft": peft.__version__, "transformers": transformers.__version__, "module_names": module_names, "cases": results}, f, indent=1)
