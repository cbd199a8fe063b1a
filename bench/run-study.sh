#!/usr/bin/env bash
# The study behind the README's verdict: every arm against random init on the embedded tiny model,
# 8 paired seeds, each arm at its own tuned learning rate (5-point grid, chosen on the validation
# half of the held-out set), the three controls, and exact-answer accuracy on 1,000 questions.
# One command, resumable: a run stopped by its time limit (SIGTERM) keeps a checkpoint, and the
# same command continues where it stopped (done steps and runs are skipped).
#
# On a CUDA machine, from the repository root, after `npm run build`:
#   bash bench/run-study.sh [OUTDIR] [SECONDS] [more `svdlora run` flags, e.g. --concurrent-arms 1]
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-svdlora-study}
LIMIT=${2:-0}
args=(run --steps all --device cuda --seeds 8 --lr-grid 2e-4,8e-4,3.2e-3,1.28e-2,5.12e-2
  --arms pissa,random-continued,svd-xfit,svd-full --accuracy-samples 1000 --output-dir "$OUT" "${@:3}")
if [ "$LIMIT" -gt 0 ]; then
  timeout --signal=TERM --kill-after=60 "$LIMIT" node bin/svdlora.js "${args[@]}"
else
  node bin/svdlora.js "${args[@]}"
fi
