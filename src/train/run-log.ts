// The run log: each row a training run logs (a step, or a held-out evaluation) goes, from one
// call, to three files written and flushed as training goes, so a crash leaves a valid prefix:
//   training_log.csv     the table svdlora reads back (log.ts: columns and number formats)
//   training_log.jsonl   one JSON object per row: the CSV's fields (empty ones left out, NaN and
//                        ±inf as null) plus tokens_per_second on step rows
//   tensorboard/events.out.tfevents.*   scalars for `tensorboard --logdir`, under Hugging Face
//                        Trainer's tag names: train/loss, train/learning_rate, train/grad_norm,
//                        train/epoch, train/tokens_per_second, eval/loss
// A resumed run starts all three afresh and writes its earlier rows first, rebuilt from its
// checkpoint's records (runRows) — the same rows Hugging Face's log_history is made of.
import * as fs from "node:fs";
import * as path from "node:path";
import { writeAll } from "../util/atomic.js";
import { type EvalRow, type TrainRow, TrainingLogWriter, formatReal } from "./log.js";
import { EventFileWriter } from "./tfevents.js";

/** One optimizer step as the run saw it: its mean loss, what it trained on, its learning rate and gradient norm. */
export interface StepRecord {
  loss: number;
  lr: number;
  gradNorm: number;
  /** Tokens in the step's batches (padding excluded). */
  tokens: number;
  /** Predicted tokens the loss is the mean over. */
  targets: number;
  /** Seconds since the run started, when the step ended. */
  elapsedS: number;
  /** Seconds the step itself took (its batches, backward and update). */
  seconds: number;
  /** When the step ended, in seconds since 1970 (TensorBoard's wall time). */
  time: number;
}

export interface EvalRecord {
  step: number;
  epoch: number;
  /** Held-out loss on the test set. */
  loss: number;
  /** Held-out loss on the validation set, when the held-out data has one. */
  validationLoss?: number;
  /** Training tokens processed before it (cumulative). */
  tokens: number;
  elapsedS: number;
  /** When it ended, in seconds since 1970. */
  time: number;
}

/** A row of the run log. */
export type RunRow = ({ kind: "train"; tokensPerSecond: number; time: number } & TrainRow) | ({ kind: "eval"; time: number } & EvalRow);

/** Epochs done after `step` optimizer steps: whole epochs plus the share of the current one. */
export const epochAt = (step: number, stepsPerEpoch: number) =>
  Math.floor((step - 1) / stepsPerEpoch) + (((step - 1) % stepsPerEpoch) + 1) / stepsPerEpoch;

/** The row of step `step` (1 for the first), with the training tokens processed up to it. */
export function trainRow(h: StepRecord, step: number, stepsPerEpoch: number, tokensSoFar: number): RunRow {
  return {
    kind: "train",
    step,
    epoch: epochAt(step, stepsPerEpoch),
    loss: h.loss,
    lr: h.lr,
    gradNorm: h.gradNorm,
    tokens: tokensSoFar,
    elapsedS: h.elapsedS,
    tokensPerSecond: h.tokens / h.seconds,
    time: h.time,
  };
}

export const evalRow = (e: EvalRecord): RunRow => ({
  kind: "eval",
  step: e.step,
  epoch: e.epoch,
  evalLoss: e.loss,
  tokens: e.tokens,
  elapsedS: e.elapsedS,
  time: e.time,
});

/** Every row of a run so far, in the order they were logged: each step, then the evaluations made right after it. */
export function runRows(history: readonly StepRecord[], evals: readonly EvalRecord[], stepsPerEpoch: number): RunRow[] {
  const rows: RunRow[] = [];
  let e = 0;
  const evalsUpTo = (step: number) => {
    for (; e < evals.length && evals[e].step <= step; e++) rows.push(evalRow(evals[e]));
  };
  evalsUpTo(0);
  let tokens = 0;
  history.forEach((h, i) => {
    tokens += h.tokens;
    rows.push(trainRow(h, i + 1, stepsPerEpoch, tokens));
    evalsUpTo(i + 1);
  });
  return rows;
}

/** Where a run's log files go: `<name>.csv`, `<name>.jsonl` and a tensorboard/ folder in dir. */
export interface RunLogFiles {
  csv: string;
  jsonl: string;
  tensorboard: string;
}

export const runLogFiles = (dir: string, name = "training_log"): RunLogFiles => ({
  csv: path.join(dir, `${name}.csv`),
  jsonl: path.join(dir, `${name}.jsonl`),
  tensorboard: path.join(dir, "tensorboard"),
});

/** A real as the CSV writes it (float32's shortest decimal), or null where JSON has no number (NaN, ±inf). */
const jsonReal = (x: number): number | null => (Number.isFinite(x) ? Number(formatReal(x)) : null);

/** A row as the JSONL line's object. */
export function jsonRow(row: RunRow): Record<string, number | null> {
  const common = { step: row.step, epoch: jsonReal(row.epoch) };
  const end = { tokens: row.tokens, elapsed_s: Number.isFinite(row.elapsedS) ? Number(row.elapsedS.toFixed(3)) : null };
  if (row.kind === "eval") return { ...common, eval_loss: jsonReal(row.evalLoss), ...end };
  return {
    ...common,
    loss: jsonReal(row.loss),
    lr: jsonReal(row.lr),
    ...(row.gradNorm === null ? {} : { grad_norm: jsonReal(row.gradNorm) }),
    ...end,
    tokens_per_second: jsonReal(row.tokensPerSecond),
  };
}

/** A row's TensorBoard scalars, under Hugging Face Trainer's tag names. */
export function tensorboardScalars(row: RunRow): [string, number][] {
  if (row.kind === "eval") return [["eval/loss", row.evalLoss]];
  return [
    ["train/loss", row.loss],
    ["train/learning_rate", row.lr],
    ...(row.gradNorm === null ? [] : [["train/grad_norm", row.gradNorm] as [string, number]]),
    ["train/epoch", row.epoch],
    ["train/tokens_per_second", row.tokensPerSecond],
  ];
}

/** Writes each row to the CSV, the JSONL and the TensorBoard event file (see the file comment). */
export class RunLog {
  readonly files: RunLogFiles;
  private readonly csv: TrainingLogWriter;
  private jsonl: number | null;
  private readonly events: EventFileWriter;

  /** Starts every file afresh. */
  constructor(files: RunLogFiles) {
    this.files = files;
    this.csv = new TrainingLogWriter(files.csv);
    this.jsonl = fs.openSync(files.jsonl, "w");
    this.events = new EventFileWriter(files.tensorboard);
  }

  write(row: RunRow): void {
    if (row.kind === "train") this.csv.writeTrain(row);
    else this.csv.writeEval(row);
    if (this.jsonl === null) throw new Error(`run log ${this.files.jsonl} is closed`);
    writeAll(this.jsonl, Buffer.from(`${JSON.stringify(jsonRow(row))}\n`, "utf8"));
    this.events.scalars(row.time, row.step, tensorboardScalars(row));
  }

  close(): void {
    this.csv.close();
    if (this.jsonl !== null) fs.closeSync(this.jsonl);
    this.jsonl = null;
    this.events.close();
  }
}
