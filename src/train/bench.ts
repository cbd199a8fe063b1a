// The LoRA throughput benchmark's shared part: a synthetic workload (random token ids in samples of
// 150–600 tokens), the steps it is cut into, and one measured run of the training step `svdlora
// train` runs (step.ts): real tokens/s (padding excluded), peak memory and MFU. `svdlora bench`
// (pipeline/bench.ts), bench/lora-7b.ts and bench/scaling.ts measure with it; scripts/bench_peft.py
// measures PEFT the same way on the same samples, cut into the same steps.
import type { Encoded } from "../data/types.js";
import { Random } from "../data/probability/random.js";
import type { CausalLM } from "../model/qwen2.js";
import * as torch from "../torch/index.js";
import type { RecomputePolicy } from "./backprop.js";
import { type DataParallel, singleProcess } from "./data-parallel.js";
import { InterruptedError, type TrainingEvents } from "./events.js";
import type { AdamW } from "./optim.js";
import { optimizerStep, rankMicroBatch } from "./step.js";

/** Sample lengths of the synthetic workload, in tokens (both ends included): the GPU benchmark's. */
export const SAMPLE_LENGTHS = { min: 150, max: 600 } as const;

/** Steps run before the clock starts (kernel selection, allocator warm-up); scripts/bench_peft.py skips as many. */
export const WARMUP_STEPS = 3;

/**
 * Model FLOPs per token for LoRA training, per weight N a token passes through: 2N forward and 2N
 * for the input gradients in backward; the frozen weights get no gradient of their own, and the
 * LoRA factors and attention scores are left out (the usual 6N counts weight gradients, which a
 * frozen base does not have).
 */
export const LORA_FLOPS_PER_WEIGHT = 4;

/**
 * Synthetic samples: lengths uniform in SAMPLE_LENGTHS (at most maxLength), token ids uniform in
 * [0, vocabSize). Seeded, so every side and every machine trains on the same tokens.
 */
export function benchSamples(count: number, vocabSize: number, o: { seed?: number; maxLength?: number } = {}): number[][] {
  const rng = new Random(o.seed ?? 1);
  const max = Math.min(SAMPLE_LENGTHS.max, o.maxLength ?? Infinity);
  const min = Math.min(SAMPLE_LENGTHS.min, max);
  return Array.from({ length: count }, () => Array.from({ length: rng.int(min, max) }, () => rng.int(0, vocabSize - 1)));
}

/**
 * The steps as [start, end) ranges of the samples: `epochs` passes in file order, slices of
 * batchSize (an epoch's last slice may be shorter), at most maxSteps in all. The PEFT script cuts
 * the same file the same way.
 */
export function benchSteps(count: number, batchSize: number, epochs = 1, maxSteps = Infinity): [number, number][] {
  const steps: [number, number][] = [];
  for (let e = 0; e < epochs; e++)
    for (let i = 0; i < count && steps.length < maxSteps; i += batchSize) steps.push([i, Math.min(i + batchSize, count)]);
  return steps;
}

/** Samples a workload needs for `steps` full steps of batchSize after the warm-up. */
export const samplesFor = (steps: number, batchSize: number): number => (WARMUP_STEPS + steps) * batchSize;

/**
 * N of the FLOP count: the weights of every matrix product a token goes through — each layer's
 * projections and the output projection (counted also when it is tied to the input embedding,
 * which itself is a lookup); norms are included and are negligible.
 */
export function matmulWeights(model: CausalLM): number {
  let n = 0;
  for (const [name, t] of model.namedWeights()) if (name !== "model.embed_tokens.weight") n += t.numel();
  const c = model.config;
  return c.tieWordEmbeddings ? n + c.vocabSize * c.hiddenSize : n;
}

/**
 * Dense peaks in TFLOP/s in bfloat16 / float16 of the cards whose figure is not in doubt (NVIDIA's
 * data sheets, without sparsity), by a pattern of the name CUDA reports.
 */
const KNOWN_PEAKS: [RegExp, number][] = [
  [/\bH200\b/, 989.4],
  [/\bH100\b.*\bHBM3\b/, 989.4], // H100 SXM
  [/\bA100\b/, 312],
];

/** The card's dense peak in TFLOP/s for a half-precision dtype, or null when it is not in KNOWN_PEAKS (or the dtype is float32). */
export function knownPeakTflops(deviceName: string, dtype: string): number | null {
  if (dtype !== "bfloat16" && dtype !== "float16") return null;
  return KNOWN_PEAKS.find(([name]) => name.test(deviceName))?.[1] ?? null;
}

/** Model FLOPs utilization in percent: LORA_FLOPS_PER_WEIGHT · N FLOPs per real token against a peak in FLOP/s. */
export const mfuPercent = (realTokensPerSecond: number, weights: number, peakFlops: number): number =>
  (100 * LORA_FLOPS_PER_WEIGHT * weights * realTokensPerSecond) / peakFlops;

export interface Measurement {
  /** Steps timed (after the warm-up). */
  timedSteps: number;
  seconds: number;
  /** Tokens of the samples per second, padding excluded (all ranks together). */
  realTokensPerSecond: number;
  /** The same with the padding a padded batch computes (equal to the real figure when packed). */
  paddedTokensPerSecond: number;
  /** Mean real tokens per timed step. */
  tokensPerStep: number;
  /** CUDA: the most allocated at once since the measurement began (weights included), as torch.cuda.max_memory_allocated. CPU: the process's peak resident memory. */
  peakMemoryBytes: number;
  memoryKind: "cuda allocated" | "host resident";
  recomputedLayersPerStep: number;
  /** Every step's loss, warm-up included. */
  losses: number[];
}

export interface MeasureOptions {
  /** The steps, as benchSteps gives them over the global batches. */
  steps: [number, number][];
  padId: number;
  packing: boolean;
  recompute: RecomputePolicy;
  lr: number;
  dataParallel?: DataParallel;
  events?: TrainingEvents;
  signal?: AbortSignal;
  /** Shown with the progress. */
  label?: string;
}

/**
 * Trains the model's LoRA through the steps (each one optimizerStep, as `svdlora train`) and
 * times all but the first WARMUP_STEPS, synchronizing the device at both ends of the clock.
 */
export function measureTraining(model: CausalLM, optimizer: AdamW, samples: number[][], o: MeasureOptions): Measurement {
  const device = optimizer.params[0]?.device ?? "cpu";
  const dp = o.dataParallel ?? singleProcess(device);
  const cuda = device.startsWith("cuda");
  const cudaIndex = cuda ? torch.cuda.index(device) : undefined;
  if (o.steps.length <= WARMUP_STEPS)
    throw new Error(`measureTraining: ${o.steps.length} steps leave none to time after the ${WARMUP_STEPS} warm-up steps`);
  const encoded: Encoded[] = samples.map((ids) => ({ ids, lossMask: ids.map(() => true), truncated: false }));
  const sync = () => {
    if (cuda) torch.cuda.synchronize();
  };
  if (cuda) torch.cuda.resetPeakMemory(cudaIndex);
  o.events?.start?.({ label: o.label ?? "bench", totalSteps: o.steps.length, totalEpochs: 1, startStep: 0, startTokens: 0 });
  const losses: number[] = [];
  let real = 0;
  let padded = 0;
  let recomputed = 0;
  let tokens = 0;
  let start = 0;
  try {
    for (const [k, [from, to]] of o.steps.entries()) {
      if (o.signal?.aborted) throw new InterruptedError(`the benchmark was stopped at step ${k}`);
      if (k === WARMUP_STEPS) {
        sync();
        start = performance.now();
        real = padded = recomputed = 0;
      }
      const global = encoded.slice(from, to);
      const micro = rankMicroBatch(global, 1, dp, { padId: o.padId, device: dp.device, packing: o.packing, dtype: model.dtype });
      const r = optimizerStep(model, optimizer, [micro], { recompute: o.recompute, lr: o.lr, dataParallel: dp });
      losses.push(r.loss);
      real += r.tokens;
      tokens += r.tokens;
      padded += o.packing ? r.tokens : global.length * Math.max(...global.map((s) => s.ids.length));
      recomputed += r.recomputed;
      o.events?.step?.({ step: k + 1, epoch: (k + 1) / o.steps.length, loss: r.loss, lr: o.lr, gradNorm: r.gradNorm, tokens });
    }
    sync();
  } finally {
    o.events?.end?.();
  }
  const seconds = (performance.now() - start) / 1000;
  const timedSteps = o.steps.length - WARMUP_STEPS;
  return {
    timedSteps,
    seconds,
    realTokensPerSecond: real / seconds,
    paddedTokensPerSecond: padded / seconds,
    tokensPerStep: real / timedSteps,
    peakMemoryBytes: cuda ? torch.cuda.memory(cudaIndex).peakAllocated : process.resourceUsage().maxRSS * 1024,
    memoryKind: cuda ? "cuda allocated" : "host resident",
    recomputedLayersPerStep: recomputed / timedSteps,
    losses,
  };
}
