// Data-parallel training across processes (one per GPU) through libtorch's c10d: every rank holds
// the whole model and the whole data set, trains on its share of each global batch, and the LoRA
// gradients are summed across ranks before the (identical) optimizer step on every rank.
import * as torch from "../torch/index.js";
import type { Tensor } from "../torch/index.js";

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
    device: cuda ? Number(rankDevice.split(":")[1] ?? 0) : undefined,
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
 * Sums the gradients of params across ranks, in place (bucketed, one collective per bucket), and
 * the extra tensors with them (step statistics ride in the same collective). A parameter without
 * a gradient on this rank (it had no samples) takes part with zeros.
 */
export function sumGradients(params: readonly Tensor[], dp: DataParallel, extra: Tensor[] = []): void {
  if (dp.worldSize === 1) return;
  torch.noGrad(() =>
    torch.tidy(() => {
      for (const p of params) if (p.grad === null) p.grad = torch.zeros(p.shape, { dtype: p.dtype, device: p.device });
      torch.distributed.allReduce([...params.map((p) => p.grad!), ...extra], "sum");
    }),
  );
}

/** Sums numbers across ranks (the same list on every rank). */
export function sumNumbers(values: number[], dp: DataParallel): number[] {
  return dp.worldSize === 1 ? values : torch.distributed.allReduceNumbers(values, "sum");
}

export function leaveProcessGroup(dp: DataParallel): void {
  if (dp.worldSize > 1) torch.distributed.destroy();
}
