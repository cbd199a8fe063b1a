// The training loop, one for every kind of run (a LoRA adapter, a full fine-tune, pretraining):
// epochs of seeded batches → optimizer steps (gradient accumulation, data parallelism, the memory
// budget's recomputation), held-out loss at step 0, every `evalSteps` and at each epoch's end,
// the run log (CSV, JSONL, TensorBoard: run-log.ts), checkpoints for an exact resume, and a clean
// stop when its signal is aborted.
// What is trained is a set of named tensors; the caller prepares them and saves the result.
import type { Encoded } from "../data/types.js";
import type { CausalLM } from "../model/qwen2.js";
import type { Tensor } from "../torch/index.js";
import type { RecomputePolicy } from "./backprop.js";
import { type BatchOptions, epochOrder, microBatchRanges } from "./batches.js";
import { type EvalRecord, type StepRecord, hasCheckpoint, loadCheckpoint, saveCheckpoint } from "./checkpoint.js";
import { type DataParallel, broadcastFromMain } from "./data-parallel.js";
import { evaluateLoss } from "./evaluate.js";
import { InterruptedError, type TrainingEvents } from "./events.js";
import { AdamW } from "./optim.js";
import { RunLog, type RunLogFiles, epochAt, evalRow, runRows, trainRow } from "./run-log.js";
import { lrAt } from "./schedule.js";
import type { TrainingSettings } from "./settings.js";
import { optimizerStep, rankMicroBatch } from "./step.js";

export type LoopSettings = Pick<
  TrainingSettings,
  | "epochs"
  | "batchSize"
  | "evalBatchSize"
  | "gradientAccumulationSteps"
  | "learningRate"
  | "warmupRatio"
  | "lrScheduler"
  | "weightDecay"
  | "maxGradNorm"
  | "seed"
  | "evalSteps"
  | "saveSteps"
  | "resume"
  | "skipNonfinite"
>;

export interface LoopJob {
  model: CausalLM;
  /** The trained tensors by name (the checkpoint's keys): LoRA factors, or every weight. */
  params: Map<string, Tensor>;
  train: Encoded[];
  /** Held-out test samples (none: no held-out loss). */
  eval: Encoded[];
  /** Held-out validation samples, for choosing settings (none: no validation loss). */
  validation?: Encoded[];
  settings: LoopSettings;
  batch: BatchOptions;
  recompute: RecomputePolicy;
  /** Where the run log goes (null: none, e.g. ranks other than the first). */
  log: RunLogFiles | null;
  checkpointDir: string;
  /** The settings a resume must match. */
  fingerprint: Record<string, unknown>;
  dataParallel: DataParallel;
}

export interface LoopOptions {
  /** Aborting stops the run at the next step boundary, after saving a checkpoint (InterruptedError). */
  signal?: AbortSignal;
  events?: TrainingEvents;
  /** Names the run in progress output. */
  label?: string;
}

export interface LoopResult {
  steps: number;
  stepsPerEpoch: number;
  tokens: number;
  /** Training seconds (a resumed run counts its earlier sessions). */
  seconds: number;
  history: StepRecord[];
  evals: EvalRecord[];
  skipped: number;
  /** The step the run resumed from, or null. */
  resumedFrom: number | null;
}

export async function trainLoop(job: LoopJob, o: LoopOptions = {}): Promise<LoopResult> {
  const { model, settings: s, dataParallel: dp } = job;
  const events = o.events;
  if (job.train.length === 0) throw new Error("no training samples");
  const params = [...job.params.values()];
  const optimizer = new AdamW(params, { lr: s.learningRate, weightDecay: s.weightDecay });
  try {
    broadcastFromMain(params, dp);
    // Each micro-batch takes batchSize samples per rank: a global batch of batchSize × ranks.
    const micro = microBatchRanges(job.train.length, s.batchSize * dp.worldSize);
    const stepsPerEpoch = Math.ceil(micro.length / s.gradientAccumulationSteps);
    const totalSteps = stepsPerEpoch * s.epochs;
    const schedule = { base: s.learningRate, warmupSteps: Math.ceil(s.warmupRatio * totalSteps), totalSteps, kind: s.lrScheduler };

    const resumed =
      s.resume && hasCheckpoint(job.checkpointDir) ? loadCheckpoint(job.checkpointDir, job.params, optimizer, job.fingerprint) : null;
    if (s.resume && !resumed) events?.note?.(`no checkpoint in ${job.checkpointDir}: starting from step 0`);
    let step = resumed?.step ?? 0;
    let tokens = resumed?.tokens ?? 0;
    let skipped = resumed?.skipped ?? 0;
    const history: StepRecord[] = resumed?.history ?? [];
    const evals: EvalRecord[] = resumed?.evals ?? [];
    const log = job.log ? new RunLog(job.log) : null;
    // A resumed run's log starts with the rows of its earlier sessions, rebuilt from its checkpoint.
    if (log) for (const row of runRows(history, evals, stepsPerEpoch)) log.write(row);
    const started = performance.now() - (resumed?.elapsedS ?? 0) * 1000;
    const elapsed = () => (performance.now() - started) / 1000;

    const evaluate = (epoch: number) => {
      if (job.eval.length === 0 || !log) return;
      events?.phase?.("evaluating", `held-out loss, ${job.eval.length + (job.validation?.length ?? 0)} samples`);
      const heldOut = (samples: Encoded[]) => evaluateLoss(model, samples, { ...job.batch, batchSize: s.evalBatchSize ?? s.batchSize });
      const loss = heldOut(job.eval);
      const validationLoss = job.validation?.length ? heldOut(job.validation) : undefined;
      const record = {
        step,
        epoch,
        loss,
        ...(validationLoss === undefined ? {} : { validationLoss }),
        tokens,
        elapsedS: elapsed(),
        time: Date.now() / 1000,
      };
      evals.push(record);
      log.write(evalRow(record));
      events?.evaluated?.({ step, epoch, loss });
      events?.phase?.("training");
    };
    const save = () => {
      if (dp.isMain)
        saveCheckpoint(
          job.checkpointDir,
          job.params,
          optimizer,
          { step, tokens, elapsedS: elapsed(), history, evals, skipped, fingerprint: job.fingerprint },
          { stepsPerEpoch, totalSteps },
        );
    };

    try {
      if (!resumed) evaluate(0);
      events?.phase?.("training");
      events?.start?.({ label: o.label ?? "train", totalSteps, totalEpochs: s.epochs, startStep: step, startTokens: tokens });
      for (let epoch = Math.floor(step / stepsPerEpoch); epoch < s.epochs; epoch++) {
        const order = epochOrder(job.train.length, s.seed, epoch);
        for (let k = step - epoch * stepsPerEpoch; k < stepsPerEpoch; k++) {
          const stepStarted = performance.now();
          const first = k * s.gradientAccumulationSteps;
          const count = Math.min(s.gradientAccumulationSteps, micro.length - first);
          const lr = lrAt(step, schedule);
          const batches = micro.slice(first, first + count).map(([a, b]) =>
            rankMicroBatch(
              order.slice(a, b).map((i) => job.train[i]),
              count,
              dp,
              job.batch,
            ),
          );
          const r = optimizerStep(model, optimizer, batches, {
            recompute: job.recompute,
            maxGradNorm: s.maxGradNorm,
            lr,
            dataParallel: dp,
            stop: o.signal?.aborted,
          });
          tokens += r.tokens;
          if (!r.updated) {
            if (!s.skipNonfinite) {
              const what = Number.isFinite(r.loss) ? `gradient norm became ${r.gradNorm}` : `loss became ${r.loss}`;
              const last = hasCheckpoint(job.checkpointDir)
                ? `the last good checkpoint is in ${job.checkpointDir}`
                : "no checkpoint was saved yet";
              throw new NonFiniteError(
                `${what} at step ${step + 1}: lower \`learningRate\` (now ${s.learningRate}) or set \`skipNonfinite\`; ${last}`,
              );
            }
            skipped++;
          }
          step++;
          const record = {
            loss: r.loss,
            lr,
            gradNorm: r.gradNorm,
            tokens: r.tokens,
            targets: r.targets,
            elapsedS: elapsed(),
            seconds: (performance.now() - stepStarted) / 1000,
            time: Date.now() / 1000,
          };
          history.push(record);
          log?.write(trainRow(record, step, stepsPerEpoch, tokens));
          const epochNow = epochAt(step, stepsPerEpoch);
          events?.step?.({ step, epoch: epochNow, loss: r.loss, lr, gradNorm: r.gradNorm, tokens });
          const lastOfEpoch = k === stepsPerEpoch - 1;
          if (!lastOfEpoch && s.evalSteps > 0 && step % s.evalSteps === 0) evaluate(epochNow);
          if (!lastOfEpoch && s.saveSteps > 0 && step % s.saveSteps === 0) save();
          await new Promise(setImmediate); // lets a pending abort (Ctrl-C) in
          // Every rank stops at the same step: with several, after the step where one of them asked
          // (the flags ride in the step's all-reduce, so this costs no collective of its own).
          const stop = dp.worldSize > 1 ? r.stop : Boolean(o.signal?.aborted);
          if (stop) {
            if (lastOfEpoch) evaluate(epoch + 1);
            save();
            throw new InterruptedError(
              `stopped at step ${step}: checkpoint saved in ${job.checkpointDir}; continue with the same settings and \`resume\``,
            );
          }
        }
        evaluate(epoch + 1);
        save();
      }
    } finally {
      events?.end?.();
      log?.close();
    }
    return { steps: step, stepsPerEpoch, tokens, seconds: elapsed(), history, evals, skipped, resumedFrom: resumed?.step ?? null };
  } finally {
    optimizer.dispose();
  }
}

/** A step's loss or gradient was not finite and skipping was not asked for. */
export class NonFiniteError extends Error {
  override name = "NonFiniteError";
}

/** Mean training loss of each epoch, weighted by each step's predicted tokens (so a short last batch counts for what it holds). */
export function epochLosses(history: readonly StepRecord[], stepsPerEpoch: number): number[] {
  const out: number[] = [];
  for (let start = 0; start < history.length; start += stepsPerEpoch) {
    const steps = history.slice(start, start + stepsPerEpoch).filter((h) => Number.isFinite(h.loss));
    const targets = steps.reduce((n, h) => n + h.targets, 0);
    out.push(steps.reduce((sum, h) => sum + h.loss * h.targets, 0) / targets);
  }
  return out;
}
