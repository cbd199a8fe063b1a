// One optimizer step over one or more micro-batches: forward and backward of each, the gradients
// summed across ranks when data-parallel, one host read of the loss and gradient norm, clipping,
// and the AdamW update when both are finite.
import type { CausalLM } from "../model/qwen2.js";
import * as torch from "../torch/index.js";
import type { Tensor } from "../torch/index.js";
import { type RecomputePolicy, lossAndBackward } from "./backprop.js";
import type { Encoded } from "../data/types.js";
import { type Batch, type BatchOptions, makeBatch } from "./batches.js";
import { type DataParallel, GradientSum, bucketPlan, shareOf } from "./data-parallel.js";
import { gradNormTensor, scaleToMaxNorm } from "./clip.js";
import type { AdamW } from "./optim.js";

export interface StepOptions {
  recompute: RecomputePolicy;
  /** Gradient clipping norm; 0 or undefined = no clipping (the norm is still reported). */
  maxGradNorm?: number;
  lr: number;
  dataParallel?: DataParallel;
  /** With several ranks: sum each bucket of layers' gradients while backward goes on (default);
   * false: all of them after backward. */
  overlap?: boolean;
  /** This rank asks every rank to stop after this step (StepResult.stop). */
  stop?: boolean;
}

/**
 * A micro-batch, made just in time (so only one is on the device), and its weight in the step's
 * loss: 1 / micro-batches alone; with several ranks, this rank's share of the global micro-batch's
 * targets over the micro-batch count, so the summed gradient is the global batch's. make() may
 * return null: this rank has no samples in a short last batch.
 */
export interface MicroBatch {
  make: () => Batch | null;
  weight: number;
}

// Targets these samples give (position 0 of a sample predicts nothing).
const targetCount = (samples: Encoded[]) => samples.reduce((n, s) => n + s.lossMask.filter((on, t) => on && t > 0).length, 0);

/** This rank's token-balanced share of a global micro-batch (one of `count` in the step), weighted as MicroBatch says. */
export function rankMicroBatch(global: Encoded[], count: number, dp: DataParallel, batch: BatchOptions): MicroBatch {
  const mine = shareOf(global, dp, (sample) => sample.ids.length);
  const weight = dp.worldSize === 1 ? 1 / count : targetCount(mine) / (targetCount(global) * count);
  return { make: () => (mine.length > 0 ? makeBatch(mine, batch) : null), weight };
}

export interface StepResult {
  /** Mean loss over the micro-batches. */
  loss: number;
  gradNorm: number;
  tokens: number;
  /** Predicted tokens the loss is the mean over (all ranks). */
  targets: number;
  /** False when the loss or gradient norm was not finite: nothing was updated. */
  updated: boolean;
  /** Layers recomputed in backward, summed over the micro-batches. */
  recomputed: number;
  /** Whether any rank passed `stop` for this step. */
  stop: boolean;
  /** Milliseconds this process spent queueing forward and backward, finishing the gradients' sum
   * across ranks, reading the step's numbers (waiting for the device) and queueing the update. */
  hostMs: { backward: number; sum: number; read: number; update: number };
}

/** Runs the micro-batches and updates the parameters. Gradients are cleared afterwards in every case. */
export function optimizerStep(model: CausalLM, optimizer: AdamW, micro: MicroBatch[], o: StepOptions): StepResult {
  const params = optimizer.params;
  const started = performance.now();
  let tokens = 0;
  let targets = 0;
  let recomputed = 0;
  let lossSum: Tensor | null = null;
  const dp = o.dataParallel;
  const gradientSum = dp && dp.worldSize > 1 ? new GradientSum(bucketPlan(model, params)) : null;
  // The gradients are final in the last micro-batch's backward: each bucket's sum can start in it,
  // when backward is done with the bucket's layers.
  const lastMicro = micro[micro.length - 1];
  const overlap =
    gradientSum && (o.overlap ?? true)
      ? { onLayersDone: (first: number) => gradientSum.layersDone(first), segmentStarts: gradientSum.segmentStarts }
      : {};
  for (const m of micro)
    torch.tidy(() => {
      const b = m.make();
      if (!b) return;
      const r = lossAndBackward(model, b, { gradScale: m.weight, recompute: o.recompute, ...(m === lastMicro ? overlap : {}) });
      recomputed += r.recomputed;
      const sum: Tensor = lossSum ? lossSum.add(r.loss.mul(m.weight)) : r.loss.mul(m.weight);
      lossSum?.dispose();
      lossSum = torch.keep(sum);
      tokens += b.tokens;
      targets += b.targets;
    });
  const device = params[0]?.device ?? "cpu";
  // This rank's weighted loss, token and target counts and stop flag; with several ranks they are summed along with the gradients.
  const local = torch.noGrad(() =>
    torch.tidy(() =>
      torch.stack([
        lossSum ? (lossSum as Tensor).to("float32") : torch.zeros([], { device }),
        ...[tokens, targets, o.stop ? 1 : 0].map((n) => torch.full([], n, { dtype: "float32", device })),
      ]),
    ),
  );
  torch.dispose(lossSum);
  const queued = performance.now();
  gradientSum?.finish([local]);
  const summed = performance.now();
  const norm = gradNormTensor(params);
  try {
    // The only host sync of the step: loss, tokens and gradient norm in one read, after all the backward work is queued.
    const [loss, stepTokens, stepTargets, stops, gradNorm] = torch.tidy(() =>
      torch.cat([local, (norm ?? torch.zeros([], { device })).to({ device }).reshape([1])]).toArray(),
    ) as number[];
    const read = performance.now();
    tokens = stepTokens;
    targets = stepTargets;
    const updated = Number.isFinite(loss) && Number.isFinite(gradNorm);
    if (updated) {
      if (o.maxGradNorm && norm) scaleToMaxNorm(params, norm, gradNorm, o.maxGradNorm);
      optimizer.setLr(o.lr);
      optimizer.step();
    }
    const hostMs = { backward: queued - started, sum: summed - queued, read: read - summed, update: performance.now() - read };
    return { loss, gradNorm, tokens, targets, updated, recomputed, stop: stops > 0, hostMs };
  } finally {
    torch.dispose([local, norm]);
    optimizer.zeroGrad();
  }
}
