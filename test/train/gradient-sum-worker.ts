// A rank of the overlap test in test/train/data-parallel.test.ts, started with RANK, WORLD_SIZE,
// MASTER_ADDR and MASTER_PORT: the embedded model with LoRA on every projection, every layer's
// activations kept, this rank's share of a global batch. Its gradients summed three ways: all
// buckets after backward; each bucket as backward finishes its layers (backward split where the
// buckets start); and one process alone on the whole batch (no collective). Prints one JSON line.
import { loadCausalLM } from "../../src/model/loader.js";
import { addLora, loraParameters } from "../../src/model/lora.js";
import * as torch from "../../src/torch/index.js";
import { lossAndBackward } from "../../src/train/backprop.js";
import { type DataParallel, GradientSum, bucketPlan, joinProcessGroup, singleProcess } from "../../src/train/data-parallel.js";
import { rankMicroBatch } from "../../src/train/step.js";

const modelDir = new URL("../../../models/tiny-prob", import.meta.url).pathname;
const dp = joinProcessGroup("cpu", 20000);
torch.manualSeed(0);
const model = loadCausalLM(modelDir, { dtype: "float32", device: "cpu" });
// Both factors random (the usual init leaves B at zero, and with it A's gradient).
const loras = addLora(model, { rank: 4, alpha: 8, targets: "all-linear" }, (_, w) => ({
  A: torch.randn([4, w.size(1)]).mul(0.1),
  B: torch.randn([w.size(0), 4]).mul(0.1),
}));
const params = loraParameters(loras);
const vocab = model.config.vocabSize;
// Six samples of different lengths, the same on every rank; the first token of each predicts nothing.
const global = [7, 12, 5, 9, 15, 4].map((n, s) => {
  const ids = Array.from({ length: n }, (_, t) => (s * 131 + t * 17) % (vocab - 3));
  return { ids, lossMask: ids.map((_, t) => t >= 2), truncated: false };
});
const batchOptions = { padId: model.config.padTokenId ?? 0, device: "cpu", packing: false, dtype: model.dtype };
const recompute = "none";
const plan = bucketPlan(model, params);

/** Gradients of one backward on this rank's share (gradScale: its weight in the global batch),
 * summed across the group unless it is one process, then taken off the parameters. With overlap,
 * each bucket starts as soon as backward is done with its layers; `hooks` says when. */
function gradients(group: DataParallel, overlap: boolean) {
  const sum = group.worldSize > 1 ? new GradientSum(plan) : null;
  const hooks: { first: number; startedBuckets: number }[] = [];
  const onLayersDone = (first: number) => {
    if (overlap) sum!.layersDone(first);
    hooks.push({ first, startedBuckets: sum?.startedBuckets ?? 0 });
  };
  const segmentStarts = overlap ? sum!.segmentStarts : undefined;
  const micro = rankMicroBatch(global, 1, group, batchOptions);
  torch.tidy(() => lossAndBackward(model, micro.make()!, { gradScale: micro.weight, recompute, onLayersDone, segmentStarts }).loss);
  sum?.finish();
  const grads = params.map((p) => {
    const g = p.grad!.clone();
    p.grad = null;
    return g;
  });
  return { grads, hooks };
}

const after = gradients(dp, false);
const during = gradients(dp, true);
const alone = gradients(singleProcess("cpu"), false);
const largest = (f: (a: torch.Tensor, b: torch.Tensor) => number, x: torch.Tensor[], y: torch.Tensor[]) =>
  Math.max(...x.map((t, i) => torch.tidy(() => f(t, y[i]))));
process.stdout.write(
  `${JSON.stringify({
    rank: dp.rank,
    buckets: plan.layers.map((b) => ({ first: b.first, params: b.params.length })),
    rest: plan.rest.length,
    hooksAfter: after.hooks,
    hooksDuring: during.hooks,
    duringVsAfter: largest((a, b) => a.sub(b).abs().max().item(), during.grads, after.grads),
    afterVsAlone: largest((a, b) => a.sub(b).norm().item() / b.norm().item(), after.grads, alone.grads),
    smallestNorm: Math.min(...alone.grads.map((g) => g.norm().item())),
  })}\n`,
);
torch.distributed.destroy();
