#!/usr/bin/env bash
# How the cost of a LoRA step grows, svdlora beside PEFT with and without gradient checkpointing,
# in one call on a GPU machine (bench/scaling.ts says what is measured and how). Needs the addon
# and TypeScript built (npm run build), Node on PATH, and a Python with torch, transformers and
# peft (PYTHON, default python3). Prints the plan with a time estimate (about 5 minutes on an
# H200), runs every point, and writes into OUTDIR (default $OUT if set, else bench/results):
#   scaling-<stamp>.jsonl                 every line as it came (the versions first)
#   <date>-<gpu>-scaling.md, .png, .svg   the table and the figure (redraw them anywhere with
#                                         node dist/bench/scaling-report.js FILE.jsonl --out DIR)
#   bash bench/scaling.sh [OUTDIR] [--models 0.5B,1.5B,7B,14B] [--timeout SECONDS_PER_PROCESS]
set -u -o pipefail
cd "$(dirname "$0")/.."
if ! command -v "${NODE:-node}" >/dev/null && [ -f .gpu/env.sh ]; then
  # shellcheck disable=SC1091
  source .gpu/env.sh >&2
fi
OUTDIR=${OUT:-bench/results}
if [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; then OUTDIR=$1; shift; fi
[ -f dist/bench/scaling.js ] || { echo "scaling: dist/bench/scaling.js missing: build first (npm run build)" >&2; exit 1; }
# the same allocator settings for both sides: PyTorch's defaults
unset PYTORCH_CUDA_ALLOC_CONF PYTORCH_ALLOC_CONF SVDLORA_CUDA_MEMORY_FRACTION
exec "${NODE:-node}" dist/bench/scaling.js run --out "$OUTDIR" --python "${PYTHON:-python3}" "$@"
