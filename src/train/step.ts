// One optimizer step over one or more micro-batches: forward and backward of each, the gradients
// summed across ranks when data-parallel, one host read of the loss and gradient norm, clipping,
// and the AdamW update when both are finite. Concurrent arms (a model carrying arms) take their
// step together: each micro-batch of the step holds every arm's samples, and the one host read
// covers every arm; each arm's clipping, update and learning rate stay its own.
import type { Encoded } from "../data/types.js";
import type { CausalLM } from "../model/qwen2.js";
import * as torch from "../torch/index.js";
import type { Tensor } from "../torch/index.js";
import { type RecomputePolicy, lossAndBackward } from "./backprop.js";
import { type Batch, type BatchOptions, armsBatch, makeBatch, targetCount } from "./batches.js";
import { gradNorms, gradsOf, scaleToMaxNorms } from "./clip.js";
import { type DataParallel, GradientSum, bucketPlan, shareOf } from "./data-parallel.js";
import { AdamW } from "./optim.js";

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
 * return null: this rank has no samples in a short last batch. samples are this rank's.
 */
export interface MicroBatch {
  make: () => Batch | null;
  weight: number;
  samples: Encoded[];
  batch: BatchOptions;
}

/** This rank's token-balanced share of a global micro-batch (one of `count` in the step), weighted as MicroBatch says. */
export function rankMicroBatch(global: Encoded[], count: number, dp: DataParallel, batch: BatchOptions): MicroBatch {
  const mine = shareOf(global, dp, (sample) => sample.ids.length);
  const weight = dp.worldSize === 1 ? 1 / count : targetCount(mine) / (targetCount(global) * count);
  return { make: () => (mine.length > 0 ? makeBatch(mine, batch) : null), weight, samples: mine, batch };
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
  /** Layers recomputed in backward, summed over the micro-batches (all arms' together when concurrent). */
  recomputed: number;
  /** Whether any rank passed `stop` for this step. */
  stop: boolean;
  /** Milliseconds this process spent queueing forward and backward, finishing the gradients' sum
   * across ranks, reading the step's numbers (waiting for the device) and queueing the update
   * (all arms' together when concurrent). */
  hostMs: { backward: number; sum: number; read: number; update: number };
}

/** One run's part of a step: its optimizer, micro-batches, learning rate and clipping, and its arm when the model carries arms. */
export interface RunStep {
  optimizer: AdamW;
  micro: MicroBatch[];
  lr: number;
  maxGradNorm?: number;
  arm?: number;
}

/** Runs the micro-batches and updates the parameters. Gradients are cleared afterwards in every case. */
export function optimizerStep(model: CausalLM, optimizer: AdamW, micro: MicroBatch[], o: StepOptions): StepResult {
  return optimizerSteps(model, [{ optimizer, micro, lr: o.lr, maxGradNorm: o.maxGradNorm }], o)[0];
}

/**
 * One step of each run: a run alone (no arm) on a model without arms, or any number of arms of a
 * model carrying them, whose j-th micro-batches go through the model together. Concurrent arms
 * train in one process (no data-parallel ranks).
 */
export function optimizerSteps(
  model: CausalLM,
  runs: RunStep[],
  o: { recompute: RecomputePolicy; dataParallel?: DataParallel; overlap?: boolean; stop?: boolean },
): StepResult[] {
  const concurrent = model.armCount > 0;
  if (runs.some((r) => (r.arm !== undefined) !== concurrent) || (!concurrent && runs.length !== 1))
    throw new Error(
      concurrent
        ? "optimizerSteps: the model carries arms: every run needs its arm"
        : "optimizerSteps: one run, without an arm, on a model without arms",
    );
  const dp = o.dataParallel;
  if (concurrent && dp && dp.worldSize > 1) throw new Error("optimizerSteps: concurrent arms train in one process");
  const started = performance.now();
  const device = runs[0].optimizer.params[0]?.device ?? "cpu";
  // Every run's weighted loss so far as one float32 tensor [runs]; with several ranks, what they sum (below).
  const sums: { losses: Tensor | null; local: Tensor | null } = { losses: null, local: null };
  const counts = runs.map(() => ({ tokens: 0, targets: 0 }));
  let recomputed = 0;
  const gradientSum = dp && dp.worldSize > 1 ? new GradientSum(bucketPlan(model, runs[0].optimizer.params)) : null;
  // The gradients are final in the last micro-batch's backward: each bucket's sum can start in it,
  // when backward is done with the bucket's layers.
  const overlap =
    gradientSum && (o.overlap ?? true)
      ? { onLayersDone: (first: number) => gradientSum.layersDone(first), segmentStarts: gradientSum.segmentStarts }
      : {};
  let norms: Tensor | null = null;
  let grads: Tensor[][] = [];
  try {
    const microCount = Math.max(...runs.map((r) => r.micro.length));
    for (let j = 0; j < microCount; j++)
      torch.tidy(() => {
        // The runs that have a j-th micro-batch with samples on this rank.
        const here = runs.flatMap((r, i) => (r.micro[j] && r.micro[j].samples.length > 0 ? [{ i, r, m: r.micro[j] }] : []));
        if (here.length === 0) return;
        const b = concurrent
          ? armsBatch(
              here.map(({ r, m }) => ({ arm: r.arm!, samples: m.samples })),
              here[0].m.batch,
            )
          : here[0].m.make();
        if (!b) return;
        const last = j === microCount - 1 ? overlap : {};
        const r = lossAndBackward(model, b, { gradScale: here.map(({ m }) => m.weight), recompute: o.recompute, ...last });
        recomputed += r.recomputed;
        here.forEach(({ i }, k) => {
          counts[i].tokens += b.arms ? b.arms[k].tokens : b.tokens;
          counts[i].targets += b.arms ? b.arms[k].targets : b.targets;
        });
        const added = spread(
          weighted(
            concurrent ? r.loss : r.loss.reshape([1]),
            here.map(({ m }) => m.weight),
          ),
          here.map(({ i }) => i),
          runs.length,
        );
        const sum = sums.losses ? sums.losses.add(added) : added;
        sums.losses?.dispose();
        sums.losses = torch.keep(sum);
      });
    sums.losses ??= torch.keep(torch.zeros([runs.length], { device }));
    const losses = sums.losses;
    // With several ranks, each run's weighted loss, token and target counts and stop flag are summed
    // along with the gradients; one rank reads its losses as they are and knows the rest.
    if (gradientSum)
      sums.local = torch.keep(
        torch.noGrad(() =>
          torch.tidy(() =>
            torch.stack(
              runs.flatMap((_, i) => [
                losses.select(0, i),
                ...[counts[i].tokens, counts[i].targets, o.stop ? 1 : 0].map((n) => torch.full([], n, { dtype: "float32", device })),
              ]),
            ),
          ),
        ),
      );
    const local = sums.local;
    const queued = performance.now();
    if (local) gradientSum?.finish([local]);
    const summed = performance.now();
    // Each run's gradients, read once for its norm and its clipping.
    grads = runs.map((r) => gradsOf(r.optimizer.params));
    norms = torch.keep(gradNorms(grads, device));
    // The only host sync of the step: every run's loss, tokens and gradient norm in one read, after all the backward work is queued.
    const numbers = torch.tidy(() => torch.cat([local ?? losses, norms!.to("float32")], 0).toArray()) as number[];
    const read = performance.now();
    const width = local ? 4 : 1;
    const steps = runs.map((_, i): Omit<StepResult, "hostMs"> => {
      const row = numbers.slice(width * i, width * (i + 1));
      const [loss, tokens, targets, stops] = local ? row : [row[0], counts[i].tokens, counts[i].targets, o.stop ? 1 : 0];
      const gradNorm = numbers[width * runs.length + i];
      const updated = Number.isFinite(loss) && Number.isFinite(gradNorm);
      return { loss, gradNorm, tokens, targets, updated, recomputed, stop: stops > 0 };
    });
    scaleToMaxNorms(
      grads,
      norms,
      steps.map((s) => s.gradNorm),
      runs.map((r, i) => (steps[i].updated ? r.maxGradNorm || undefined : undefined)),
    );
    runs.forEach((r, i) => {
      if (steps[i].updated) r.optimizer.setLr(r.lr);
    });
    AdamW.stepAll(runs.filter((_, i) => steps[i].updated).map((r) => r.optimizer));
    const hostMs = { backward: queued - started, sum: summed - queued, read: read - summed, update: performance.now() - read };
    return steps.map((step) => ({ ...step, hostMs }));
  } finally {
    torch.dispose([sums.losses, sums.local, norms, ...grads.flat()]);
    for (const r of runs) r.optimizer.zeroGrad();
  }
}

/** Each run's loss times its micro-batch weight: one product for all the runs (none when every weight is 1). */
function weighted(losses: Tensor, weights: number[]): Tensor {
  if (weights.every((w) => w === 1)) return losses;
  if (weights.every((w) => w === weights[0])) return losses.mul(weights[0]);
  return losses.mul(torch.hostVector(weights, "float32", losses.device));
}

/** A tensor [runs] with values[k] at position at[k] and 0 at the runs not in `at` (those without this micro-batch). */
function spread(values: Tensor, at: number[], runs: number): Tensor {
  if (at.length === runs) return values;
  const zero = torch.zeros([1], { dtype: values.dtype, device: values.device });
  return torch.cat(
    Array.from({ length: runs }, (_, i) => (at.includes(i) ? values.narrow(0, at.indexOf(i), 1) : zero)),
    0,
  );
}
