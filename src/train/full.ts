// Full-parameter training of every weight (pretraining the tiny model, `svdlora train-full`):
// the same AdamW, schedule, clipping, log and progress as LoRA training.
import type { Encoded } from "../data/types.js";
import type { CausalLM } from "../model/qwen2.js";
import * as torch from "../torch/index.js";
import { epochOrder, makeBatch } from "./batches.js";
import { clipGradNorm } from "./clip.js";
import { TrainingLogWriter } from "./log.js";
import { AdamW } from "./optim.js";
import { TrainingProgress } from "./progress.js";
import { type ScheduleKind, lrAt } from "./schedule.js";

export interface FullTrainOptions {
  epochs: number;
  batchSize: number;
  learningRate: number;
  weightDecay: number;
  warmupRatio: number;
  scheduler: ScheduleKind;
  maxGradNorm: number;
  seed: number;
  padId: number;
  device: string;
  packing: boolean;
  logPath?: string;
  label?: string;
  quiet?: boolean;
}

/** Trains all of model's weights in place; returns the per-step losses. */
export function trainFull(model: CausalLM, data: Encoded[], o: FullTrainOptions): { losses: number[]; tokens: number; seconds: number } {
  const params = [...model.namedWeights().values()];
  for (const p of params) p.requiresGrad_();
  const optimizer = new AdamW(params, { lr: o.learningRate, weightDecay: o.weightDecay });
  const stepsPerEpoch = Math.ceil(data.length / o.batchSize);
  const totalSteps = stepsPerEpoch * o.epochs;
  const schedule = { base: o.learningRate, warmupSteps: Math.ceil(o.warmupRatio * totalSteps), totalSteps, kind: o.scheduler };
  const log = o.logPath ? new TrainingLogWriter(o.logPath) : null;
  const progress = new TrainingProgress({ totalSteps, totalEpochs: o.epochs, label: o.label ?? "train-full", quiet: o.quiet });
  const started = performance.now();
  const losses: number[] = [];
  let tokens = 0,
    step = 0;
  try {
    for (let epoch = 0; epoch < o.epochs; epoch++) {
      const order = epochOrder(data.length, o.seed, epoch);
      for (let s = 0; s < stepsPerEpoch; s++) {
        const samples = order.slice(s * o.batchSize, (s + 1) * o.batchSize).map((i) => data[i]);
        const loss = torch.tidy(() => {
          const b = makeBatch(samples, o);
          const l = model.loss(b.ids, b.labels, b.options);
          l.backward();
          tokens += b.tokens;
          return l.item();
        });
        if (!Number.isFinite(loss)) throw new Error(`loss became ${loss} at step ${step + 1}: lower the learning rate`);
        const gradNorm = clipGradNorm(params, o.maxGradNorm);
        const lr = lrAt(step, schedule);
        optimizer.setLr(lr);
        optimizer.step();
        optimizer.zeroGrad();
        step++;
        losses.push(loss);
        const epochNow = epoch + (s + 1) / stepsPerEpoch;
        log?.writeTrain({ step, epoch: epochNow, loss, lr, gradNorm, tokens, elapsedS: (performance.now() - started) / 1000 });
        progress.update({ step, epoch: epochNow, loss, tokens, lr });
      }
    }
  } finally {
    progress.stop();
    log?.close();
    optimizer.dispose();
    for (const p of params) p.requiresGrad_(false);
  }
  return { losses, tokens, seconds: (performance.now() - started) / 1000 };
}
