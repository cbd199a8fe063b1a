# Reads the TensorBoard event files svdlora wrote with TensorBoard's own EventAccumulator, checks
# every scalar against the run's JSONL log, and loads each checkpoint's trainer_state.json with
# transformers' TrainerState.load_from_json. Prints the scalars and one JSON line per run; exits 1
# on any difference.
#
# On a machine with tensorboard and transformers (the GPU machine), from the repository root:
#   npx tsc -p .
#   node bin/svdlora.js train --epochs 2 --eval-steps 5 --save-steps 5 --quiet --output-dir /tmp/svdlora-tb
#   node bin/svdlora.js train --init pissa --epochs 2 --quiet --output-dir /tmp/svdlora-tb
#   python3 scripts/golden/check_tensorboard.py /tmp/svdlora-tb
#   tensorboard --logdir /tmp/svdlora-tb --port 6006   # two runs, tensorboard/random and tensorboard/pissa
import glob
import json
import math
import os
import sys

import numpy as np
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

# JSONL field → TensorBoard tag (Hugging Face Trainer's names).
TAGS = {
    "loss": "train/loss",
    "lr": "train/learning_rate",
    "grad_norm": "train/grad_norm",
    "epoch": "train/epoch",
    "tokens_per_second": "train/tokens_per_second",
    "eval_loss": "eval/loss",
}


def same(a, b):
    """Equal at float32 (the events store float32; the JSONL float32's shortest decimal)."""
    if b is None:  # NaN or ±inf in the JSONL
        return not math.isfinite(a)
    return np.float32(a) == np.float32(b)


def check_run(training_dir, run):
    acc = EventAccumulator(os.path.join(training_dir, "tensorboard", run), size_guidance={"scalars": 0})
    acc.Reload()
    tags = sorted(acc.Tags()["scalars"])
    scalars = {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in tags}
    for tag in tags:
        print(f"{run} {tag}: " + ", ".join(f"{step}:{value:.6g}" for step, value in scalars[tag]))
    rows = [json.loads(line) for line in open(os.path.join(training_dir, f"training_log_{run}.jsonl"))]
    problems = []
    for field, tag in TAGS.items():
        want = [(r["step"], r[field]) for r in rows if field in r and (field != "epoch" or "loss" in r)]
        have = scalars.get(tag, [])
        if len(want) != len(have):
            problems.append(f"{tag}: {len(have)} points, the JSONL has {len(want)}")
            continue
        for (ws, wv), (hs, hv) in zip(want, have):
            if ws != hs or not same(hv, wv):
                problems.append(f"{tag} at step {hs}: {hv}, the JSONL has step {ws}: {wv}")
                break
    return {"run": run, "tags": tags, "points": sum(len(v) for v in scalars.values()), "problems": problems}


def check_trainer_state(file):
    from transformers import TrainerState

    state = TrainerState.load_from_json(file)
    return {
        "trainer_state": file,
        "global_step": state.global_step,
        "log_history": len(state.log_history),
        "eval_rows": sum(1 for h in state.log_history if "eval_loss" in h),
    }


def main(training_dir):
    runs = sorted(os.path.basename(d) for d in glob.glob(os.path.join(training_dir, "tensorboard", "*")))
    if not runs:
        sys.exit(f"no runs in {training_dir}/tensorboard")
    results = [check_run(training_dir, run) for run in runs]
    results += [check_trainer_state(f) for f in sorted(glob.glob(os.path.join(training_dir, "checkpoints", "*", "trainer_state.json")))]
    for r in results:
        print(json.dumps(r))
    sys.exit(1 if any(r.get("problems") for r in results) else 0)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "training_results")
