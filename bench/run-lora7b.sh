#!/usr/bin/env bash
# The 7B LoRA benchmark, both sides in one call on a GPU machine: the PEFT reference
# (scripts/bench_peft.py: q,v and all seven projections with gradient checkpointing, q,v without) and
# svdlora (dist/bench/lora-7b.js: q,v and all seven under 20 and 24 GiB budgets), both on the
# Qwen2.5-Math-7B architecture with random bf16 weights (bench/configs/) and the same samples
# file, 2 epochs in batches of 4, the first 3 steps untimed. Each run is its
# own process; every run gets the same environment (PYTORCH_CUDA_ALLOC_CONF unset), and the order
# alternates by target set: PEFT+GC, svdlora 20, svdlora 24 for q,v, then the same for all seven,
# then PEFT without GC. A run that fails (out of memory, crash, timeout) becomes an "error" row
# and the rest go on. Then bench/table.mjs prints the table and writes
# <date>-<gpu>-lora7b.json/.md.
#
# From the repository root, with the addon and TypeScript built and the samples written:
#   source .gpu/env.sh            # Node on PATH (done here too when node is missing)
#   python3 bench/make_samples.py /tmp/samples.json
#   bash bench/run-lora7b.sh [OUTDIR]     # OUTDIR: default $OUT if set, else bench/results
# Environment: SAMPLES (/tmp/samples.json), PEFT_SCRIPT (scripts/bench_peft.py), MODEL_CONFIG
# (bench/configs/qwen2.5-math-7b.json), OURS_SCRIPT (dist/bench/lora-7b.js), RUN_TIMEOUT (seconds
# per run, 240), PYTHON (python3), NODE (node), RUNS (which runs, space-separated names; default all: peft-qv-gc svdlora-qv-20
# svdlora-qv-24 peft-all-gc svdlora-all-20 svdlora-all-24 peft-qv-nogc).
set -u -o pipefail
cd "$(dirname "$0")/.."

if ! command -v "${NODE:-node}" >/dev/null && [ -f .gpu/env.sh ]; then
  # shellcheck disable=SC1091
  source .gpu/env.sh >&2
fi
PYTHON=${PYTHON:-python3}
NODE=${NODE:-node}
OUTDIR=${1:-${OUT:-bench/results}}
SAMPLES=${SAMPLES:-/tmp/samples.json}
RUN_TIMEOUT=${RUN_TIMEOUT:-240}
PEFT_SCRIPT=${PEFT_SCRIPT:-scripts/bench_peft.py}
MODEL_CONFIG=${MODEL_CONFIG:-bench/configs/qwen2.5-math-7b.json}
OURS_SCRIPT=${OURS_SCRIPT:-dist/bench/lora-7b.js}
QV=q_proj,v_proj
ALL=q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj
RUNS=${RUNS:-"peft-qv-gc svdlora-qv-20 svdlora-qv-24 peft-all-gc svdlora-all-20 svdlora-all-24 peft-qv-nogc"}

# the same allocator settings for both sides: PyTorch's defaults
unset PYTORCH_CUDA_ALLOC_CONF PYTORCH_ALLOC_CONF SVDLORA_CUDA_MEMORY_FRACTION

[ -f "$SAMPLES" ] || { echo "run-lora7b: writing $SAMPLES" >&2; "$PYTHON" bench/make_samples.py "$SAMPLES" || exit 1; }
[ -f "$OURS_SCRIPT" ] || { echo "run-lora7b: $OURS_SCRIPT missing: build first (node scripts/build-native.mjs && node node_modules/typescript/bin/tsc -p .)" >&2; exit 1; }

mkdir -p "$OUTDIR/lora7b-logs" || exit 1
STAMP=$(date -u +%Y%m%d-%H%M%S)
JSONL="$OUTDIR/lora7b-$STAMP.jsonl"
: > "$JSONL"

# versions, once: the Python stack (the PEFT side), Node and the libtorch svdlora is built against
NODE_VERSION=$("$NODE" --version 2>/dev/null) \
LIBTORCH_VERSION=$("$NODE" -e 'import("./dist/src/torch/index.js").then((t) => console.log(t.buildInfo().torchVersion))' 2>/dev/null) \
COMMIT=$({ git rev-parse --short HEAD && { git diff --quiet HEAD || echo dirty; }; } 2>/dev/null | paste -sd- -) \
SAMPLES="$SAMPLES" PEFT_SCRIPT="$PEFT_SCRIPT" RUN_TIMEOUT="$RUN_TIMEOUT" \
"$PYTHON" - >> "$JSONL" 2>"$OUTDIR/lora7b-logs/$STAMP-versions.log" <<'EOF' || echo '{"kind":"versions","error":"the Python version probe failed"}' >> "$JSONL"
import datetime, json, os, platform
import torch, transformers, peft
e = os.environ
print(json.dumps({
    "kind": "versions", "date": datetime.date.today().isoformat(),
    "utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    "torch": torch.__version__, "cuda": torch.version.cuda, "transformers": transformers.__version__, "peft": peft.__version__,
    "python": platform.python_version(), "node": e.get("NODE_VERSION") or None, "libtorch": e.get("LIBTORCH_VERSION") or None,
    "commit": e.get("COMMIT") or None, "alloc_conf": "", "samples": e["SAMPLES"], "peft_script": e["PEFT_SCRIPT"],
    "run_timeout_s": int(e["RUN_TIMEOUT"]),
}))
EOF

# run NAME SIDE TARGETS GC BUDGET CMD...: runs CMD (stdout+stderr to a log), appends its last JSON
# line with the run's name, or an error row naming what went wrong.
run() {
  local name=$1 side=$2 targets=$3 gc=$4 budget=$5
  shift 5
  local log="$OUTDIR/lora7b-logs/$STAMP-$name.log"
  echo "run-lora7b: $name: $*" >&2
  local t0=$SECONDS
  timeout --kill-after=15 "$RUN_TIMEOUT" "$@" > "$log" 2>&1 < /dev/null
  local rc=$?
  RC=$rc LOG=$log NAME=$name SIDE=$side TARGETS=$targets GC=$gc BUDGET=$budget WALL=$((SECONDS - t0)) TIMEOUT=$RUN_TIMEOUT "$NODE" -e '
    const fs = require("fs");
    const e = process.env;
    const text = fs.existsSync(e.LOG) ? fs.readFileSync(e.LOG, "utf8") : "";
    const lines = text.split("\n").map((l) => l.trim()).filter(Boolean);
    let result = null;
    for (const l of [...lines].reverse()) {
      if (!l.startsWith("{")) continue;
      try { const v = JSON.parse(l); if (v && typeof v === "object" && !Array.isArray(v)) { result = v; break; } } catch {}
    }
    const base = { run: e.NAME, side: e.SIDE, targets: e.TARGETS.split(",") };
    if (e.GC !== "") base.grad_ckpt = e.GC === "1";
    if (e.BUDGET !== "") base.budget_gib = Number(e.BUDGET);
    const extra = { exit_code: Number(e.RC), wall_s: Number(e.WALL), log: e.LOG };
    if (e.RC === "0" && result && typeof result.real_tokens_per_s === "number") {
      console.log(JSON.stringify({ ...base, ...result, side: e.SIDE, ...extra }));
    } else {
      let error;
      if (e.RC === "124" || e.RC === "137") error = `timed out after ${e.TIMEOUT} s`;
      else if (result && typeof result.error === "string") error = result.error;
      else {
        const hit = [...lines].reverse().find((l) => /out of memory|OutOfMemory|Error|error:/.test(l));
        error = `exit ${e.RC}: ${(hit ?? lines[lines.length - 1] ?? "no output").slice(0, 300)}`;
      }
      console.log(JSON.stringify({ ...base, error, ...extra }));
    }
  ' >> "$JSONL" || echo "{\"run\":\"$name\",\"side\":\"$side\",\"error\":\"recording the run failed\"}" >> "$JSONL"
  tail -n 1 "$JSONL" >&2
}

peft() {
  run "$1" peft "$2" "$3" "" "$PYTHON" "$PEFT_SCRIPT" --samples "$SAMPLES" --model-config "$MODEL_CONFIG" --targets "$2" \
    --gradient-checkpointing "$([ "$3" = 1 ] && echo on || echo off)" --batch-size 4 --epochs 2
}
ours() { run "$1" svdlora "$2" "" "$3" "$NODE" "$OURS_SCRIPT" "$SAMPLES" "$2" --max-memory-gib "$3" --model-config "$MODEL_CONFIG"; }

T0=$SECONDS
for r in $RUNS; do
  case $r in
    peft-qv-gc) peft "$r" "$QV" 1 ;;
    peft-all-gc) peft "$r" "$ALL" 1 ;;
    peft-qv-nogc) peft "$r" "$QV" 0 ;;
    svdlora-qv-20) ours "$r" "$QV" 20 ;;
    svdlora-qv-24) ours "$r" "$QV" 24 ;;
    svdlora-all-20) ours "$r" "$ALL" 20 ;;
    svdlora-all-24) ours "$r" "$ALL" 24 ;;
    *) echo "run-lora7b: unknown run $r" >&2 ;;
  esac
done
echo "run-lora7b: all runs took $((SECONDS - T0)) s; lines in $JSONL" >&2

"$NODE" bench/table.mjs "$JSONL" --out "$OUTDIR"
