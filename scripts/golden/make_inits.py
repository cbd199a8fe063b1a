# Makes the LoRA-init parity fixtures under test/fixtures/golden/inits/ with the reference
# implementations: PEFT for every init it has, and the authors' formulas (below, from their code) for
# MiLoRA and LoRA-One. Base model: the tiny Qwen2 of test/fixtures/golden/qwen2-tiny/ (make_golden.py).
# Run from the repo root on a machine with torch, transformers and peft (bitsandbytes and a CUDA
# GPU for LoftQ, which is skipped and noted in the manifest without them); no network:
#   python3 scripts/golden/make_inits.py test/fixtures/golden/inits
# Writes, for rank 8, alpha 16 on q_proj, v_proj and up_proj of both layers:
#   calibration.safetensors  the calibration batches (input_ids, labels [batches, 2, 24])
#   statistics.safetensors   PEFT's calibration statistics: <module>.covariance (CorDA), <module>.gradient (LoRA-GA),
#                            <module>.inputs<b> (EVA's input rows of batch b, for the layers EVA fits)
#   <method>.safetensors     <module>.lora_A, <module>.lora_B, <module>.weight (the base weight after init,
#                            where the method changes it; layer 0 only), and the random draws PEFT made (see below)
#   manifest.json            versions, settings, what each file holds, EVA's ranks and alphas
# PyTorch's random numbers cannot be regenerated outside PyTorch, so the draws PEFT makes are
# recorded as they happen: the test matrix of every torch.svd_lowrank call (<module>.omega, or
# omega.<rows>x<cols>.<dtype> for EVA, which re-seeds with 42 before each call) and the three Gaussian
# matrices of the orthogonal init (<module>.draw0..2).
import json, os, sys, tempfile
import torch
import torch._lowrank
import transformers
import peft
from peft import EvaConfig, LoraConfig, LoraGAConfig, get_peft_model, initialize_lora_eva_weights, preprocess_loraga
from peft.tuners.lora.config import CordaConfig
from peft.tuners.lora.corda import preprocess_corda
from peft.tuners.lora.layer import LoraLayer
from safetensors.torch import save_file
from transformers import Qwen2ForCausalLM

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODEL = os.path.join(REPO, "test", "fixtures", "golden", "qwen2-tiny")
RANK, ALPHA, TARGETS = 8, 16, ["q_proj", "v_proj", "up_proj"]
# Base weights after init are kept for layer 0 only (a square, a wide and a tall matrix): under 2 MB in all.
WEIGHT_LAYER = "model.layers.0."
SCALING = ALPHA / RANK
PREFIX = "base_model.model."
manifest = {
    "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__},
    "base_model": "test/fixtures/golden/qwen2-tiny",
    "rank": RANK, "alpha": ALPHA, "targets": TARGETS, "methods": {}, "skipped": {},
}


def base():
    model = Qwen2ForCausalLM.from_pretrained(MODEL, dtype=torch.float32)
    model.config._attn_implementation = "eager"
    return model.eval()


def lora_config(init, **extra):
    return LoraConfig(r=RANK, lora_alpha=ALPHA, target_modules=TARGETS, lora_dropout=0.0, init_lora_weights=init, **extra)


# Calibration: 4 batches of 2 random sequences of 24 tokens, the first 3 to 8 tokens of each a prompt (label -100).
gen = torch.Generator().manual_seed(7)
input_ids = torch.randint(0, 300, (4, 2, 24), generator=gen)
labels = input_ids.clone()
prompts = torch.randint(3, 9, (4, 2), generator=gen)
for b in range(4):
    for i in range(2):
        labels[b, i, : prompts[b, i]] = -100
batches = [{"input_ids": input_ids[b], "attention_mask": torch.ones_like(input_ids[b]), "labels": labels[b]} for b in range(4)]
save_file({"input_ids": input_ids.contiguous(), "labels": labels.contiguous()}, os.path.join(out, "calibration.safetensors"))

# Recording PyTorch's random draws. Every torch.svd_lowrank goes through get_approximate_basis, whose
# first act is R = randn(A.shape[-1], q): draw the same matrix from a copy of the generator's state.
omegas = []  # (layer being initialized or None, R)
current = {"layer": None}
original_basis = torch._lowrank.get_approximate_basis


def recording_basis(A, q, niter=2, M=None):
    state = torch.get_rng_state()
    omegas.append((current["layer"], torch.randn(A.shape[-1], q, dtype=A.dtype, device=A.device).cpu()))
    torch.set_rng_state(state)
    return original_basis(A, q, niter=niter, M=M)


torch._lowrank.get_approximate_basis = recording_basis


def tag(method):
    """Makes LoraLayer.<method> record which layer the svd_lowrank calls inside it belong to."""
    original = getattr(LoraLayer, method)

    def tagged(self, *args, **kwargs):
        current["layer"] = self
        try:
            return original(self, *args, **kwargs)
        finally:
            current["layer"] = None

    setattr(LoraLayer, method, tagged)


tag("pissa_init")
tag("lora_ga_init")
orthogonal_draws = {}
original_orthogonal = LoraLayer.orthogonal_init


def recording_orthogonal(self, adapter_name):
    state = torch.get_rng_state()
    r = self.r[adapter_name]
    orthogonal_draws[self] = [torch.randn(r, r), torch.randn(self.in_features, r // 2), torch.randn(r // 2, self.out_features)]
    torch.set_rng_state(state)
    return original_orthogonal(self, adapter_name)


LoraLayer.orthogonal_init = recording_orthogonal


def lora_layers(model):
    return [(name[len(PREFIX):], m) for name, m in model.named_modules() if isinstance(m, LoraLayer) and "default" in m.lora_A]


def save_method(name, model, factors=("lora_A", "lora_B"), weight=False, extra=None, note=None):
    tensors = dict(extra or {})
    for path, m in lora_layers(model):
        if "lora_A" in factors:
            tensors[f"{path}.lora_A"] = m.lora_A["default"].weight.detach().float().cpu()
        if "lora_B" in factors:
            tensors[f"{path}.lora_B"] = m.lora_B["default"].weight.detach().float().cpu()
        if weight and path.startswith(WEIGHT_LAYER):
            tensors[f"{path}.weight"] = m.get_base_layer().weight.detach().float().cpu()
        if m in orthogonal_draws:
            for i, d in enumerate(orthogonal_draws.pop(m)):
                tensors[f"{path}.draw{i}"] = d
    for layer, R in omegas:
        if layer is not None:
            path = next(p for p, m in lora_layers(model) if m is layer)
            assert f"{path}.omega" not in tensors, f"{name}: two svd_lowrank calls for {path}"
            tensors[f"{path}.omega"] = R
    omegas.clear()
    write(name, tensors, note)


def write(name, tensors, note=None):
    paths = {p for p, _ in lora_layers(base_with_targets)}
    per_module = sorted({k[len(p) + 1:] for k in tensors for p in paths if k.startswith(p + ".")})
    save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(out, f"{name}.safetensors"))
    manifest["methods"][name] = {"file": f"{name}.safetensors", "per_module": per_module,
                                 "shared": sorted(k for k in tensors if not any(k.startswith(p + ".") for p in paths)),
                                 **({"note": note} if note else {})}


def run(name, init, **extra):
    try:
        torch.manual_seed(0)
        return get_peft_model(base(), lora_config(init, **extra))
    except Exception as e:  # an init this PEFT version lacks, or LoftQ without bitsandbytes/CUDA
        manifest["skipped"][name] = f"{type(e).__name__}: {e}"
        omegas.clear()
        return None


# Every target module path, for the manifest (a plain LoRA on a fresh base model).
base_with_targets = get_peft_model(base(), lora_config(True))

# Weight-only PEFT inits.
for name, init, keep_weight in [("true", True, False), ("gaussian", "gaussian", False), ("pissa", "pissa", True),
                                ("pissa_niter_4", "pissa_niter_4", True), ("olora", "olora", True), ("orthogonal", "orthogonal", False),
                                ("mica", "mica", False)]:
    model = run(name, init)
    if model is not None:
        factors = ("lora_A",) if name in ("true", "gaussian") else ("lora_B",) if name == "mica" else ("lora_A", "lora_B")
        save_method(name, model, factors=factors, weight=keep_weight)

try:
    from peft import LoftQConfig
    model = run("loftq", "loftq", loftq_config=LoftQConfig(loftq_bits=4, loftq_iter=1))
    if model is not None:
        import bitsandbytes
        manifest["versions"]["bitsandbytes"] = bitsandbytes.__version__
        save_method("loftq", model, weight=True, note="weight is the NF4-dequantized base weight; loftq_iter=1")
except ImportError as e:
    manifest["skipped"]["loftq"] = str(e)

statistics = {}

# CorDA: the covariance of each target's inputs over the calibration sequences, one sequence per forward.
for mode in ("ipm", "kpm"):
    with tempfile.TemporaryDirectory() as tmp:
        model = base()
        config = lora_config("corda", corda_config=CordaConfig(corda_method=mode, covariance_file=os.path.join(tmp, "covariance.pt")))

        def run_model():
            with torch.no_grad():
                for b in batches:
                    for row in b["input_ids"]:
                        model(input_ids=row[None])

        preprocess_corda(model, config, run_model=run_model)
        for path, c in torch.load(os.path.join(tmp, "covariance.pt")).items():
            statistics[f"{path}.covariance"] = c.float().cpu()
        save_method(f"corda_{mode}", get_peft_model(model, config), weight=True)

# LoRA-GA: the mean over the 4 batches of each batch's gradient of the target weights.
model = base()
config = lora_config("lora_ga", lora_ga_config=LoraGAConfig())


def train_step():
    for b in batches:
        model(**b).loss.backward()


preprocess_loraga(model, config, train_step)
gradients = {name: m._peft_loraga_grad.detach().float().cpu().clone() for name, m in model.named_modules() if hasattr(m, "_peft_loraga_grad")}
for path, g in gradients.items():
    statistics[f"{path}.gradient"] = g
save_method("lora_ga", get_peft_model(model, config), weight=True, note=f"LoraGAConfig defaults: {LoraGAConfig()}")

# EVA: incremental PCA of the target inputs, cycling through the batches until converged.
forwards = []


def counting_forward(model, inputs):
    forwards.append(1)
    return model(**inputs)


model = run("eva", "eva", eva_config=EvaConfig(rho=2.0, tau=0.99))
if model is not None:
    omegas.clear()  # get_peft_model's own calls, if any
    initialize_lora_eva_weights(model, dataloader=batches, forward_fn=counting_forward, show_progress_bar=False)
    shared = {}
    for layer, R in omegas:
        key = f"omega.{R.shape[0]}x{R.shape[1]}.{str(R.dtype).replace('torch.', '')}"
        assert key not in shared or torch.equal(shared[key], R), f"EVA: two different test matrices for {key}"
        shared[key] = R
    omegas.clear()
    config = model.peft_config["default"]
    ranks = {path: m.lora_A["default"].weight.shape[0] for path, m in lora_layers(model)}
    save_method("eva", model, factors=("lora_A",), extra=shared)
    manifest["methods"]["eva"].update({
        "ranks": ranks, "rank_pattern": dict(config.rank_pattern), "alpha_pattern": dict(config.alpha_pattern),
        "forwards": len(forwards), "note": "modules with rank 0 have no adapter and are absent from ranks; forwards includes the first (input-hashing) pass",
    })

# EVA's inputs: the rows of each fitted layer's input (v_proj reads q_proj's) where the label is not -100,
# batch by batch, from a plain forward of the base model (EVA runs its forwards with the adapters disabled).
model = base()
captured = {}
for name, m in model.named_modules():
    if name.split(".")[-1] in ("q_proj", "up_proj"):
        m.register_forward_hook(lambda module, args, output, name=name: captured.__setitem__(name, args[0].detach()))
with torch.no_grad():
    for b, batch in enumerate(batches):
        model(**batch)
        keep = (batch["attention_mask"].bool() & (batch["labels"] != -100)).reshape(-1)
        for path, x in captured.items():
            statistics[f"{path}.inputs{b}"] = x.reshape(-1, x.shape[-1])[keep].float().cpu()

save_file({k: v.contiguous() for k, v in statistics.items()}, os.path.join(out, "statistics.safetensors"))


# MiLoRA, after the authors' svd_init.py (initialize_lora_layer, mode "min"), on the original weights.
def milora(W, r, scaling):
    U, S, V = torch.linalg.svd(W, full_matrices=False)
    S_select = S[-r:] / scaling
    B = U[:, -r:] @ torch.diag(torch.sqrt(S_select))
    A = torch.diag(torch.sqrt(S_select)) @ V[-r:, :]
    return A, B


# LoRA-One, after the authors' run_exp.py (reinit_lora_modules, mode "gradient", direction "LoRA-One",
# scale "stable", stable_gamma 128) on the same averaged gradient as LoRA-GA; the base weight is unchanged.
def lora_one(G, r, gamma=128):
    U, S, V = torch.svd_lowrank(-G.float(), q=512, niter=16)
    V = V.T
    B = U[:, :r] @ torch.diag(torch.sqrt(S[:r])) / torch.sqrt(S[0])
    A = torch.diag(torch.sqrt(S[:r])) @ V[:r, :] / torch.sqrt(S[0])
    return A / gamma**0.5, B / gamma**0.5


weights = {name: m.weight.detach().float() for name, m in base().named_modules() if name.split(".")[-1] in TARGETS}
for name, fn in [("milora", lambda path: milora(weights[path], RANK, SCALING)), ("lora_one", lambda path: lora_one(gradients[path], RANK))]:
    tensors = {}
    for path in sorted(weights):
        A, B = fn(path)
        tensors[f"{path}.lora_A"], tensors[f"{path}.lora_B"] = A.contiguous(), B.contiguous()
    omegas.clear()
    write(name, tensors, "the authors' formula, computed by this script")

with open(os.path.join(out, "manifest.json"), "w") as f:
    json.dump(manifest, f, indent=1, sort_keys=True)
size = sum(os.path.getsize(os.path.join(out, n)) for n in os.listdir(out))
print(f"inits fixtures written to {out}: {size / 1e6:.2f} MB; skipped: {manifest['skipped'] or 'none'}")
