// Step 4 of the SPEC: compare the training runs of each init (random, svd, pissa, …) with numbers
// measured from their logs, and say honestly what the svd arm cost and where its head start came from.
//
// Inputs (in trainingDir): training_log_NAME.csv and train_summary_NAME.json of each run, and, when
// present, ../synthesized_teacher/synthesis_timing.json and ../svd_results/svd_timing.json.
// Outputs (writeComparison): comparison.json, comparison_report.txt, comparison_random_vs_svd.png (+ .svg),
// and comparison_all_arms.png (+ .svg) when there are more arms.
import * as fs from "node:fs";
import * as path from "node:path";
import { type RunCurves, comparisonChart, emaSmooth, formatDuration, saveChart, svgPathFor } from "../report/index.js";
import { type TrainRow, readTrainingLog } from "../train/log.js";
import type { TrainResult } from "../train/trainer.js";
import { writeFileAtomic } from "../util/atomic.js";
import { writeOutputs } from "../util/outputs.js";
import { runCurves } from "./curves.js";

export interface CompareOptions {
  /** Loss for "steps to target"; default: the baseline arm's final loss (mean over its runs). */
  targetLoss?: number;
  /** The arm (init) the others are measured against; default "random". */
  baseline?: string;
  /** EMA factor β for the smoothed loss (final loss, steps to target); default 0.9. */
  smoothing?: number;
}

/** The arm whose trained adapter the teacher ΔW is synthesized from (SPEC step 2a). */
export const TEACHER_SOURCE_ARM = "random";
/** The arm initialized from that teacher. */
export const TEACHER_ARM = "svd";

export const COMPARISON_FILES = {
  json: "comparison.json",
  report: "comparison_report.txt",
  chart: "comparison_random_vs_svd.png",
  allArmsChart: "comparison_all_arms.png",
} as const;

export const METRICS = [
  "initialLoss",
  "stepsToTarget",
  "finalLoss",
  "evalLossBefore",
  "evalLossAfter",
  "accuracy",
  "tokens",
  "seconds",
  "totalTokens",
  "totalSeconds",
] as const;
export type MetricKey = (typeof METRICS)[number];

/** Whether a larger value is better (accuracy) or a smaller one (losses, steps, compute). */
const HIGHER_IS_BETTER: Record<MetricKey, boolean> = {
  initialLoss: false,
  stepsToTarget: false,
  finalLoss: false,
  evalLossBefore: false,
  evalLossAfter: false,
  accuracy: true,
  tokens: false,
  seconds: false,
  totalTokens: false,
  totalSeconds: false,
};

export const DEFINITIONS: Record<MetricKey | "smoothedLoss" | "improvement" | "aggregate", string> = {
  smoothedLoss:
    "smoothed loss: exponential moving average of the per-step training loss, s_t = β·s_{t-1} + (1-β)·loss_t with s_0 = 0, " +
    "bias-corrected (reported as s_t / (1 - β^t)); β = the smoothing factor",
  initialLoss: "initial loss: the raw training loss of step 1 (the first batch, before the first update)",
  stepsToTarget: "steps to target: the first optimizer step whose smoothed loss is <= the target loss; null (not reached) if none",
  finalLoss: "final loss: the smoothed loss at the last logged optimizer step",
  evalLossBefore: "eval loss before: held-out eval loss logged at step 0 (before training); null when not logged",
  evalLossAfter: "eval loss after: held-out eval loss of the last eval row after step 0 (end of the last epoch); null when not logged",
  accuracy: "accuracy: exact-answer accuracy after training (correct / total) from train_summary_NAME.json; null when not measured",
  tokens: "tokens: training tokens processed by this run (tokens column of its last training row)",
  seconds:
    "wall time: training wall seconds of this run (result.seconds of its summary, else elapsed_s of its last log row); excludes model loading and the accuracy check",
  totalTokens: `tokens incl. dependencies: this run's tokens, plus for the ${TEACHER_ARM} arm the mean tokens of the ${TEACHER_SOURCE_ARM} run(s) its teacher came from`,
  totalSeconds:
    `wall time incl. dependencies: this run's wall time, plus for the ${TEACHER_ARM} arm the mean wall time of the ${TEACHER_SOURCE_ARM} run(s) ` +
    "and the teacher synthesis and SVD times when known (a lower bound, marked >=, when not)",
  improvement:
    "improvement %: (baseline - arm) / baseline × 100 for losses, steps and compute, (arm - baseline) / baseline × 100 for accuracy, " +
    "computed on the arm means; positive = the arm is better. Steps to target: only when every run of both arms reached the target",
  aggregate: "several runs per arm: mean ± sample standard deviation (n - 1); null values (not reached, not measured) are left out of both",
};

export interface RunMetrics {
  name: string;
  init: string;
  seed: number | null;
  logPath: string;
  summaryPath: string | null;
  steps: number;
  initialLoss: number;
  /** Smoothed loss at the last step (the reported final loss). */
  finalLoss: number;
  /** The raw loss of the last step, for reference. */
  lastRawLoss: number;
  stepsToTarget: number | null;
  evalLossBefore: number | null;
  evalLossAfter: number | null;
  accuracy: number | null;
  accuracyCounts: { correct: number; total: number } | null;
  tokens: number;
  seconds: number;
  totalTokens: number;
  totalSeconds: number;
  /** False when totalSeconds lacks a part whose time is unknown (it is then a lower bound). */
  totalComplete: boolean;
  notes: string[];
}

export interface Stat {
  mean: number | null;
  /** Sample standard deviation; null with fewer than two values. */
  std: number | null;
  /** How many runs had a value. */
  n: number;
}

export interface ArmSummary {
  init: string;
  runs: string[];
  metrics: Record<MetricKey, Stat>;
  /** % vs the baseline arm, positive = better; null for the baseline itself. */
  improvement: Record<MetricKey, number | null> | null;
  /** True when totalSeconds is a lower bound (teacher time unknown). */
  totalIncomplete: boolean;
}

export interface ComparisonResult {
  trainingDir: string;
  baseline: string;
  smoothing: number;
  targetLoss: number;
  targetSource: "given" | "baseline final loss";
  definitions: typeof DEFINITIONS;
  teacher: { synthesisSeconds: number | null; svdSeconds: number | null; synthesisFile: string; svdFile: string };
  /** Baseline first, then svd, pissa, then the others by name. */
  arms: ArmSummary[];
  runs: RunMetrics[];
  /** Curves for the chart: per arm, the mean raw loss per step over its runs (steps all its runs have). */
  curves: Record<string, { step: number; loss: number }[]>;
  caveats: string[];
  notes: string[];
}

export class CompareError extends Error {
  override name = "CompareError";
}

// ---- reading ---------------------------------------------------------------------------------

interface RawRun {
  name: string;
  init: string;
  seed: number | null;
  logPath: string;
  summaryPath: string | null;
  train: TrainRow[];
  smoothed: number[];
  evalBefore: number | null;
  evalAfter: number | null;
  accuracy: TrainResult["accuracy"];
  tokens: number;
  seconds: number;
  notes: string[];
}

const LOG_NAME = /^training_log_(.+)\.csv$/;

function readJson(file: string): unknown {
  try {
    return JSON.parse(fs.readFileSync(file, "utf8"));
  } catch (e) {
    throw new CompareError(`${file}: not readable JSON (${(e as Error).message})`);
  }
}

/** The summary's result, checked for the fields used here. */
function readSummary(file: string): TrainResult {
  const json = readJson(file) as { result?: Partial<TrainResult> } | null;
  const r = json?.result;
  if (!r || typeof r.init !== "string" || typeof r.seconds !== "number")
    throw new CompareError(`${file}: expected {config, result} with result.init and result.seconds (written by svdlora train)`);
  return r as TrainResult;
}

/** A run without a summary (e.g. one that crashed): "svd-s2" → "svd". */
const initFromName = (name: string) => name.replace(/-(s|seed)\d+$/, "");

function readRun(dir: string, name: string, smoothing: number): RawRun {
  const logPath = path.join(dir, `training_log_${name}.csv`);
  const log = readTrainingLog(logPath);
  if (log.train.length === 0) throw new CompareError(`${logPath}: no training steps logged`);
  const train = log.train;
  const last = train[train.length - 1];
  const notes: string[] = [];
  if (train[0].step !== 1) notes.push(`${name}: the log starts at step ${train[0].step}, not 1; its initial loss is that step's loss`);
  const summaryFile = path.join(dir, `train_summary_${name}.json`);
  const summary = fs.existsSync(summaryFile) ? readSummary(summaryFile) : null;
  if (!summary)
    notes.push(`${name}: no train_summary_${name}.json (unfinished run?): init taken from the name, wall time from the log, no accuracy`);
  else if (summary.steps !== undefined && summary.steps !== last.step)
    notes.push(`${name}: the summary says ${summary.steps} steps but the log ends at step ${last.step}`);
  const before = log.eval.find((e) => e.step === 0);
  const after = log.eval.filter((e) => e.step > 0).at(-1);
  return {
    name,
    init: summary?.init ?? initFromName(name),
    seed: typeof summary?.seed === "number" ? summary.seed : null,
    logPath,
    summaryPath: summary ? summaryFile : null,
    train,
    smoothed: emaSmooth(
      train.map((r) => r.loss),
      smoothing,
    ),
    evalBefore: before?.evalLoss ?? null,
    evalAfter: after?.evalLoss ?? null,
    accuracy: summary?.accuracy ?? null,
    tokens: last.tokens,
    seconds: summary?.seconds ?? Math.max(last.elapsedS, log.eval.at(-1)?.elapsedS ?? 0),
    notes,
  };
}

/** {seconds} from a timing file; null when the file does not exist. */
function readTiming(file: string): number | null {
  if (!fs.existsSync(file)) return null;
  const json = readJson(file) as { seconds?: unknown } | null;
  if (typeof json?.seconds !== "number" || !(json.seconds >= 0)) throw new CompareError(`${file}: expected {"seconds": number >= 0}`);
  return json.seconds;
}

// ---- statistics ------------------------------------------------------------------------------

export function stat(values: readonly (number | null)[]): Stat {
  const xs = values.filter((v): v is number => v !== null);
  if (xs.length === 0) return { mean: null, std: null, n: 0 };
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  const std = xs.length < 2 ? null : Math.sqrt(xs.reduce((a, x) => a + (x - mean) ** 2, 0) / (xs.length - 1));
  return { mean, std, n: xs.length };
}

/** % improvement of value over base, positive = better. */
export function improvementPct(base: number | null, value: number | null, higherIsBetter: boolean): number | null {
  if (base === null || value === null || base === 0) return null;
  return ((higherIsBetter ? value - base : base - value) / Math.abs(base)) * 100;
}

const firstAtOrBelow = (run: RawRun, target: number): number | null => {
  const i = run.smoothed.findIndex((s) => s <= target);
  return i < 0 ? null : run.train[i].step;
};

/** Mean raw loss per step over the runs, for the steps that all of them logged. */
function meanCurve(runs: RawRun[]): { step: number; loss: number }[] {
  const length = Math.min(...runs.map((r) => r.train.length));
  return Array.from({ length }, (_, i) => ({
    step: runs[0].train[i].step,
    loss: runs.reduce((a, r) => a + r.train[i].loss, 0) / runs.length,
  }));
}

// ---- comparing -------------------------------------------------------------------------------

const ARM_ORDER = ["svd", "pissa"];

/** Reads every run in trainingDir and computes the comparison. Throws CompareError (one line) on bad input. */
export function compareRuns(trainingDir: string, options: CompareOptions = {}): ComparisonResult {
  const baseline = options.baseline ?? "random";
  const smoothing = options.smoothing ?? 0.9;
  if (!(smoothing >= 0 && smoothing < 1)) throw new CompareError(`smoothing must be in [0, 1), got ${smoothing}`);
  if (options.targetLoss !== undefined && !Number.isFinite(options.targetLoss))
    throw new CompareError(`target loss must be a finite number, got ${options.targetLoss}`);
  if (!fs.existsSync(trainingDir) || !fs.statSync(trainingDir).isDirectory())
    throw new CompareError(`training directory ${trainingDir} does not exist (run svdlora train first, or pass --training-dir)`);

  const names = fs
    .readdirSync(trainingDir)
    .map((f) => LOG_NAME.exec(f)?.[1])
    .filter((n): n is string => n !== undefined)
    .sort();
  if (names.length === 0)
    throw new CompareError(`no training runs in ${trainingDir}: expected training_log_NAME.csv files written by svdlora train`);
  const raw = names.map((n) => readRun(trainingDir, n, smoothing));

  const byArm = new Map<string, RawRun[]>();
  for (const r of raw) byArm.set(r.init, [...(byArm.get(r.init) ?? []), r]);
  for (const runs of byArm.values()) runs.sort((a, b) => (a.seed ?? Infinity) - (b.seed ?? Infinity) || a.name.localeCompare(b.name));
  if (!byArm.has(baseline))
    throw new CompareError(
      `no "${baseline}" arm in ${trainingDir}: found ${[...byArm.keys()].join(", ")} (pass --baseline with one of them)`,
    );
  const rank = (arm: string) => (arm === baseline ? -1 : ARM_ORDER.includes(arm) ? ARM_ORDER.indexOf(arm) : ARM_ORDER.length);
  const armNames = [...byArm.keys()].sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));

  const baseRuns = byArm.get(baseline)!;
  const targetLoss = options.targetLoss ?? stat(baseRuns.map((r) => r.smoothed.at(-1)!)).mean!;

  // What the svd arm's teacher cost: the run it was synthesized from, then synthesis and SVD.
  const parent = path.dirname(path.resolve(trainingDir));
  const synthesisFile = path.join(parent, "synthesized_teacher", "synthesis_timing.json");
  const svdFile = path.join(parent, "svd_results", "svd_timing.json");
  const teacher = { synthesisSeconds: readTiming(synthesisFile), svdSeconds: readTiming(svdFile), synthesisFile, svdFile };
  const sourceRuns = byArm.get(TEACHER_SOURCE_ARM) ?? [];
  const sourceTokens = stat(sourceRuns.map((r) => r.tokens)).mean ?? 0;
  const sourceSeconds = stat(sourceRuns.map((r) => r.seconds)).mean ?? 0;

  const ordered = armNames.flatMap((a) => byArm.get(a)!);
  const runs: RunMetrics[] = ordered.map((r) => {
    const dependent = r.init === TEACHER_ARM;
    const teacherParts = [teacher.synthesisSeconds, teacher.svdSeconds];
    return {
      name: r.name,
      init: r.init,
      seed: r.seed,
      logPath: r.logPath,
      summaryPath: r.summaryPath,
      steps: r.train.at(-1)!.step,
      initialLoss: r.train[0].loss,
      finalLoss: r.smoothed.at(-1)!,
      lastRawLoss: r.train.at(-1)!.loss,
      stepsToTarget: firstAtOrBelow(r, targetLoss),
      evalLossBefore: r.evalBefore,
      evalLossAfter: r.evalAfter,
      accuracy: r.accuracy && r.accuracy.total > 0 ? r.accuracy.correct / r.accuracy.total : null,
      accuracyCounts: r.accuracy ? { correct: r.accuracy.correct, total: r.accuracy.total } : null,
      tokens: r.tokens,
      seconds: r.seconds,
      totalTokens: r.tokens + (dependent ? sourceTokens : 0),
      totalSeconds: r.seconds + (dependent ? sourceSeconds + teacherParts.reduce<number>((a, t) => a + (t ?? 0), 0) : 0),
      totalComplete: !dependent || (sourceRuns.length > 0 && teacherParts.every((t) => t !== null)),
      notes: r.notes,
    };
  });

  const summarize = (arm: string) => {
    const armRuns = runs.filter((r) => r.init === arm);
    const metrics = Object.fromEntries(METRICS.map((m) => [m, stat(armRuns.map((r) => r[m]))])) as Record<MetricKey, Stat>;
    return {
      init: arm,
      runs: armRuns.map((r) => r.name),
      metrics,
      allReached: armRuns.every((r) => r.stepsToTarget !== null),
      totalIncomplete: armRuns.some((r) => !r.totalComplete),
    };
  };
  const summaries = armNames.map(summarize);
  const base = summaries[0];
  const arms: ArmSummary[] = summaries.map(({ allReached, ...s }) => ({
    ...s,
    improvement:
      s.init === baseline
        ? null
        : (Object.fromEntries(
            METRICS.map((m) => {
              // A mean over only the runs that reached the target would flatter an arm.
              if (m === "stepsToTarget" && !(allReached && base.allReached)) return [m, null];
              return [m, improvementPct(base.metrics[m].mean, s.metrics[m].mean, HIGHER_IS_BETTER[m])];
            }),
          ) as Record<MetricKey, number | null>),
  }));

  const curves = Object.fromEntries(armNames.map((a) => [a, meanCurve(byArm.get(a)!)]));
  return {
    trainingDir,
    baseline,
    smoothing,
    targetLoss,
    targetSource: options.targetLoss === undefined ? "baseline final loss" : "given",
    definitions: DEFINITIONS,
    teacher,
    arms,
    runs,
    curves,
    caveats: caveats(armNames, baseline, teacher, sourceRuns.length > 0),
    notes: notes(raw, armNames, byArm),
  };
}

function caveats(arms: string[], baseline: string, teacher: ComparisonResult["teacher"], haveSource: boolean): string[] {
  const out: string[] = [];
  if (arms.includes(TEACHER_ARM)) {
    out.push(
      `The teacher ΔW that the ${TEACHER_ARM} arm starts from was synthesized from the ${TEACHER_SOURCE_ARM}-init run's own trained adapter ` +
        `(SPEC step 2a), so the ${TEACHER_ARM} run starts from information that the ${TEACHER_SOURCE_ARM} run earned by training: ` +
        `its lower initial loss and fewer steps to target are not free. The "incl. dependencies" rows count that compute ` +
        `(the ${TEACHER_SOURCE_ARM} run${teacher.synthesisSeconds !== null && teacher.svdSeconds !== null ? ", teacher synthesis and SVD" : ""}).`,
    );
    if (!haveSource)
      out.push(`No ${TEACHER_SOURCE_ARM} run is in this directory, so its compute is missing from the ${TEACHER_ARM} arm's totals.`);
    const unknown = [
      teacher.synthesisSeconds === null ? `teacher synthesis (${teacher.synthesisFile} missing)` : null,
      teacher.svdSeconds === null ? `SVD (${teacher.svdFile} missing)` : null,
    ].filter(Boolean);
    if (unknown.length > 0)
      out.push(`Unknown time: ${unknown.join(", ")}; the ${TEACHER_ARM} arm's wall time incl. dependencies is a lower bound (>=).`);
  }
  if (arms.includes("pissa"))
    out.push(
      "The pissa arm starts from the SVD of the base model's own weights: it uses no teacher and no other run, so it has no such leak " +
        `and is the fair test of SVD-guided init against ${baseline}.`,
    );
  return out;
}

function notes(raw: RawRun[], arms: string[], byArm: Map<string, RawRun[]>): string[] {
  const out = raw.flatMap((r) => r.notes);
  if (arms.every((a) => byArm.get(a)!.length === 1))
    out.push(
      "One run per arm: no spread is measured, and a difference may be within seed-to-seed noise. Several seeds per arm give mean ± std.",
    );
  if (raw.every((r) => r.evalBefore === null && r.evalAfter === null))
    out.push("No held-out eval loss was logged: train with --eval-data to have it.");
  return out;
}

// ---- the report ------------------------------------------------------------------------------

const LOSS_DIGITS = 4;

function formatStat(s: Stat, format: (x: number) => string, runs: number): string {
  if (s.mean === null) return "n/a";
  const value = s.std === null ? format(s.mean) : `${format(s.mean)} ± ${format(s.std)}`;
  return s.n < runs ? `${value} (${s.n}/${runs})` : value;
}

const formatPct = (x: number | null, bound = false) => (x === null ? "n/a" : `${bound ? "<= " : ""}${x >= 0 ? "+" : ""}${x.toFixed(1)} %`);

/** The plain-text table: one row per metric, one column per arm, then the improvement of each non-baseline arm. */
export function comparisonTable(result: ComparisonResult): string {
  const loss = (x: number) => x.toFixed(LOSS_DIGITS);
  const rows: { label: string; key: MetricKey; format: (x: number) => string }[] = [
    { label: "initial loss (step 1)", key: "initialLoss", format: loss },
    {
      label: `steps to target (<= ${loss(result.targetLoss)})`,
      key: "stepsToTarget",
      format: (x) => (Number.isInteger(x) ? String(x) : x.toFixed(1)),
    },
    { label: "final loss (EMA, last step)", key: "finalLoss", format: loss },
    { label: "eval loss before training", key: "evalLossBefore", format: loss },
    { label: "eval loss after training", key: "evalLossAfter", format: loss },
    { label: "accuracy (%)", key: "accuracy", format: (x) => (100 * x).toFixed(1) },
    { label: "tokens (this run)", key: "tokens", format: (x) => x.toFixed(0) },
    { label: "wall time s (this run)", key: "seconds", format: (x) => x.toFixed(1) },
    { label: "tokens incl. dependencies", key: "totalTokens", format: (x) => x.toFixed(0) },
    { label: "wall time s incl. dependencies", key: "totalSeconds", format: (x) => x.toFixed(1) },
  ];
  const others = result.arms.filter((a) => a.init !== result.baseline);
  const header = [
    "metric",
    ...result.arms.map((a) => `${a.init} (n=${a.runs.length})`),
    ...others.map((a) => `${a.init} vs ${result.baseline}`),
  ];
  const body = rows.map(({ label, key, format }) => [
    label,
    ...result.arms.map((a) => {
      const cell = formatStat(a.metrics[key], format, a.runs.length);
      if (key === "stepsToTarget" && a.metrics[key].n === 0) return "not reached";
      return key === "totalSeconds" && a.totalIncomplete ? `>= ${cell}` : cell;
    }),
    ...others.map((a) => formatPct(a.improvement![key], key === "totalSeconds" && a.totalIncomplete)),
  ]);
  const table = [header, ...body];
  const widths = header.map((_, c) => Math.max(...table.map((r) => r[c].length)));
  const line = (r: string[]) =>
    r
      .map((cell, c) => (c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c])))
      .join("   ")
      .trimEnd();
  return [line(header), widths.map((w) => "-".repeat(w)).join("   "), ...body.map(line)].join("\n");
}

export function renderComparisonReport(result: ComparisonResult): string {
  const runsLine = (a: ArmSummary) => `  ${a.init}: ${a.runs.join(", ")}`;
  const perRun = result.runs.map(
    (r) =>
      `  ${r.name} (init ${r.init}${r.seed === null ? "" : `, seed ${r.seed}`}): ${r.steps} steps, initial ${r.initialLoss.toFixed(LOSS_DIGITS)}, ` +
      `final ${r.finalLoss.toFixed(LOSS_DIGITS)} (last raw ${r.lastRawLoss.toFixed(LOSS_DIGITS)}), ` +
      `steps to target ${r.stepsToTarget ?? "not reached"}` +
      (r.accuracyCounts ? `, accuracy ${r.accuracyCounts.correct}/${r.accuracyCounts.total}` : ""),
  );
  const t = result.teacher;
  const seconds = (s: number | null) => (s === null ? "unknown" : formatDuration(s)); // report: 0.049 s is not "0.0 s"
  return [
    "svdlora: comparison of LoRA initializations (SPEC step 4)",
    "",
    `training directory: ${result.trainingDir}`,
    `baseline arm: ${result.baseline}`,
    `target loss: ${result.targetLoss.toFixed(LOSS_DIGITS)} (${result.targetSource === "given" ? "given" : `the ${result.baseline} arm's mean final loss`})`,
    `smoothing: EMA β = ${result.smoothing}`,
    "runs per arm:",
    ...result.arms.map(runsLine),
    "",
    comparisonTable(result),
    "",
    "CAVEATS",
    ...(result.caveats.length ? result.caveats.map((c) => `  - ${c}`) : ["  (none: no arm depends on another run)"]),
    "",
    "DEFINITIONS",
    ...Object.values(result.definitions).map((d) => `  - ${d}`),
    "",
    "TEACHER PIPELINE TIME",
    `  synthesis: ${seconds(t.synthesisSeconds)} (${t.synthesisFile})`,
    `  svd:       ${seconds(t.svdSeconds)} (${t.svdFile})`,
    "",
    "PER RUN",
    ...perRun,
    ...(result.notes.length ? ["", "NOTES", ...result.notes.map((n) => `  - ${n}`)] : []),
    "",
  ].join("\n");
}

// ---- writing ---------------------------------------------------------------------------------

export interface ComparisonPaths {
  json: string;
  report: string;
  chart: string;
  /** Every arm's runs, when there are arms beyond the baseline and svd; else null. */
  allArmsChart: string | null;
}

/** Every file a comparison may write in its training folder. */
export const comparisonOutputs = (): string[] => [
  COMPARISON_FILES.json,
  COMPARISON_FILES.report,
  COMPARISON_FILES.chart,
  svgPathFor(COMPARISON_FILES.chart),
  COMPARISON_FILES.allArmsChart,
  svgPathFor(COMPARISON_FILES.allArmsChart),
];

/**
 * Writes comparison.json, comparison_report.txt and the charts (which need a font; see saveChart)
 * into trainingDir, swapped in together over an earlier comparison (util/outputs.ts).
 */
export async function writeComparison(
  trainingDir: string,
  result: ComparisonResult,
  log?: (line: string) => void,
): Promise<ComparisonPaths> {
  return writeOutputs(
    { root: trainingDir, name: "comparison", by: "compare", outputs: comparisonOutputs() },
    (staged) => writeComparisonInto(trainingDir, result, staged),
    log,
  );
}

/** Writes the comparison's files at at(name) (a staging folder's paths); returns their final paths in trainingDir. */
export async function writeComparisonInto(
  trainingDir: string,
  result: ComparisonResult,
  at: (name: string) => string,
): Promise<ComparisonPaths> {
  writeFileAtomic(at(COMPARISON_FILES.json), `${JSON.stringify(result, null, 2)}\n`);
  writeFileAtomic(at(COMPARISON_FILES.report), renderComparisonReport(result));
  // report: the charts draw every run's logged curves; comparison_random_vs_svd.png shows those two arms only
  const curves = runCurves(result.runs.map((r) => ({ run: r.name, arm: r.init, log: r.logPath })));
  const pair = curves.filter((c) => c.arm === result.baseline || c.arm === TEACHER_ARM);
  const chart = (runs: RunCurves[]) =>
    comparisonChart({
      runs,
      subtitle: runs.some((c) => c.arm === TEACHER_ARM)
        ? `${TEACHER_ARM}'s teacher came from the ${TEACHER_SOURCE_ARM} run: see the report's caveat`
        : undefined,
      smoothing: result.smoothing,
      targetLoss: Number(result.targetLoss.toFixed(LOSS_DIGITS)),
    });
  const allArms = pair.length < curves.length;
  await saveChart(at(COMPARISON_FILES.chart), chart(pair));
  if (allArms) await saveChart(at(COMPARISON_FILES.allArmsChart), chart(curves));
  return {
    json: path.join(trainingDir, COMPARISON_FILES.json),
    report: path.join(trainingDir, COMPARISON_FILES.report),
    chart: path.join(trainingDir, COMPARISON_FILES.chart),
    allArmsChart: allArms ? path.join(trainingDir, COMPARISON_FILES.allArmsChart) : null,
  };
}
