// Data-parallel training across processes (one per GPU) through libtorch's c10d: every rank holds
// the whole model and the whole data set, trains on its share of each global batch, and the LoRA
// gradients are summed across ranks before the (identical) optimizer step on every rank.
import { type CausalLM, decoderLayerOf } from "../model/qwen2.js";
import { DEFAULT_BUCKET_BYTES } from "../torch/distributed.js";
import * as torch from "../torch/index.js";
import type { PendingReduce, Tensor } from "../torch/index.js";

export interface DataParallel {
  rank: number;
  worldSize: number;
  /** Rank 0: the one that logs, evaluates and writes outputs. */
  isMain: boolean;
  /** The device this rank trains on. */
  device: string;
}

/** One process alone on `device`. */
export const singleProcess = (device: string): DataParallel => ({ rank: 0, worldSize: 1, isMain: true, device });

/**
 * Joins the process group the launcher described in RANK / WORLD_SIZE / MASTER_ADDR / MASTER_PORT
 * (svdlora train --gpus N, torchrun, or any launcher setting them): NCCL for CUDA, Gloo for the CPU.
 * Without those variables, or with WORLD_SIZE=1, this is a single process.
 */
export function joinProcessGroup(device: string, timeoutMs?: number): DataParallel {
  const env = torch.distributed.fromEnv();
  if (!env || env.worldSize === 1) return singleProcess(device);
  const cuda = device.startsWith("cuda");
  const backend = cuda ? "nccl" : "gloo";
  if (!torch.distributed.backends().includes(backend))
    throw new Error(
      `data-parallel training on ${cuda ? "CUDA" : "the CPU"} needs the ${backend} backend, which this build of the native addon lacks (rebuild against a libtorch that has it${cuda ? "" : "; on Debian: apt-get install libgloo-dev, then npm run build"})`,
    );
  // One GPU per process: the launcher shows each worker one card; torchrun-style launchers show all.
  const rankDevice = cuda && device === "cuda" && torch.cuda.deviceCount() > 1 ? `cuda:${env.localRank}` : device;
  torch.distributed.init({
    backend,
    rank: env.rank,
    worldSize: env.worldSize,
    masterAddr: env.masterAddr,
    masterPort: env.masterPort,
    timeoutMs,
    localRank: env.localRank,
    localWorldSize: env.localWorldSize,
    device: cuda ? torch.cuda.index(rankDevice) : undefined,
  });
  return { rank: env.rank, worldSize: env.worldSize, isMain: env.rank === 0, device: rankDevice };
}

/**
 * This rank's part of a global batch: the same number of items on every rank (one fewer on some
 * when it does not divide), spread so that the ranks' sizes (e.g. tokens) come out even — each
 * step waits for the slowest rank. Every rank computes the same split. Empty when the batch is short.
 */
export function shareOf<T>(globalBatch: readonly T[], dp: DataParallel, size: (item: T) => number = () => 1): T[] {
  const W = dp.worldSize;
  if (W === 1) return [...globalBatch];
  const capacity = Math.ceil(globalBatch.length / W);
  const load = new Array<number>(W).fill(0),
    count = new Array<number>(W).fill(0);
  const owner = new Array<number>(globalBatch.length);
  const largestFirst = globalBatch.map((item, j) => ({ j, s: size(item) })).sort((a, b) => b.s - a.s || a.j - b.j);
  for (const { j, s } of largestFirst) {
    let best = -1;
    for (let r = 0; r < W; r++) if (count[r] < capacity && (best < 0 || load[r] < load[best])) best = r;
    owner[j] = best;
    load[best] += s;
    count[best]++;
  }
  return globalBatch.filter((_, j) => owner[j] === dp.rank);
}

/** Makes every rank start from rank 0's values of these tensors (DDP does the same at start). */
export function broadcastFromMain(tensors: Tensor[], dp: DataParallel): void {
  if (dp.worldSize > 1) torch.noGrad(() => torch.distributed.broadcast(tensors, 0));
}

/**
 * Sums one step's gradients across ranks, in place, in buckets of whole layers from the last layer
 * down. With `layersDone`, each bucket's all-reduce starts as soon as backward has gone below its
 * layers and runs while the rest of backward does; `finish` starts what is left, then the
 * parameters outside the layers with the extra tensors (step statistics ride along), and waits for
 * all of it. Every rank starts the same buckets in the same order, whenever its own backward gets
 * there; a rank without samples starts them all in finish. A parameter without a gradient on this
 * rank takes part with zeros.
 */
export class GradientSum {
  private readonly pending: PendingReduce[] = [];
  private started = 0;

  /** Where backward should report (BackpropOptions.segmentStarts): each bucket's lowest layer. */
  readonly segmentStarts: ReadonlySet<number>;

  constructor(private readonly plan: BucketPlan) {
    this.segmentStarts = new Set(plan.layers.map((b) => b.first));
  }

  /** How many of the plan's layer buckets have started. */
  get startedBuckets(): number {
    return this.started;
  }

  /** Backward is done with layers `first` and above: their gradients are final for this step. */
  layersDone(first: number): void {
    const { layers } = this.plan;
    while (this.started < layers.length && layers[this.started].first >= first) this.start(layers[this.started++].params);
  }

  finish(extra: Tensor[] = []): void {
    this.layersDone(0);
    this.start(this.plan.rest, extra);
    for (const p of this.pending.splice(0)) p.wait();
  }

  private start(params: readonly Tensor[], extra: Tensor[] = []): void {
    if (params.length + extra.length === 0) return;
    torch.noGrad(() =>
      torch.tidy(() => {
        for (const p of params) if (p.grad === null) p.grad = torch.zeros(p.shape, { dtype: p.dtype, device: p.device });
        this.pending.push(torch.distributed.allReduceStart([...params.map((p) => p.grad!), ...extra], "sum"));
      }),
    );
  }
}

/** Buckets of whole layers, the last layers' first (`first`: the lowest layer in the bucket), and the parameters outside the layers. */
export interface BucketPlan {
  layers: { first: number; params: Tensor[] }[];
  rest: Tensor[];
}

/** A bucket holds whole layers, at most 1/MIN_BUCKETS of the layers' gradient bytes (so that all
 * but the last bucket's all-reduce can overlap backward)… */
export const MIN_BUCKETS = 4;
/** …and at most this many bytes; a layer larger than the limit is a bucket of its own. */
export const MAX_BUCKET_BYTES = DEFAULT_BUCKET_BYTES;

const plans = new WeakMap<readonly Tensor[], BucketPlan>();

/** The buckets of the model's trained tensors `params` (made once per list). */
export function bucketPlan(model: CausalLM, params: readonly Tensor[]): BucketPlan {
  const known = plans.get(params);
  if (known) return known;
  const layerOf = layerIndex(model);
  const bytes = (ps: Tensor[]) => ps.reduce((n, p) => n + p.numel() * torch.elementSize[p.dtype], 0);
  // Each layer's parameters (in the list's order), top layer first.
  const byLayer = new Map<number, Tensor[]>();
  for (const p of params) {
    const layer = layerOf.get(p);
    if (layer !== undefined) byLayer.set(layer, [...(byLayer.get(layer) ?? []), p]);
  }
  const top = [...byLayer].sort(([a], [b]) => b - a);
  const limit = Math.min(MAX_BUCKET_BYTES, bytes(top.flatMap(([, ps]) => ps)) / MIN_BUCKETS);
  const layers: { first: number; params: Tensor[] }[] = [];
  let size = 0;
  for (const [layer, ps] of top) {
    const open = layers[layers.length - 1];
    if (open && size + bytes(ps) <= limit) {
      open.first = layer;
      open.params.push(...ps);
      size += bytes(ps);
    } else {
      layers.push({ first: layer, params: [...ps] });
      size = bytes(ps);
    }
  }
  const plan = { layers, rest: params.filter((p) => !layerOf.has(p)) };
  plans.set(params, plan);
  return plan;
}

/** The decoder layer of each of the model's tensors in a layer (weights and LoRA factors), from its Hugging Face name. */
function layerIndex(model: CausalLM): Map<Tensor, number> {
  const out = new Map<Tensor, number>();
  for (const [name, t] of model.namedWeights()) {
    const i = decoderLayerOf(name);
    if (i !== undefined) out.set(t, i);
  }
  for (const [name, linear] of model.linears()) {
    const i = decoderLayerOf(name);
    if (i !== undefined && linear.lora) for (const t of [linear.lora.A, linear.lora.B]) out.set(t, i);
  }
  return out;
}

export function leaveProcessGroup(dp: DataParallel): void {
  if (dp.worldSize > 1) torch.distributed.destroy();
}
