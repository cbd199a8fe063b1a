#!/usr/bin/env python3
# The PEFT side of svdlora's LoRA benchmark: Hugging Face transformers + PEFT train a LoRA on the
# same samples, cut into the same steps, measured the same way as svdlora's side (src/train/bench.ts):
# WARMUP_STEPS untimed steps, then real tokens/s (padding excluded), padded tokens/s, and peak
# memory (torch.cuda.max_memory_allocated since the measurement began, weights included; on the CPU
# the process's peak resident memory). Batches are padded to their longest sample with labels -100
# (DataCollatorForSeq2Seq's way), attention is SDPA, the optimizer torch's AdamW. One JSON line per
# measurement on stdout; progress and library warnings go to stderr.
#
#   python3 scripts/bench_peft.py --samples FILE.json (--model-dir DIR | --model-config CONFIG.json [--layers N])
#       [--targets q_proj,v_proj] [--rank 16] [--alpha 16] [--batch-size 4[,B,...]] [--max-steps N[,N,...]]
#       [--epochs 1] [--gradient-checkpointing on[,off]] [--device cuda] [--dtype bfloat16]
#       [--lr 2e-4] [--weight-decay 0.01] [--seed 0] [--plan]
#
# FILE.json: a JSON list of samples, each a list of token ids (`svdlora bench` writes one,
# bench/make_samples.py the GPU benchmark's). The steps of one measurement: --epochs passes over the
# samples in file order, slices of the batch size (an epoch's last slice may be shorter), at most
# --max-steps steps in all, the first WARMUP_STEPS of them untimed. Every batch size (with its
# --max-steps) is measured with every --gradient-checkpointing setting on one model; a measurement
# that runs out of memory prints a line with "error" and the others go on. --model-config builds
# random weights (seed --seed) of a config.json's architecture on the device. --plan prints the
# steps of each batch size and exits without importing torch.
import argparse
import gc
import json
import math
import resource
import sys
import time

WARMUP_STEPS = 3  # as src/train/bench.ts


def bench_steps(count, batch_size, epochs=1, max_steps=None):
    """The steps as [start, end) slices of the samples: benchSteps of src/train/bench.ts."""
    steps = []
    for _ in range(epochs):
        for i in range(0, count, batch_size):
            if max_steps is not None and len(steps) >= max_steps:
                return steps
            steps.append((i, min(i + batch_size, count)))
    return steps


def positive_ints(text):
    values = [int(x) for x in text.split(",")]
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected whole numbers >= 1 separated by commas, got {text!r}")
    return values


def on_off_list(text):
    values = text.split(",")
    if any(v not in ("on", "off") for v in values):
        raise argparse.ArgumentTypeError(f"expected on, off or on,off, got {text!r}")
    return [v == "on" for v in values]


def parse_args(argv):
    p = argparse.ArgumentParser(description="PEFT's side of svdlora's LoRA benchmark (see the comment at the top)")
    p.add_argument("--samples", required=True, help="JSON list of samples (lists of token ids)")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--model-dir", help="a Hugging Face model directory")
    source.add_argument("--model-config", help="a config.json: random weights of its architecture")
    p.add_argument("--layers", type=int, help="with --model-config: this many decoder layers instead")
    p.add_argument("--targets", default="q_proj,v_proj")
    p.add_argument("--rank", type=int, default=16)
    p.add_argument("--alpha", type=float, default=16)
    p.add_argument("--batch-size", type=positive_ints, default=[4])
    p.add_argument("--max-steps", type=positive_ints, help="steps in all (warm-up included), one per batch size")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--gradient-checkpointing", type=on_off_list, default=[True])
    p.add_argument("--device", default="cuda")
    p.add_argument("--dtype", choices=["bfloat16", "float16", "float32"], help="default bfloat16 on CUDA, float32 on the CPU")
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--plan", action="store_true", help="print each batch size's steps as JSON and exit")
    a = p.parse_args(argv)
    if a.max_steps is not None and len(a.max_steps) != len(a.batch_size):
        p.error(f"--max-steps gives {len(a.max_steps)} values for {len(a.batch_size)} batch sizes")
    if not a.plan and not (a.model_dir or a.model_config):
        p.error("give --model-dir or --model-config")
    if a.layers is not None and not a.model_config:
        p.error("--layers goes with --model-config")
    return a


def plans(a, count):
    """(batch size, steps) of every batch size."""
    caps = a.max_steps or [None] * len(a.batch_size)
    return [(b, bench_steps(count, b, a.epochs, cap)) for b, cap in zip(a.batch_size, caps)]


def build_model(a, torch, dtype):
    from transformers import AutoConfig, AutoModelForCausalLM

    if a.model_dir:
        model = AutoModelForCausalLM.from_pretrained(a.model_dir, attn_implementation="sdpa", **{dtype_keyword(): dtype})
        return model.to(a.device)
    with open(a.model_config) as f:
        cfg = json.load(f)
    if a.layers is not None:
        cfg["num_hidden_layers"] = a.layers
    for key in ("torch_dtype", "dtype", "architectures", "transformers_version"):
        cfg.pop(key, None)
    config = AutoConfig.for_model(cfg.pop("model_type"), **cfg)
    torch.manual_seed(a.seed)
    # Built straight in the training dtype on the device: a 14B model never exists in float32.
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(a.device):
            model = AutoModelForCausalLM.from_config(config, attn_implementation="sdpa")
    finally:
        torch.set_default_dtype(previous)
    return model.to(dtype)


def dtype_keyword():
    """transformers 4.56+ takes dtype=, older versions torch_dtype=."""
    import inspect

    from transformers import PreTrainedModel

    return "dtype" if "dtype" in inspect.signature(PreTrainedModel.from_pretrained).parameters else "torch_dtype"


def padded_batch(torch, chunk):
    longest = max(len(s) for s in chunk)
    ids = torch.zeros((len(chunk), longest), dtype=torch.long)
    labels = torch.full((len(chunk), longest), -100, dtype=torch.long)
    mask = torch.zeros((len(chunk), longest), dtype=torch.long)
    for j, s in enumerate(chunk):
        t = torch.tensor(s, dtype=torch.long)
        ids[j, : len(s)] = t
        labels[j, : len(s)] = t
        mask[j, : len(s)] = 1
    return ids, labels, mask, sum(len(s) for s in chunk), len(chunk) * longest


def set_checkpointing(model, on, state):
    if on == state.get("on"):
        return
    if on:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    else:
        model.gradient_checkpointing_disable()
        if state.get("on"):
            model.disable_input_require_grads()
    state["on"] = on


def peak_memory(torch, cuda):
    if cuda:
        return torch.cuda.max_memory_allocated(), "cuda allocated"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "host resident"


def measure(torch, model, samples, steps, a, cuda):
    """One measurement: the steps, the first WARMUP_STEPS untimed."""
    if len(steps) <= WARMUP_STEPS:
        raise ValueError(f"{len(steps)} steps leave none to time after the {WARMUP_STEPS} warm-up steps")
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=a.lr, weight_decay=a.weight_decay)
    batches = [padded_batch(torch, samples[i:j]) for i, j in steps]  # made before the clock, as a DataLoader would
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    losses, real, padded, start = [], 0, 0, 0.0
    for k, (ids, labels, mask, n_real, n_padded) in enumerate(batches):
        if k == WARMUP_STEPS:
            sync()
            start = time.perf_counter()
            real = padded = 0
        out = model(
            input_ids=ids.to(a.device, non_blocking=True),
            attention_mask=mask.to(a.device, non_blocking=True),
            labels=labels.to(a.device, non_blocking=True),
            use_cache=False,
        )
        out.loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(out.loss.detach())
        real += n_real
        padded += n_padded
        print(f"step {k + 1}/{len(batches)}", file=sys.stderr, flush=True)
    sync()
    seconds = time.perf_counter() - start
    timed = len(batches) - WARMUP_STEPS
    peak, memory_kind = peak_memory(torch, cuda)
    return {
        "timed_steps": timed,
        "seconds": round(seconds, 3),
        "real_tokens_per_s": round(real / seconds, 1),
        "padded_tokens_per_s": round(padded / seconds, 1),
        "tokens_per_step": round(real / timed, 1),
        "peak_mem_gib": round(peak / 2**30, 3),
        "memory_kind": memory_kind,
        "first_losses": [round(x, 5) if math.isfinite(x) else None for x in torch.stack(losses[:20]).float().tolist()],
    }


def is_out_of_memory(error):
    return "out of memory" in str(error).lower() or type(error).__name__ == "OutOfMemoryError"


def main(argv):
    a = parse_args(argv)
    with open(a.samples) as f:
        samples = json.load(f)
    if not isinstance(samples, list) or not samples or not all(isinstance(s, list) and s for s in samples):
        sys.exit(f"bench_peft.py: {a.samples}: expected a JSON list of samples, each a non-empty list of token ids")
    if a.plan:
        print(json.dumps([{"batch_size": b, "steps": steps} for b, steps in plans(a, len(samples))]))
        return

    import peft
    import torch
    import transformers
    from peft import LoraConfig, get_peft_model

    cuda = a.device.startswith("cuda")
    dtype = getattr(torch, a.dtype or ("bfloat16" if cuda else "float32"))
    t0 = time.perf_counter()
    model = build_model(a, torch, dtype)
    targets = a.targets.split(",")
    model = get_peft_model(
        model, LoraConfig(r=a.rank, lora_alpha=a.alpha, target_modules=targets, lora_dropout=0.0, task_type="CAUSAL_LM")
    )
    model.train()
    if cuda:
        torch.cuda.synchronize()
    print(f"model ready in {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    common = {
        "side": "peft",
        "targets": targets,
        "rank": a.rank,
        "layers": model.config.num_hidden_layers,
        "dtype": str(dtype).replace("torch.", ""),
        "device": a.device,
        "gpu": torch.cuda.get_device_name(torch.device(a.device)) if cuda else None,
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__},
    }
    state = {}
    for batch_size, steps in plans(a, len(samples)):
        for checkpointing in a.gradient_checkpointing:
            line = {**common, "batch_size": batch_size, "grad_ckpt": checkpointing}
            failed = None
            try:
                set_checkpointing(model, checkpointing, state)
                line.update(measure(torch, model, samples, steps, a, cuda))
            except Exception as e:  # noqa: BLE001 — out of memory is a result; anything else stops the script
                if not is_out_of_memory(e):
                    raise
                failed = f"out of memory: {str(e).splitlines()[0][:300]}"
            if failed:
                model.zero_grad(set_to_none=True)
                gc.collect()
                if cuda:
                    torch.cuda.empty_cache()
                line["error"] = failed
            print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
