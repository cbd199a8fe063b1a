// The training log: training_log_<init>.csv, one row per optimizer step, written and flushed as
// training goes so that a crash leaves a valid prefix.
//
// Columns: step,epoch,loss,lr,grad_norm,tokens,elapsed_s,eval_loss
//   Train rows fill step..elapsed_s and leave eval_loss empty (grad_norm may be empty when not measured).
//   Eval rows (once per epoch, when eval data is given) fill step, epoch, tokens, elapsed_s and
//   eval_loss, and leave loss, lr and grad_norm empty. So `eval_loss` being non-empty marks an
//   eval row, and pandas reads the file as is (empty = NaN).
//   step: optimizer updates done so far (1 for the first update); tokens: training tokens
//   processed so far (cumulative); epoch: may be fractional; elapsed_s: seconds since the start.
// Number formats: step and tokens as whole numbers; loss, lr, grad_norm, eval_loss and epoch as
// the shortest decimal that reads back to the same float32 (exact for values that came from
// float32 tensors); elapsed_s with 3 decimals; non-finite values as nan, inf, -inf (which Python's
// float() and pandas read).
import * as fs from "node:fs";
import * as path from "node:path";
import { writeAll } from "../util/atomic.js";

export const TRAINING_LOG_COLUMNS = ["step", "epoch", "loss", "lr", "grad_norm", "tokens", "elapsed_s", "eval_loss"] as const;
const HEADER = TRAINING_LOG_COLUMNS.join(",");

export interface TrainRow {
  step: number;
  epoch: number;
  loss: number;
  lr: number;
  /** The gradient norm before clipping; null when not measured. */
  gradNorm: number | null;
  tokens: number;
  elapsedS: number;
}

export interface EvalRow {
  step: number;
  epoch: number;
  evalLoss: number;
  tokens: number;
  elapsedS: number;
}

export interface TrainingLog {
  train: TrainRow[];
  eval: EvalRow[];
}

export class TrainingLogError extends Error {
  override name = "TrainingLogError";
}

/** Where the log of a run with this init ("random", "svd", …) goes. */
export const trainingLogPath = (dir: string, init: string): string => path.join(dir, `training_log_${init}.csv`);

// ---- formatting ------------------------------------------------------------------------------

function formatNonFinite(x: number): string | null {
  if (Number.isNaN(x)) return "nan";
  if (x === Infinity) return "inf";
  if (x === -Infinity) return "-inf";
  return null;
}

/** The shortest decimal that reads back to the same float32 value. */
export function formatReal(x: number): string {
  const special = formatNonFinite(x);
  if (special !== null) return special;
  const target = Math.fround(x);
  // 9 significant digits always suffice for a float32.
  for (let digits = 1; digits < 9; digits++) {
    const candidate = Number(target.toPrecision(digits));
    if (Math.fround(candidate) === target) return String(candidate);
  }
  return String(Number(target.toPrecision(9)));
}

const formatSeconds = (x: number): string => formatNonFinite(x) ?? x.toFixed(3);

function formatCount(x: number, what: string): string {
  if (!Number.isSafeInteger(x) || x < 0) throw new TrainingLogError(`training log: ${what} must be a whole number >= 0, got ${x}`);
  return String(x);
}

type Column = (typeof TRAINING_LOG_COLUMNS)[number];

function formatRow(row: LogRow): string {
  const train = row.kind === "train" ? row : null;
  const cells: Record<Column, string> = {
    step: formatCount(row.step, "step"),
    epoch: formatReal(row.epoch),
    loss: train ? formatReal(train.loss) : "",
    lr: train ? formatReal(train.lr) : "",
    grad_norm: train && train.gradNorm !== null ? formatReal(train.gradNorm) : "",
    tokens: formatCount(row.tokens, "tokens"),
    elapsed_s: formatSeconds(row.elapsedS),
    eval_loss: row.kind === "eval" ? formatReal(row.evalLoss) : "",
  };
  return `${TRAINING_LOG_COLUMNS.map((c) => cells[c]).join(",")}\n`;
}

// ---- writing ---------------------------------------------------------------------------------

type LogRow = ({ kind: "train" } & TrainRow) | ({ kind: "eval" } & EvalRow);

/** Appends rows to a training log, each written through to the OS at once. */
export class TrainingLogWriter {
  readonly path: string;
  private fd: number | null;

  /** Starts the file afresh; a resumed run writes its earlier rows first (from its checkpoint). */
  constructor(file: string) {
    this.path = file;
    fs.mkdirSync(path.dirname(file), { recursive: true });
    this.fd = fs.openSync(file, "w");
    this.append(`${HEADER}\n`);
  }

  writeTrain(row: TrainRow): void {
    this.append(formatRow({ kind: "train", ...row }));
  }

  writeEval(row: EvalRow): void {
    this.append(formatRow({ kind: "eval", ...row }));
  }

  close(): void {
    if (this.fd !== null) fs.closeSync(this.fd);
    this.fd = null;
  }

  private append(line: string): void {
    if (this.fd === null) throw new TrainingLogError(`training log ${this.path} is closed`);
    // One write per row: a crash can lose the row being written, never corrupt earlier ones.
    writeAll(this.fd, Buffer.from(line, "utf8"));
  }
}

// ---- reading ---------------------------------------------------------------------------------

const DECIMAL = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;
const SPECIAL: Record<string, number> = {
  nan: NaN,
  inf: Infinity,
  "+inf": Infinity,
  "-inf": -Infinity,
  infinity: Infinity,
  "-infinity": -Infinity,
};

function parseRows(text: string, source: string): LogRow[] {
  const lines = text
    .replace(/^\uFEFF/, "")
    .split("\n")
    .map((l) => l.replace(/\r$/, ""));
  if (lines[lines.length - 1] === "") lines.pop();
  if (lines.length === 0) throw new TrainingLogError(`${source}: empty file, expected the header '${HEADER}'`);
  if (lines[0] !== HEADER) throw new TrainingLogError(`${source}:1: header is '${lines[0]}', expected '${HEADER}'`);
  const rows: LogRow[] = [];
  let lastStep = -1;
  let lastTrainStep = -1;
  for (let i = 1; i < lines.length; i++) {
    const where = `${source}:${i + 1}`;
    const fail = (why: string): never => {
      throw new TrainingLogError(`${where}: ${why}`);
    };
    const fields = lines[i].split(",");
    if (fields.length !== TRAINING_LOG_COLUMNS.length)
      fail(
        `expected ${TRAINING_LOG_COLUMNS.length} fields, found ${fields.length}${fields.length < TRAINING_LOG_COLUMNS.length ? " (truncated row?)" : ""}`,
      );
    const get = (column: Column) => fields[TRAINING_LOG_COLUMNS.indexOf(column)].trim();
    const real = (column: Column): number => {
      const s = get(column);
      if (s === "") fail(`${column} is empty`);
      const special = SPECIAL[s.toLowerCase()];
      if (special !== undefined) return special;
      if (!DECIMAL.test(s)) fail(`${column} '${s}' is not a number`);
      return Number(s);
    };
    const count = (column: Column): number => {
      const s = get(column);
      if (!/^\d+$/.test(s) || !Number.isSafeInteger(Number(s))) fail(`${column} '${s}' is not a whole number >= 0`);
      return Number(s);
    };
    const mustBeEmpty = (column: Column) => {
      if (get(column) !== "") fail(`${column} must be empty on an eval row (eval_loss is set), found '${get(column)}'`);
    };
    const common = { step: count("step"), epoch: real("epoch"), tokens: count("tokens"), elapsedS: real("elapsed_s") };
    if (common.step < lastStep) fail(`step ${common.step} comes after step ${lastStep} (two runs appended to one log?)`);
    lastStep = common.step;
    if (get("eval_loss") === "") {
      if (common.step === lastTrainStep) fail(`step ${common.step} is logged twice`);
      lastTrainStep = common.step;
      const gradNorm = get("grad_norm") === "" ? null : real("grad_norm");
      rows.push({ kind: "train", ...common, loss: real("loss"), lr: real("lr"), gradNorm });
    } else {
      mustBeEmpty("loss");
      mustBeEmpty("lr");
      mustBeEmpty("grad_norm");
      rows.push({ kind: "eval", ...common, evalLoss: real("eval_loss") });
    }
  }
  return rows;
}

/** Parses the text of a training log; `source` names it in error messages. */
export function parseTrainingLog(text: string, source = "training log"): TrainingLog {
  const log: TrainingLog = { train: [], eval: [] };
  for (const { kind, ...row } of parseRows(text, source)) {
    if (kind === "train") log.train.push(row as TrainRow);
    else log.eval.push(row as EvalRow);
  }
  return log;
}

/** Reads a training log written by TrainingLogWriter; throws TrainingLogError (with file:line) on malformed content. */
export function readTrainingLog(file: string): TrainingLog {
  return parseTrainingLog(fs.readFileSync(file, "utf8"), file);
}
