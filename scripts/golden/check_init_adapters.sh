#!/usr/bin/env bash
# Every kind of adapter svdlora saves, loaded in PEFT's PeftModel.from_pretrained on the original
# base model and compared with svdlora's fp32 logits (dump-logits.mjs, check_peft_load.py). Each
# adapter is trained here by `svdlora train` on the embedded tiny model (CPU, 16 samples, one epoch,
# rank 4): pissa, olora, corda-kpm, lora-ga (the init rewrote W: saved as a rank-2r LoRA for the
# original base), eva on all linear layers (rank_pattern / alpha_pattern), DoRA with pissa-niter-4
# (lora_magnitude_vector on a converted adapter), mica, lora-one, loftq (converted, not exact: its
# summary says by how much; the check is that PEFT loads what svdlora saved), and random.
# Prints one JSON line per adapter and writes them to OUT; exits non-zero when an adapter's logits
# differ by more than 1e-5 (2e-5 for DoRA: both sides divide by the norm of W + s·BA, summed in a
# different order, and the first run on an H200 measured 1.14e-5 there, 0 for every other adapter).
#
# On the GPU machine (transformers, peft and torch installed), from the repository root:
#   npm run build
#   bash scripts/golden/check_init_adapters.sh bench/results/$(date +%F)-peft-init-adapters.jsonl
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:-bench/results/$(date +%F)-peft-init-adapters.jsonl}
PYTHON=${PYTHON:-python3}
NODE=${NODE:-node}
MODEL=models/tiny-prob
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
"$NODE" -e 'const fs = require("fs"); const [from, n, to] = process.argv.slice(1); fs.writeFileSync(to, JSON.stringify(JSON.parse(fs.readFileSync(from, "utf8")).slice(0, Number(n))));' \
  data/probability/train.json 16 "$WORK/train.json"
: >"$OUT"
status=0
check() { # NAME TOLERANCE INIT [more train flags]
  local name=$1 tol=$2 init=$3
  shift 3
  OMP_NUM_THREADS=${OMP_NUM_THREADS:-4} "$NODE" bin/svdlora.js train --init "$init" "$@" --base-model "$MODEL" \
    --train-data "$WORK/train.json" --no-eval-data --epochs 1 --lora-rank 4 --lora-alpha 8 --calibration-batches 2 \
    --output-dir "$WORK/$name" --quiet >/dev/null
  local adapter="$WORK/$name/final_model_$init"
  "$NODE" scripts/golden/dump-logits.mjs "$MODEL" "$adapter" "$WORK/$name.safetensors" >/dev/null
  local line
  line=$("$PYTHON" scripts/golden/check_peft_load.py "$MODEL" "$adapter" "$WORK/$name.safetensors")
  line="{\"adapter\": \"$name\", ${line#\{}"
  echo "$line" | tee -a "$OUT"
  "$PYTHON" -c 'import json, sys; r = json.loads(sys.argv[1]); sys.exit(0 if r["adapter_max_abs_diff"] <= float(sys.argv[2]) else 1)' "$line" "$tol" ||
    { echo "$name: logits differ by more than $tol" >&2; status=1; }
}
check random 1e-5 random
check pissa 1e-5 pissa
check olora 1e-5 olora
check corda-kpm 1e-5 corda-kpm
check lora-ga 1e-5 lora-ga
check eva 1e-5 eva --target-modules all-linear
check dora 2e-5 pissa-niter-4 --dora
check mica 1e-5 mica
check lora-one 1e-5 lora-one
check loftq 1e-5 loftq
echo "wrote $OUT" >&2
exit $status
