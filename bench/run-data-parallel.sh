#!/usr/bin/env bash
# Data-parallel scaling of `svdlora train --gpus N`'s training step on the Qwen2.5-Math-7B
# architecture (random bf16 weights), measured on one multi-GPU machine in one call:
#   - q,v and all seven projections, --max-memory-gib 20, the 81-sample bench workload, 4 epochs,
#     batch 4 per GPU, N = 1, 2, … up to the GPUs there are: real tokens/s, rank 0's peak memory;
#   - the loss curve of N GPUs against one GPU on the same global batch (batch 4 × N on one GPU),
#     1 epoch, to check that data parallelism trains what one process trains.
# Each run is one line of JSON from dist/bench/lora-7b.js; the table and the loss comparison
# follow (bench/dp-table.mjs). From the repository root, built, with the samples written:
#   python3 bench/make_samples.py /tmp/samples.json
#   bash bench/run-data-parallel.sh OUTDIR
set -u -o pipefail
cd "$(dirname "$0")/.."
NODE=${NODE:-node}
OUTDIR=${1:-${OUT:-bench/results}}
SAMPLES=${SAMPLES:-/tmp/samples.json}
RUN_TIMEOUT=${RUN_TIMEOUT:-300}
GPUS=${GPUS:-$(nvidia-smi -L | wc -l)}
QV=q_proj,v_proj
ALL=q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
unset PYTORCH_CUDA_ALLOC_CONF PYTORCH_ALLOC_CONF SVDLORA_CUDA_MEMORY_FRACTION
mkdir -p "$OUTDIR"
lines="$OUTDIR/data-parallel-runs.jsonl"
: > "$lines"
run() { # name, then lora-7b.js arguments
  local name=$1; shift
  echo "== $name: $*" >&2
  local out
  out=$(timeout "$RUN_TIMEOUT" "$NODE" dist/bench/lora-7b.js "$SAMPLES" "$@" 2> >(tail -5 >&2) | tail -1)
  if [ -z "$out" ] || ! echo "$out" | grep -q '^{'; then out="{\"error\": \"no result (exit or timeout)\"}"; fi
  echo "{\"name\": \"$name\", \"args\": \"$*\", \"result\": $out}" | tee -a "$lines"
}
for n in $(seq 1 "$GPUS"); do
  run "qv-$n" "$QV" --gpus "$n" --max-memory-gib 20 --epochs 4
  run "all-$n" "$ALL" --gpus "$n" --max-memory-gib 20 --epochs 4
done
# The same global batch on one GPU and on all of them: the loss curves must agree within bf16 rounding.
run "curve-1x$((4 * GPUS))" "$QV" --gpus 1 --batch-size $((4 * GPUS)) --max-memory-gib 40 --epochs 1
run "curve-${GPUS}x4" "$QV" --gpus "$GPUS" --batch-size 4 --max-memory-gib 20 --epochs 1
"$NODE" bench/dp-table.mjs "$lines" | tee "$OUTDIR/data-parallel.md"
