// The training loop, one for every kind of run (a LoRA adapter, a full fine-tune, pretraining),
// alone or several LoRA runs at once over one base model (concurrent arms, docs/concurrent.md):
// epochs of seeded batches → optimizer steps (gradient accumulation, data parallelism, the memory
// budget's recomputation), held-out loss at step 0, every `evalSteps` and at each epoch's end,
// the run log (CSV, JSONL, TensorBoard: run-log.ts), checkpoints for an exact resume, and a clean
// stop when its signal is aborted.
// What is trained is a set of named tensors; the caller prepares them and saves the result.
// Concurrent runs step together: each iteration, every run not yet done takes its next step (its
// own batch order, schedule, clipping, optimizer), their micro-batches through the model as one.
import type { Encoded } from "../data/types.js";
import type { CausalLM } from "../model/qwen2.js";
import type { Tensor } from "../torch/index.js";
import type { RecomputePolicy } from "./backprop.js";
import { type BatchOptions, epochOrder, microBatchRanges } from "./batches.js";
import { type EvalRecord, type StepRecord, hasCheckpoint, loadCheckpoint, saveCheckpoint } from "./checkpoint.js";
import { type DataParallel, broadcastFromMain } from "./data-parallel.js";
import { evaluateArmLosses, evaluateLoss } from "./evaluate.js";
import { InterruptedError, type TrainingEvents } from "./events.js";
import { AdamW } from "./optim.js";
import { RunLog, type RunLogFiles, epochAt, evalRow, runRows, trainRow } from "./run-log.js";
import { type Schedule, lrAt } from "./schedule.js";
import type { TrainingSettings } from "./settings.js";
import { type StepResult, optimizerSteps, rankMicroBatch } from "./step.js";

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

/** What is one run's own: what it trains, on what, with which settings, and where it writes. */
export interface LoopRun {
  /** The trained tensors by name (the checkpoint's keys): LoRA factors, or every weight. */
  params: Map<string, Tensor>;
  train: Encoded[];
  /** Held-out test samples (none: no held-out loss). */
  eval: Encoded[];
  /** Held-out validation samples, for choosing settings (none: no validation loss). */
  validation?: Encoded[];
  settings: LoopSettings;
  /** Where the run log goes (null: none, e.g. ranks other than the first). */
  log: RunLogFiles | null;
  checkpointDir: string;
  /** The settings a resume must match. */
  fingerprint: Record<string, unknown>;
  /** The run's arm on a model carrying concurrent arms; none for a run alone. */
  arm?: number;
}

/** What runs share: the model, how batches are made, the recomputation policy and the processes. */
export interface LoopShared {
  model: CausalLM;
  batch: BatchOptions;
  recompute: RecomputePolicy;
  dataParallel: DataParallel;
}

export interface LoopJob extends LoopRun, LoopShared {}

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

/** How one of several concurrent runs ended: its result, or the error that stopped it alone (the others went on). */
export type LoopOutcome = { ok: true; result: LoopResult } | { ok: false; error: Error };

export async function trainLoop(job: LoopJob, o: LoopOptions = {}): Promise<LoopResult> {
  const { model, batch, recompute, dataParallel, ...run } = job;
  const [outcome] = await trainLoops({ model, batch, recompute, dataParallel }, [{ ...run, label: o.label, events: o.events }], o);
  if (!outcome.ok) throw outcome.error;
  return outcome.result;
}

/**
 * Trains several runs at once: one alone on a model without arms, or any number of arms of a model
 * carrying them. A run whose loss or gradient stops being finite (without skipNonfinite) stops by
 * itself, and its outcome says why; an abort stops every run at the same iteration, each saving
 * its checkpoint, and throws InterruptedError.
 */
export async function trainLoops(
  shared: LoopShared,
  runs: (LoopRun & { label?: string; events?: TrainingEvents })[],
  o: { signal?: AbortSignal } = {},
): Promise<LoopOutcome[]> {
  const { model, dataParallel: dp } = shared;
  for (const run of runs) if (run.train.length === 0) throw new Error("no training samples");
  const states: RunState[] = [];
  try {
    for (const run of runs) states.push(new RunState(shared, run));
    // Held-out loss before any update, for the runs that start afresh.
    evaluate(
      shared,
      states.filter((s) => !s.resumed).map((s) => ({ s, epoch: 0 })),
    );
    for (const s of states) {
      s.events?.phase?.("training");
      s.events?.start?.({
        label: s.run.label ?? "train",
        totalSteps: s.totalSteps,
        totalEpochs: s.run.settings.epochs,
        startStep: s.step,
        startTokens: s.tokens,
      });
    }
    for (;;) {
      const active = states.filter((s) => !s.error && s.step < s.totalSteps);
      if (active.length === 0) break;
      const next = active.map((s) => s.next());
      const stepStarted = performance.now();
      const results = optimizerSteps(
        model,
        active.map((s, i) => ({
          optimizer: s.optimizer,
          micro: next[i].micro,
          lr: next[i].lr,
          maxGradNorm: s.run.settings.maxGradNorm,
          arm: s.run.arm,
        })),
        { recompute: shared.recompute, dataParallel: dp, stop: o.signal?.aborted },
      );
      const seconds = (performance.now() - stepStarted) / 1000;
      const due = active.map((s, i) => ({ s, ...s.record(results[i], { ...next[i], seconds }) })).filter((d) => !d.s.error);
      evaluate(
        shared,
        due.filter((d) => d.evaluate).map((d) => ({ s: d.s, epoch: d.epoch })),
      );
      for (const d of due) if (d.save) d.s.save();
      if (states.every((s) => s.error)) break;
      await new Promise(setImmediate); // lets a pending abort (Ctrl-C) in
      // Every rank stops at the same step: with several, after the step where one of them asked
      // (the flags ride in the step's all-reduce, so this costs no collective of its own).
      const stop = dp.worldSize > 1 ? results[0].stop : Boolean(o.signal?.aborted);
      if (stop) {
        const stopped = states.filter((s) => !s.error);
        for (const s of stopped) if (s.savedAt !== s.step) s.save();
        const where = (s: RunState) => `step ${s.step}: checkpoint saved in ${s.run.checkpointDir}`;
        throw new InterruptedError(
          stopped.length === 1
            ? `stopped at ${where(stopped[0])}; continue with the same settings and \`resume\``
            : `stopped (${stopped.map((s) => `${s.run.label ?? "train"} at ${where(s)}`).join("; ")}); continue with the same settings and \`resume\``,
        );
      }
    }
    return states.map((s) => s.outcome());
  } finally {
    for (const s of states) s.close();
  }
}

/** Held-out (and validation) losses of the runs due for one, together when the model carries arms. */
function evaluate(shared: LoopShared, due: { s: RunState; epoch: number }[]): void {
  const runs = due.filter(({ s }) => s.run.eval.length > 0 && s.log);
  if (runs.length === 0) return;
  for (const { s } of runs)
    s.events?.phase?.("evaluating", `held-out loss, ${s.run.eval.length + (s.run.validation?.length ?? 0)} samples`);
  const batchSize = (s: RunState) => s.run.settings.evalBatchSize ?? s.run.settings.batchSize;
  const losses = (sets: { s: RunState; samples: Encoded[] }[]): number[] =>
    sets.length === 0
      ? []
      : shared.model.armCount > 0
        ? evaluateArmLosses(
            shared.model,
            sets.map(({ s, samples }) => ({ arm: s.run.arm!, samples, batchSize: batchSize(s) })),
            shared.batch,
          )
        : sets.map(({ s, samples }) => evaluateLoss(shared.model, samples, { ...shared.batch, batchSize: batchSize(s) }));
  const test = losses(runs.map(({ s }) => ({ s, samples: s.run.eval })));
  const validated = runs.filter(({ s }) => (s.run.validation?.length ?? 0) > 0);
  const validation = losses(validated.map(({ s }) => ({ s, samples: s.run.validation! })));
  runs.forEach(({ s, epoch }, i) => {
    const v = validated.findIndex((d) => d.s === s);
    const record = {
      step: s.step,
      epoch,
      loss: test[i],
      ...(v < 0 ? {} : { validationLoss: validation[v] }),
      tokens: s.tokens,
      elapsedS: s.elapsed(),
      time: Date.now() / 1000,
    };
    s.evals.push(record);
    s.log!.write(evalRow(record));
    s.events?.evaluated?.({ step: s.step, epoch, loss: test[i] });
    s.events?.phase?.("training");
  });
}

/** One run's place in the loop: its optimizer, schedule, batch order, history, log and checkpoints. */
class RunState {
  readonly optimizer: AdamW;
  readonly events: TrainingEvents | undefined;
  readonly micro: [number, number][];
  readonly stepsPerEpoch: number;
  readonly totalSteps: number;
  readonly resumed: ReturnType<typeof loadCheckpoint> | null;
  readonly history: StepRecord[];
  readonly evals: EvalRecord[];
  readonly log: RunLog | null = null;
  step: number;
  tokens: number;
  skipped: number;
  error: Error | null = null;
  /** The step of the last checkpoint this session saved (−1: none). */
  savedAt = -1;
  private readonly schedule: Schedule;
  private readonly started: number;
  private order: { epoch: number; order: number[] } | null = null;
  private closed = false;

  constructor(
    private readonly shared: LoopShared,
    readonly run: LoopRun & { label?: string; events?: TrainingEvents },
  ) {
    const s = run.settings;
    const dp = shared.dataParallel;
    this.events = run.events;
    const params = [...run.params.values()];
    this.optimizer = new AdamW(params, { lr: s.learningRate, weightDecay: s.weightDecay });
    try {
      broadcastFromMain(params, dp);
      // Each micro-batch takes batchSize samples per rank: a global batch of batchSize × ranks.
      this.micro = microBatchRanges(run.train.length, s.batchSize * dp.worldSize);
      this.stepsPerEpoch = Math.ceil(this.micro.length / s.gradientAccumulationSteps);
      this.totalSteps = this.stepsPerEpoch * s.epochs;
      this.schedule = {
        base: s.learningRate,
        warmupSteps: Math.ceil(s.warmupRatio * this.totalSteps),
        totalSteps: this.totalSteps,
        kind: s.lrScheduler,
      };
      this.resumed =
        s.resume && hasCheckpoint(run.checkpointDir)
          ? this.withGenerators(() => loadCheckpoint(run.checkpointDir, run.params, this.optimizer, run.fingerprint))
          : null;
      if (s.resume && !this.resumed) this.events?.note?.(`no checkpoint in ${run.checkpointDir}: starting from step 0`);
      this.step = this.resumed?.step ?? 0;
      this.tokens = this.resumed?.tokens ?? 0;
      this.skipped = this.resumed?.skipped ?? 0;
      this.history = this.resumed?.history ?? [];
      this.evals = this.resumed?.evals ?? [];
      if (run.log) {
        this.log = new RunLog(run.log);
        // A resumed run's log starts with the rows of its earlier sessions, rebuilt from its checkpoint.
        for (const row of runRows(this.history, this.evals, this.stepsPerEpoch)) this.log.write(row);
      }
      this.started = performance.now() - (this.resumed?.elapsedS ?? 0) * 1000;
    } catch (e) {
      this.optimizer.dispose();
      throw e;
    }
  }

  elapsed(): number {
    return (performance.now() - this.started) / 1000;
  }

  /** The micro-batches and learning rate of the run's next step. */
  next(): { micro: ReturnType<typeof rankMicroBatch>[]; lr: number; epoch: number; lastOfEpoch: boolean } {
    const { run, shared } = this;
    const s = run.settings;
    const epoch = Math.floor(this.step / this.stepsPerEpoch);
    if (this.order?.epoch !== epoch) this.order = { epoch, order: epochOrder(run.train.length, s.seed, epoch) };
    const order = this.order.order;
    const k = this.step - epoch * this.stepsPerEpoch;
    const first = k * s.gradientAccumulationSteps;
    const count = Math.min(s.gradientAccumulationSteps, this.micro.length - first);
    const micro = this.micro.slice(first, first + count).map(([a, b]) =>
      rankMicroBatch(
        order.slice(a, b).map((i) => run.train[i]),
        count,
        shared.dataParallel,
        shared.batch,
      ),
    );
    return { micro, lr: lrAt(this.step, this.schedule), epoch, lastOfEpoch: k === this.stepsPerEpoch - 1 };
  }

  /** Books a step's result; says whether a held-out loss and a checkpoint are due after it (none once the run failed). */
  record(
    r: StepResult,
    step: { lr: number; epoch: number; lastOfEpoch: boolean; seconds: number },
  ): { evaluate: boolean; save: boolean; epoch: number } {
    const s = this.run.settings;
    const { lr, lastOfEpoch } = step;
    this.tokens += r.tokens;
    if (!r.updated) {
      if (!s.skipNonfinite) {
        const what = Number.isFinite(r.loss) ? `gradient norm became ${r.gradNorm}` : `loss became ${r.loss}`;
        const last = hasCheckpoint(this.run.checkpointDir)
          ? `the last good checkpoint is in ${this.run.checkpointDir}`
          : "no checkpoint was saved yet";
        this.error = new NonFiniteError(
          what,
          this.step + 1,
          `lower \`learningRate\` (now ${s.learningRate}) or set \`skipNonfinite\`; ${last}`,
        );
        this.close();
        return { evaluate: false, save: false, epoch: step.epoch };
      }
      this.skipped++;
    }
    this.step++;
    const { step: n, tokens } = this;
    const record = {
      loss: r.loss,
      lr,
      gradNorm: r.gradNorm,
      tokens: r.tokens,
      targets: r.targets,
      elapsedS: this.elapsed(),
      seconds: step.seconds,
      time: Date.now() / 1000,
    };
    this.history.push(record);
    this.log?.write(trainRow(record, n, this.stepsPerEpoch, tokens));
    const epochNow = epochAt(n, this.stepsPerEpoch);
    this.events?.step?.({ step: n, epoch: epochNow, loss: r.loss, lr, gradNorm: r.gradNorm, tokens });
    return {
      evaluate: lastOfEpoch || (s.evalSteps > 0 && n % s.evalSteps === 0),
      save: lastOfEpoch || (s.saveSteps > 0 && n % s.saveSteps === 0),
      epoch: lastOfEpoch ? step.epoch + 1 : epochNow,
    };
  }

  save(): void {
    const { run } = this;
    this.savedAt = this.step;
    if (!this.shared.dataParallel.isMain) return;
    const position = {
      step: this.step,
      tokens: this.tokens,
      elapsedS: this.elapsed(),
      history: this.history,
      evals: this.evals,
      skipped: this.skipped,
      fingerprint: run.fingerprint,
    };
    this.withGenerators(() =>
      saveCheckpoint(run.checkpointDir, run.params, this.optimizer, position, {
        stepsPerEpoch: this.stepsPerEpoch,
        totalSteps: this.totalSteps,
      }),
    );
  }

  outcome(): LoopOutcome {
    if (this.error) return { ok: false, error: this.error };
    const { step: steps, stepsPerEpoch, tokens, history, evals, skipped } = this;
    return {
      ok: true,
      result: { steps, stepsPerEpoch, tokens, seconds: this.elapsed(), history, evals, skipped, resumedFrom: this.resumed?.step ?? null },
    };
  }

  /** Ends the run's progress output and log and frees its optimizer (once). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      this.events?.end?.();
      this.log?.close();
    } finally {
      this.optimizer.dispose();
    }
  }

  // A concurrent arm's checkpoint keeps (and its resume restores) the arm's own generator, as a run alone keeps the global one.
  private withGenerators<R>(fn: () => R): R {
    const generators = this.shared.model.generators;
    return generators && this.run.arm !== undefined ? generators.use(this.run.arm, fn) : fn();
  }
}

/** A step's loss or gradient was not finite and skipping was not asked for. */
export class NonFiniteError extends Error {
  override name = "NonFiniteError";
  /**
   * @param what what stopped being finite ("loss became NaN")
   * @param step the optimizer step it happened at (from 1)
   * @param advice what to do about it
   */
  constructor(
    readonly what: string,
    readonly step: number,
    advice: string,
  ) {
    super(`${what} at step ${step}: ${advice}`);
  }
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
