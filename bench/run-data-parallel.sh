#!/usr/bin/env bash
# Data-parallel scaling of `svdlora train --gpus N`'s training step on the Qwen2.5-Math-7B
# architecture (random bf16 weights), measured on one multi-GPU machine in one call:
#   - q,v and all seven projections, --max-memory-gib 20, the 81-sample bench workload, 4 epochs,
#     batch 4 per GPU, N = 1, 2 and 4 (those the machine has): real tokens/s, rank 0's peak memory;
#     for N > 1 with the gradients' all-reduce overlapped with backward (the default) and after it
#     (--no-overlap); each run also says where every rank's step time goes (dist/bench/lora-7b.js);
#   - q,v at --max-memory-gib 24 (no layer recomputed) on one GPU and on all of them, beside the
#     20 GiB pair, since the two budgets scaled differently before;
#   - the loss curve of all GPUs against one GPU on the same global batch (batch 4 × N on one GPU),
#     2 epochs, to check that data parallelism trains what one process trains (table and PNG).
# Each run is one line of JSON; the tables follow (bench/dp-table.mjs). About 4 to 5 minutes on
# 2 GPUs. From the repository root, built, with the samples written:
#   python3 bench/make_samples.py /tmp/samples.json
#   bash bench/run-data-parallel.sh OUTDIR
# EXTRA adds arguments to every run (e.g. a CPU smoke test of this script without GPUs:
# GPUS=2 SAMPLES=tiny.json EXTRA="--model-dir models/tiny-prob --device cpu").
set -u -o pipefail
cd "$(dirname "$0")/.."
NODE=${NODE:-node}
OUTDIR=${1:-${OUT:-bench/results}}
SAMPLES=${SAMPLES:-/tmp/samples.json}
RUN_TIMEOUT=${RUN_TIMEOUT:-300}
GPUS=${GPUS:-$(nvidia-smi -L | wc -l)}
EXTRA=${EXTRA:-}
QV=q_proj,v_proj
ALL=q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
unset PYTORCH_CUDA_ALLOC_CONF PYTORCH_ALLOC_CONF SVDLORA_CUDA_MEMORY_FRACTION
mkdir -p "$OUTDIR"
lines="$OUTDIR/data-parallel-runs.jsonl"
: > "$lines"
{
  echo "command: bash bench/run-data-parallel.sh $OUTDIR (GPUS=$GPUS, SAMPLES=$SAMPLES${EXTRA:+, EXTRA=$EXTRA})"
  echo "commit: $(git rev-parse HEAD 2>/dev/null)"
  nvidia-smi -L 2>/dev/null
  nvidia-smi topo -m 2>/dev/null
  lscpu 2>/dev/null | grep -E '^(Model name|CPU\(s\)|Thread|Core|Socket|CPU max MHz)'
} > "$OUTDIR/data-parallel-machine.txt"
run() { # name, then lora-7b.js arguments
  local name=$1; shift
  echo "== $name: node dist/bench/lora-7b.js $SAMPLES $* $EXTRA" >&2
  local out
  # shellcheck disable=SC2086
  out=$(timeout "$RUN_TIMEOUT" "$NODE" dist/bench/lora-7b.js "$SAMPLES" "$@" $EXTRA 2> >(tail -5 >&2) | tail -1)
  if [ -z "$out" ] || ! echo "$out" | grep -q '^{'; then out="{\"error\": \"no result (exit or timeout)\"}"; fi
  echo "{\"name\": \"$name\", \"args\": \"$* $EXTRA\", \"result\": $out}" >> "$lines"
  echo "$out" | cut -c1-400 >&2
}
for n in 1 2 4; do
  [ "$n" -le "$GPUS" ] || continue
  if [ "$n" -eq 2 ]; then # which transport NCCL picked between the GPUs (NVLink P2P, or host memory)
    NCCL_DEBUG=INFO NCCL_DEBUG_SUBSYS=INIT,P2P NCCL_DEBUG_FILE="$OUTDIR/nccl-%h-%p.txt" \
      run "qv-$n" "$QV" --gpus "$n" --max-memory-gib 20 --epochs 4
  else
    run "qv-$n" "$QV" --gpus "$n" --max-memory-gib 20 --epochs 4
  fi
  run "all-$n" "$ALL" --gpus "$n" --max-memory-gib 20 --epochs 4
  if [ "$n" -gt 1 ]; then
    run "qv-$n-blocking" "$QV" --gpus "$n" --max-memory-gib 20 --epochs 4 --no-overlap
    run "all-$n-blocking" "$ALL" --gpus "$n" --max-memory-gib 20 --epochs 4 --no-overlap
  fi
done
last=$([ "$GPUS" -ge 4 ] && echo 4 || echo 2)
run "qv24-1" "$QV" --gpus 1 --max-memory-gib 24 --epochs 4
run "qv24-$last" "$QV" --gpus "$last" --max-memory-gib 24 --epochs 4
# The same global batch on one GPU and on all of them: the loss curves must agree within bf16 rounding.
run "curve-1x$((4 * last))" "$QV" --gpus 1 --batch-size $((4 * last)) --max-memory-gib 40 --epochs 2
run "curve-${last}x4" "$QV" --gpus "$last" --batch-size 4 --max-memory-gib 20 --epochs 2
{
  echo "NCCL (qv-2 run, NCCL_DEBUG=INFO), transports and versions:"
  cat "$OUTDIR"/nccl-*.txt 2>/dev/null | grep -E "NCCL version|via (P2P|SHM|NET)|NVLS|comm 0x.*nRanks" | sed -E 's/^[^ ]+ //; s/Channel [0-9]+\/[0-9]+ : //' | sort | uniq -c | head -30
} >> "$OUTDIR/data-parallel-machine.txt"
"$NODE" bench/dp-table.mjs "$lines" "$OUTDIR" | tee "$OUTDIR/data-parallel.md"
