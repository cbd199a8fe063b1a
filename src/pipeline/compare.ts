// Step 4 (docs/experiment.md#step-4-comparison): every arm against the baseline arm, paired by
// seed (with the same seed two arms see the same batches in the same order, so each seed gives one
// difference). For each metric: the mean paired difference with a t and a bootstrap interval, the
// paired t test, the exact sign-flip permutation test and the effect size d_z; Holm's adjustment
// across arms for the primary endpoint. With several learning rates, each arm is compared at the
// rate that gave it the lowest validation loss, and an arm whose best rate is at the grid's edge
// gets no verdict. A rate at which a seed of an arm diverged (its loss or gradient stopped being
// finite) loses: it is never the arm's rate, but it counts among the rates tried for the edge.
// Accuracy is compared per seed with McNemar's exact test on the same questions.
//
// Inputs (in trainingDir): train_summary_NAME.json (the run's settings and result; its log's path
// follows from the name), diverged_NAME.json (a run of a grid that diverged; its log, when it names
// one, is never read as a finished run's), and the timing files of the teachers runs depended on.
// Outputs (writeComparison): comparison.json, comparison_report.txt, and the loss-curve charts.
import * as fs from "node:fs";
import * as path from "node:path";
import { type RunCurves, comparisonChart, formatDuration, saveChart, svgPathFor } from "../report/index.js";
import {
  type CurvePoint,
  DEFAULT_CONFIDENCE,
  type McNemarResult,
  type PairedComparison,
  type Summary,
  holm,
  mcnemarExact,
  normalizedAuc,
  pairedComparison,
  stepsToTarget,
  summarize,
  wilsonInterval,
} from "../stats/index.js";
import type { EvalRecord } from "../train/checkpoint.js";
import type { TrainResult } from "../train/trainer.js";
import { writeFileAtomic } from "../util/atomic.js";
import { writeOutputs } from "../util/outputs.js";
import { accuracyFile } from "./accuracy.js";
import { runCurves } from "./curves.js";
import { trainingLayout } from "./layout.js";
import { METRICS, type MetricKey } from "./settings.js";
import type { DivergedRecord } from "./train.js";

/** The arm whose trained adapter the svd arm's teacher ΔW is synthesized from. */
export const TEACHER_SOURCE_ARM = "random";
/** The arm initialized from that teacher. */
export const TEACHER_ARM = "svd";

export const COMPARISON_FILES = {
  json: "comparison.json",
  report: "comparison_report.txt",
  chart: "comparison_random_vs_svd.png",
  allArmsChart: "comparison_all_arms.png",
} as const;

/** Whether a larger value is better (accuracy) or a smaller one (losses, steps, compute). */
export const HIGHER_IS_BETTER: Record<MetricKey, boolean> = {
  heldOutFinal: false,
  heldOutInitial: false,
  heldOutAuc: false,
  stepsToTarget: false,
  trainFinal: false,
  accuracy: true,
  seconds: false,
  totalTokens: false,
  totalSeconds: false,
};

export const METRIC_LABELS: Record<MetricKey, string> = {
  heldOutFinal: "held-out loss after training",
  heldOutInitial: "held-out loss before training",
  heldOutAuc: "held-out loss, mean over training",
  stepsToTarget: "steps to the held-out target",
  trainFinal: "training loss, last epoch",
  accuracy: "exact-answer accuracy",
  seconds: "training seconds",
  totalTokens: "tokens incl. dependencies",
  totalSeconds: "seconds incl. dependencies",
};

export const DEFINITIONS: Record<MetricKey | "pairing" | "tuning" | "tests", string> = {
  heldOutFinal: "held-out loss after training: token-weighted mean loss on the held-out test set after the last step",
  heldOutInitial: "held-out loss before training: the same, at step 0 (the init alone)",
  heldOutAuc:
    "held-out loss, mean over training: area under the held-out test curve (trapezoids over the evaluated steps, step 0 included) divided by the steps — lower means the arm got low sooner",
  stepsToTarget:
    "steps to the held-out target: optimizer steps until the held-out test curve first reaches the target, interpolated linearly between evaluations; not reached = missing",
  trainFinal:
    "training loss, last epoch: the mean training loss of the last epoch, each step weighted by its predicted tokens (no smoothing; every batch counts for what it holds)",
  accuracy: "exact-answer accuracy: share of the accuracy questions answered exactly by greedy decoding after training",
  seconds:
    "training seconds: the run's own training time (model loading and the accuracy check excluded); runs trained together over one base model are each charged the pass's time in proportion to the tokens they trained",
  totalTokens:
    "tokens incl. dependencies: the run's training tokens plus those of every run it depended on (the svd arm: its seed's random run; other teachers likewise) and of any preparation pass",
  totalSeconds: "seconds incl. dependencies: the same for wall time, with teacher synthesis and SVD times",
  pairing:
    "paired by seed: run k of every arm uses seed k (same batch order); each metric's difference arm − baseline is taken seed by seed, and seeds missing on either side are left out",
  tuning:
    "with several learning rates, each arm's rate is the one with the lowest mean validation loss after training (the validation set is kept apart from the test set); the comparison uses each arm's tuned rate. A rate at which any seed of the arm diverged (loss or gradient not finite) is never its tuned rate, but counts among the rates tried: a best rate just below a diverged one is bracketed, not at the grid's edge",
  tests:
    "intervals: t interval of the mean difference, and a percentile bootstrap interval; tests: paired t, and the exact two-sided sign-flip permutation test (2^n sign assignments); d_z = mean difference / sd of differences; Holm's adjustment of the permutation p across arms, for the primary endpoint only",
};

export interface CompareOptions {
  /** The arm the others are measured against; default "random". */
  baseline?: string;
  /** The endpoint the verdict is about; default heldOutFinal. */
  primary?: MetricKey;
  /** Held-out loss for "steps to target"; default the baseline arm's mean held-out loss after training. */
  targetLoss?: number;
  /** Level of the intervals; default 0.95. */
  confidence?: number;
  /** Compare runs whose settings differ beyond what varies by design (PER_RUN), listing the differences; default: refuse. */
  allowMismatch?: boolean;
}

/** One training run, read from its summary. */
export interface RunRecord {
  name: string;
  arm: string;
  seed: number;
  learningRate: number;
  summaryPath: string;
  logPath: string;
  steps: number;
  tokens: number;
  values: Record<MetricKey, number | null>;
  /** The validation loss after training (for choosing the learning rate), when measured. */
  validationFinal: number | null;
  accuracy: { correct: number; total: number; ci95: [number, number]; items: boolean[] } | null;
  /** Runs whose compute this one depends on, by name. */
  dependsOn: string[];
  /** Only another arm's teacher source, trained on other data (svd-xfit's half-data run): not compared. */
  sourceOnly: boolean;
  /** The settings that made it (training and evaluation identity), as its summary records them. */
  identity: Record<string, unknown>;
}

/** One metric of one arm against the baseline. */
export interface VersusBaseline {
  n: number;
  /** Mean of arm − baseline over the paired seeds. */
  meanDiff: number | null;
  ci95: [number, number] | null;
  ciBootstrap95: [number, number] | null;
  pT: number | null;
  pPermutation: number | null;
  dz: number | null;
  /** Holm-adjusted pPermutation across arms (the primary endpoint only). */
  pHolm: number | null;
  /** The values paired, by seed: [seed, baseline, arm]. */
  perSeed: [number, number | null, number | null][];
}

export interface LearningRatePoint {
  learningRate: number;
  /** The runs that finished at this rate. */
  runs: string[];
  /** The runs that diverged at this rate: with any, the rate loses. */
  diverged: string[];
  validation: Summary;
  test: Summary;
}

/** A run that diverged (diverged_NAME.json): where its loss or gradient stopped being finite. */
export interface DivergedRunRecord {
  name: string;
  arm: string;
  seed: number;
  learningRate: number;
  step: number;
  message: string;
  recordPath: string;
  /** Its training log up to the last finite step (training_log_NAME.csv), when its record names one. */
  logPath: string | null;
  sourceOnly: boolean;
  identity: Record<string, unknown>;
}

export interface ArmComparison {
  arm: string;
  /** The rate compared: the tuned one with several; null when the arm diverged at every rate. */
  learningRate: number | null;
  /** Every rate tried, with the final validation and test losses over seeds. */
  learningRates: LearningRatePoint[];
  /** The tuned rate is the grid's smallest or largest: the optimum may lie outside. */
  rateAtEdge: boolean;
  runs: string[];
  metrics: Record<MetricKey, Summary>;
  /** Against the baseline; null for the baseline itself. */
  vsBaseline: Record<MetricKey, VersusBaseline> | null;
  /** Accuracy against the baseline's, seed by seed, on the same questions. */
  mcnemar: { seed: number; test: McNemarResult }[];
  /** One sentence on the primary endpoint. */
  verdict: string;
}

export interface ComparisonResult {
  trainingDir: string;
  baseline: string;
  primary: MetricKey;
  confidence: number;
  targetLoss: number | null;
  targetSource: "given" | "baseline held-out loss after training";
  seeds: number[];
  definitions: typeof DEFINITIONS;
  /** Baseline first, then svd, pissa, then the others by name. */
  arms: ArmComparison[];
  runs: RunRecord[];
  /** The runs of the grid that diverged. */
  diverged: DivergedRunRecord[];
  /** The report's first lines: one per arm, then what qualifies them. */
  verdict: string[];
  caveats: string[];
}

export class CompareError extends Error {
  override name = "CompareError";
}

// ---- reading ---------------------------------------------------------------------------------

interface Summary_ {
  made_by?: string;
  identity?: { training?: Record<string, unknown>; evaluation?: Record<string, unknown> };
  settings?: { learningRate?: number; seed?: number; init?: string };
  result?: Partial<TrainResult>;
  experiment?: { arm?: string; dependsOn?: string[]; external?: { what: string; tokens: number; seconds: number }[]; sourceOnly?: boolean };
}

function readJson<T>(file: string): T {
  try {
    return JSON.parse(fs.readFileSync(file, "utf8")) as T;
  } catch (e) {
    throw new CompareError(`${file}: not readable JSON (${(e as Error).message.split("\n")[0]})`);
  }
}

const points = (evals: readonly EvalRecord[], pick: (e: EvalRecord) => number | undefined): CurvePoint[] =>
  evals.flatMap((e) => {
    const v = pick(e);
    return v === undefined || !Number.isFinite(v) ? [] : [{ step: e.step, value: v }];
  });

/** The runs of trainingDir named by files `<prefix>NAME.json`, sorted. */
const runNames = (trainingDir: string, prefix: string) =>
  fs
    .readdirSync(trainingDir)
    .map((f) => (f.startsWith(prefix) && f.endsWith(".json") ? f.slice(prefix.length, -".json".length) : undefined))
    .filter((n): n is string => n !== undefined && n.length > 0)
    .sort();

/** Reads the record of every run of a grid that diverged in trainingDir. */
export function readDiverged(trainingDir: string): DivergedRunRecord[] {
  const L = trainingLayout(trainingDir);
  return runNames(trainingDir, "diverged_").map((name) => {
    const file = L.diverged(name);
    const d = readJson<Partial<DivergedRecord>>(file);
    if (d.made_by !== "svdlora" || typeof d.step !== "number" || typeof d.learningRate !== "number" || typeof d.seed !== "number")
      throw new CompareError(`${file}: not a record of a diverged run written by this svdlora (step, seed and learning rate expected)`);
    const log = path.basename(L.log(name));
    if (d.log && d.log !== log)
      throw new CompareError(`${file}: its log is named ${JSON.stringify(d.log)}; a run named ${name} logs to ${log}`);
    return {
      name,
      arm: d.arm ?? name,
      seed: d.seed,
      learningRate: d.learningRate,
      step: d.step,
      message: d.message ?? "",
      recordPath: file,
      logPath: d.log ? L.log(name) : null,
      sourceOnly: d.experiment?.sourceOnly === true,
      identity: { ...d.identity?.training, ...d.identity?.evaluation },
    };
  });
}

/** Reads every completed run (one with a summary written by svdlora train) in trainingDir. */
export function readRuns(trainingDir: string): { runs: RunRecord[]; heldOut: Map<string, CurvePoint[]> } {
  if (!fs.existsSync(trainingDir) || !fs.statSync(trainingDir).isDirectory())
    throw new CompareError(`training folder ${trainingDir} does not exist (train runs first, or give \`trainingDir\`)`);
  const L = trainingLayout(trainingDir);
  const names = runNames(trainingDir, "train_summary_");
  if (names.length === 0)
    throw new CompareError(`no training runs in ${trainingDir}: expected train_summary_NAME.json files written by svdlora train`);
  const heldOut = new Map<string, CurvePoint[]>();
  // A run's own compute: its training, any preparation pass, and what it used outside the training folder.
  const own = new Map<string, { tokens: number; seconds: number }>();
  const runs = names.map((name): RunRecord => {
    const file = L.summary(name);
    const s = readJson<Summary_>(file);
    const r = s.result;
    if (s.made_by !== "svdlora" || !r || typeof r.steps !== "number" || !s.settings)
      throw new CompareError(`${file}: not a run summary written by this svdlora (settings and result expected)`);
    const evals = r.evalLosses ?? [];
    const test = points(evals, (e) => e.loss);
    heldOut.set(name, test);
    const final = evals.at(-1);
    const preparation = r.preparation ?? { tokens: 0, seconds: 0 };
    const external = s.experiment?.external ?? [];
    own.set(name, {
      tokens: (r.tokens ?? 0) + preparation.tokens + external.reduce((n, e) => n + e.tokens, 0),
      seconds: (r.seconds ?? 0) + preparation.seconds + external.reduce((n, e) => n + e.seconds, 0),
    });
    // Accuracy measured after training (pipeline/accuracy.ts) if there is one, else the run's own.
    const measured = fs.existsSync(accuracyFile(trainingDir, name))
      ? readJson<{ correct: number; total: number; items: boolean[] }>(accuracyFile(trainingDir, name))
      : null;
    const acc = measured ?? r.accuracy ?? null;
    return {
      name,
      arm: s.experiment?.arm ?? s.settings.init ?? name.replace(/-s\d+$/, ""),
      seed: s.settings.seed ?? 0,
      learningRate: s.settings.learningRate ?? 0,
      summaryPath: file,
      logPath: L.log(name),
      steps: r.steps,
      tokens: r.tokens ?? 0,
      values: {
        heldOutFinal: final && final.step > 0 ? final.loss : null,
        heldOutInitial: evals.find((e) => e.step === 0)?.loss ?? null,
        heldOutAuc: normalizedAuc(test),
        stepsToTarget: null, // needs the target: set in compareRuns
        trainFinal: Number.isFinite(r.finalLoss) ? (r.finalLoss ?? null) : null,
        accuracy: acc && acc.total > 0 ? acc.correct / acc.total : null,
        seconds: (r.seconds ?? 0) + preparation.seconds,
        totalTokens: null, // needs the dependencies: set below
        totalSeconds: null,
      },
      validationFinal: final?.validationLoss ?? null,
      accuracy:
        acc && acc.total > 0
          ? { correct: acc.correct, total: acc.total, ci95: wilsonInterval(acc.correct, acc.total), items: acc.items ?? [] }
          : null,
      dependsOn: s.experiment?.dependsOn ?? [],
      sourceOnly: s.experiment?.sourceOnly === true,
      identity: { ...s.identity?.training, ...s.identity?.evaluation },
    };
  });
  // Compute including every run it depended on, and theirs in turn (each counted once).
  const byName = new Map(runs.map((r) => [r.name, r]));
  for (const r of runs) {
    const counted = new Set<string>();
    const visit = (x: RunRecord) => {
      if (counted.has(x.name)) return;
      counted.add(x.name);
      for (const d of x.dependsOn) {
        const dep = byName.get(d);
        if (!dep) throw new CompareError(`${x.summaryPath}: the run depends on ${d}, which is not in ${trainingDir}`);
        visit(dep);
      }
    };
    visit(r);
    r.values.totalTokens = [...counted].reduce((n, x) => n + own.get(x)!.tokens, 0);
    r.values.totalSeconds = [...counted].reduce((n, x) => n + own.get(x)!.seconds, 0);
  }
  return { runs, heldOut };
}

// ---- comparing -------------------------------------------------------------------------------

const ARM_ORDER = ["svd", "pissa"];

/** Reads the runs of trainingDir and compares every arm with the baseline. Throws CompareError (one line) on bad input. */
export function compareRuns(trainingDir: string, o: CompareOptions = {}): ComparisonResult {
  const baseline = o.baseline ?? "random";
  const primary = o.primary ?? "heldOutFinal";
  const confidence = o.confidence ?? DEFAULT_CONFIDENCE;
  if (o.targetLoss !== undefined && !Number.isFinite(o.targetLoss))
    throw new CompareError(`target loss must be a finite number, got ${o.targetLoss}`);
  const { runs, heldOut } = readRuns(trainingDir);
  const diverged = readDiverged(trainingDir);

  const mismatches = settingsMismatches([...runs, ...diverged].filter((r) => !r.sourceOnly));
  if (mismatches.length > 0 && !o.allowMismatch)
    throw new CompareError(
      `the runs differ in more than their arm, seed and learning rate: ${mismatches[0]}${mismatches.length > 1 ? ` (and ${mismatches.length - 1} more)` : ""}; compare like with like, or set \`allowMismatch\` to compare them anyway with the differences listed`,
    );
  const armNames = [...new Set([...runs, ...diverged].filter((r) => !r.sourceOnly).map((r) => r.arm))];
  if (!armNames.includes(baseline))
    throw new CompareError(`no "${baseline}" arm in ${trainingDir}: found ${armNames.join(", ")} (give \`baseline\` one of them)`);
  const rank = (arm: string) => (arm === baseline ? -1 : ARM_ORDER.includes(arm) ? ARM_ORDER.indexOf(arm) : ARM_ORDER.length);
  armNames.sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));

  // Each arm's learning rate: the one with the lowest mean validation loss (else test loss) after
  // training, among the rates at which none of its seeds diverged; the edge is judged over every rate tried.
  const tuned = new Map<string, { rate: number | null; points: LearningRatePoint[]; atEdge: boolean; onTest: boolean }>();
  for (const arm of armNames) {
    const trained = runs.filter((x) => x.arm === arm);
    const lost = diverged.filter((x) => x.arm === arm);
    const rates = [...new Set([...trained, ...lost].map((r) => r.learningRate))].sort((a, b) => a - b);
    const pts = rates.map((rate): LearningRatePoint => {
      const rs = trained.filter((r) => r.learningRate === rate);
      return {
        learningRate: rate,
        runs: rs.map((r) => r.name),
        diverged: lost.filter((d) => d.learningRate === rate).map((d) => d.name),
        validation: summarize(
          rs.map((r) => r.validationFinal),
          confidence,
        ),
        test: summarize(
          rs.map((r) => r.values.heldOutFinal),
          confidence,
        ),
      };
    });
    const finite = pts.filter((p) => p.diverged.length === 0);
    const onTest = finite.every((p) => p.validation.mean === null);
    const score = (p: LearningRatePoint) => (onTest ? p.test.mean : p.validation.mean) ?? Number.POSITIVE_INFINITY;
    const best = finite.length > 0 ? finite.reduce((a, b) => (score(b) < score(a) ? b : a)) : null;
    const atEdge = best !== null && rates.length > 1 && (best.learningRate === rates[0] || best.learningRate === rates.at(-1));
    tuned.set(arm, { rate: best?.learningRate ?? null, points: pts, atEdge, onTest: onTest && rates.length > 1 });
  }
  if (tuned.get(baseline)!.rate === null)
    throw new CompareError(
      `the baseline ${baseline} diverged at every learning rate it was tried at (${tuned
        .get(baseline)!
        .points.map((p) => p.learningRate)
        .join(", ")}): there is nothing to compare with; add smaller rates to \`lrGrid\``,
    );

  const seeds = [...new Set([...runs, ...diverged].map((r) => r.seed))].sort((a, b) => a - b);
  const at = (arm: string) => runs.filter((r) => r.arm === arm && r.learningRate === tuned.get(arm)!.rate);
  const baseRuns = at(baseline);
  const targetLoss = o.targetLoss ?? summarize(baseRuns.map((r) => r.values.heldOutFinal)).mean;
  for (const r of runs) r.values.stepsToTarget = targetLoss === null ? null : stepsToTarget(heldOut.get(r.name) ?? [], targetLoss);

  const bySeed = (rs: RunRecord[], metric: MetricKey) => seeds.map((seed) => rs.find((r) => r.seed === seed)?.values[metric] ?? null);
  const arms: ArmComparison[] = armNames.map((arm) => {
    const rs = at(arm);
    const t = tuned.get(arm)!;
    const metrics = Object.fromEntries(
      METRICS.map((m) => [
        m,
        summarize(
          rs.map((r) => r.values[m]),
          confidence,
        ),
      ]),
    ) as Record<MetricKey, Summary>;
    const vs =
      arm === baseline
        ? null
        : (Object.fromEntries(
            METRICS.map((m) => {
              const [b, a] = [bySeed(baseRuns, m), bySeed(rs, m)];
              return [m, versus(pairedComparison(b, a, { confidence }), seeds, b, a)];
            }),
          ) as Record<MetricKey, VersusBaseline>);
    const mcnemar = arm === baseline ? [] : seeds.flatMap((seed) => mcnemarFor(baseRuns, rs, seed));
    return {
      arm,
      learningRate: t.rate,
      learningRates: t.points,
      rateAtEdge: t.atEdge,
      runs: rs.map((r) => r.name),
      metrics,
      vsBaseline: vs,
      mcnemar,
      verdict: "",
    };
  });

  // Holm across the arms, for the primary endpoint.
  const others = arms.filter((a) => a.vsBaseline);
  const adjusted = holm(others.map((a) => a.vsBaseline![primary].pPermutation));
  others.forEach((a, i) => {
    a.vsBaseline![primary].pHolm = adjusted[i];
  });
  const grid = arms.some((a) => a.learningRates.length > 1);
  const baselineArm = arms.find((a) => a.arm === baseline);
  for (const a of arms) a.verdict = verdictOf(a, baselineArm, primary, grid);

  const caveats = [
    ...mismatches.map((m) => `Settings differ between runs (compared anyway, allowMismatch): ${m}.`),
    ...caveatsOf(arms, runs, diverged, baseline, seeds, grid, tuned),
  ];
  // The runs in the arms' order, then by learning rate and seed.
  runs.sort((a, b) => armNames.indexOf(a.arm) - armNames.indexOf(b.arm) || a.learningRate - b.learningRate || a.seed - b.seed);
  return {
    trainingDir,
    baseline,
    primary,
    confidence,
    targetLoss,
    targetSource: o.targetLoss !== undefined ? "given" : "baseline held-out loss after training",
    seeds,
    definitions: DEFINITIONS,
    arms,
    runs,
    diverged,
    verdict: [...mergedVerdicts(arms.filter((a) => a.arm !== baseline)), ...headline(arms, baseline, grid, seeds)],
    caveats,
  };
}

/** Settings an experiment's runs differ in by design: the arm's init and its factors, the seed, the learning rate, the process layout. */
const PER_RUN = new Set(["init", "svdFactors", "seed", "learningRate", "gpus", "ranks"]);

/** Each setting (beyond PER_RUN) whose value is not the same in every run: "loraRank 16 (random, svd) vs 8 (pissa)". */
export function settingsMismatches(runs: Pick<RunRecord, "name" | "identity">[]): string[] {
  const keys = [...new Set(runs.flatMap((r) => Object.keys(r.identity)))].filter((k) => !PER_RUN.has(k)).sort();
  return keys.flatMap((key) => {
    const byValue = new Map<string, string[]>();
    for (const r of runs) {
      const v = r.identity[key] === undefined ? "(not set)" : JSON.stringify(r.identity[key]);
      byValue.set(v, [...(byValue.get(v) ?? []), r.name]);
    }
    if (byValue.size < 2) return [];
    const show = (names: string[]) => (names.length > 3 ? `${names.slice(0, 3).join(", ")}, …` : names.join(", "));
    return [`${key} ${[...byValue].map(([v, names]) => `${v} (${show(names)})`).join(" vs ")}`];
  });
}

function versus(p: PairedComparison, seeds: number[], b: (number | null)[], a: (number | null)[]): VersusBaseline {
  return {
    n: p.n,
    meanDiff: p.meanDiff,
    ci95: p.ciT,
    ciBootstrap95: p.ciBootstrap,
    pT: p.pT,
    pPermutation: p.pPermutation,
    dz: p.dz,
    pHolm: null,
    perSeed: seeds.map((seed, i) => [seed, b[i], a[i]]),
  };
}

function mcnemarFor(baseRuns: RunRecord[], armRuns: RunRecord[], seed: number): { seed: number; test: McNemarResult }[] {
  const b = baseRuns.find((r) => r.seed === seed)?.accuracy;
  const a = armRuns.find((r) => r.seed === seed)?.accuracy;
  if (!a || !b || a.items.length === 0 || a.items.length !== b.items.length) return [];
  return [{ seed, test: mcnemarExact(b.items, a.items) }];
}

const fmt = (x: number, digits = 4) => (Math.abs(x) >= 100 ? x.toFixed(0) : Number(x.toPrecision(digits)).toString());
const pText = (p: number | null) => (p === null ? "n/a" : p < 0.001 ? "< 0.001" : p.toPrecision(2));

/**
 * One sentence on the primary endpoint, in plain words. An arm tuned at the grid's edge gets none,
 * and when the baseline is, no arm does: its optimum may lie outside the grid, so the difference
 * at the grid's best rate is not the difference at tuned rates.
 */
function verdictOf(a: ArmComparison, base: ArmComparison | undefined, primary: MetricKey, grid: boolean): string {
  if (!a.vsBaseline || !base) return "";
  const baseline = base.arm;
  const label = METRIC_LABELS[primary];
  const v = a.vsBaseline[primary];
  const rate = grid ? "at tuned learning rates" : `at learning rate ${a.learningRate}`;
  if (a.learningRate === null)
    return `${a.arm}: no verdict — it diverged at every learning rate it was tried at (${a.learningRates.map((p) => p.learningRate).join(", ")}).`;
  if (a.rateAtEdge)
    return `${a.arm}: verdict withheld — its best learning rate ${a.learningRate} is at the edge of the grid, so its optimum may lie outside it.`;
  if (base.rateAtEdge)
    return `${a.arm}: verdict withheld — the baseline ${baseline}'s best learning rate ${base.learningRate} is at the edge of the grid, so its optimum may lie outside it.`;
  if (v.meanDiff === null || v.n < 2 || !v.ci95)
    return `${a.arm}: not enough paired seeds (${v.n}) for an interval or a test on the ${label}; run more seeds.`;
  const better = HIGHER_IS_BETTER[primary] ? v.meanDiff > 0 : v.meanDiff < 0;
  const amount = `${fmt(Math.abs(v.meanDiff))} [${fmt(v.ci95[0])}, ${fmt(v.ci95[1])}]`;
  const p = `p = ${pText(v.pPermutation)} (exact permutation, Holm-adjusted ${pText(v.pHolm)}), ${v.n} seeds`;
  const significant = v.pHolm !== null && v.pHolm < 0.05;
  if (significant)
    return `${a.arm} ${better ? (HIGHER_IS_BETTER[primary] ? "raises" : "lowers") : HIGHER_IS_BETTER[primary] ? "lowers" : "raises"} the ${label} by ${amount} vs ${baseline} ${rate}, ${p}.`;
  const bound = Math.max(Math.abs(v.ci95[0]), Math.abs(v.ci95[1]));
  return `${a.arm}: no difference detected in the ${label} vs ${baseline} ${rate} (difference ${fmt(v.meanDiff)} [${fmt(v.ci95[0])}, ${fmt(v.ci95[1])}], ${p}); the interval excludes effects larger than ${fmt(bound)}.`;
}

/** The arms' verdicts in order, those that give the same reason in one line ("svd, pissa: not enough paired seeds …"). */
function mergedVerdicts(arms: ArmComparison[]): string[] {
  const lines: { arms: string[]; reason: string | null; text: string }[] = [];
  for (const a of arms) {
    const reason = a.verdict.startsWith(`${a.arm}: `) ? a.verdict.slice(a.arm.length + 2) : null;
    const same = reason === null ? undefined : lines.find((l) => l.reason === reason);
    if (same) same.arms.push(a.arm);
    else lines.push({ arms: [a.arm], reason, text: a.verdict });
  }
  return lines.map((l) => (l.arms.length > 1 ? `${l.arms.join(", ")}: ${l.reason}` : l.text));
}

function headline(arms: ArmComparison[], baseline: string, grid: boolean, seeds: number[]): string[] {
  const lines: string[] = [];
  if (!grid) lines.push("Learning rates were not tuned (one rate for every arm): an arm's advantage may be a learning-rate effect.");
  const floor = 2 / 2 ** seeds.length;
  if (floor >= 0.05)
    lines.push(
      `With ${seeds.length} seed${seeds.length === 1 ? "" : "s"} the smallest two-sided permutation p is 2/2^n = ${floor.toPrecision(2)}: no difference can reach p < 0.05; run 6 seeds or more.`,
    );
  const b = arms.find((a) => a.arm === baseline);
  if (b?.rateAtEdge)
    lines.push(
      `The baseline's best learning rate ${b.learningRate} is at the edge of the grid: every verdict is withheld; extend \`lrGrid\` past it and run again (the table's differences are at the grid's best rates, not at tuned ones).`,
    );
  return lines;
}

function caveatsOf(
  arms: ArmComparison[],
  runs: RunRecord[],
  diverged: DivergedRunRecord[],
  baseline: string,
  seeds: number[],
  grid: boolean,
  tuned: Map<string, { onTest: boolean }>,
): string[] {
  const caveats: string[] = [];
  if (arms.some((a) => a.arm === TEACHER_ARM))
    caveats.push(
      `The ${TEACHER_ARM} arm starts from a teacher synthesized from the ${TEACHER_SOURCE_ARM} run of the same seed: it starts with what that run learned, and its compute "incl. dependencies" counts that run. The fair readings are the held-out losses, the equal-compute control (random-continued, when run) and the leak-free arms (pissa, svd-full, svd-xfit).`,
    );
  for (const [arm, t] of tuned)
    if (t.onTest)
      caveats.push(
        `${arm}'s learning rate was chosen on the test set (no validation set was kept apart): its tuned numbers are optimistic.`,
      );
  if (diverged.length > 0)
    caveats.push(
      `Runs that diverged (loss or gradient not finite), each recorded in its diverged_NAME.json: ${diverged.map((d) => `${d.name} (${d.message})`).join(", ")}. A rate at which any seed of an arm diverged is never that arm's tuned rate.`,
    );
  // An arm that starts from another's run (svd from random's teacher, random-continued from random) is not trained where that run diverged.
  for (const a of arms) {
    const sources = new Set(
      runs.filter((r) => r.arm === a.arm).flatMap((r) => r.dependsOn.map((d) => runs.find((x) => x.name === d)?.arm)),
    );
    const untried = diverged.filter(
      (d) => sources.has(d.arm) && !runs.some((r) => r.arm === a.arm && r.seed === d.seed && r.learningRate === d.learningRate),
    );
    const where = [...new Set(untried.map((d) => d.learningRate))].map(
      (lr) =>
        `learning rate ${lr}: seed ${untried
          .filter((d) => d.learningRate === lr)
          .map((d) => d.seed)
          .join(", ")}`,
    );
    if (untried.length > 0)
      caveats.push(
        `${a.arm} was not trained where the ${[...new Set(untried.map((d) => d.arm))].join(" and ")} run it starts from diverged (${where.join("; ")}): its rate is chosen among the rates it was trained at.`,
      );
  }
  for (const a of arms) {
    if (a.learningRate === null) continue;
    const missing = seeds.filter((s) => !runs.some((r) => r.arm === a.arm && r.seed === s && r.learningRate === a.learningRate));
    if (missing.length)
      caveats.push(
        `${a.arm} has no run for seed${missing.length > 1 ? "s" : ""} ${missing.join(", ")} at its learning rate: those pairs are left out.`,
      );
  }
  if (grid) caveats.push(`Held-out numbers are on the test set; learning rates were chosen on the validation set, kept apart.`);
  if (!arms.some((a) => a.arm === baseline)) caveats.push(`no ${baseline} arm`);
  return caveats;
}

// ---- writing ---------------------------------------------------------------------------------

const cell = (s: Summary, metric: MetricKey) => {
  if (s.mean === null) return metric === "stepsToTarget" ? "not reached" : "n/a";
  const f =
    metric === "accuracy" ? (x: number) => `${(100 * x).toFixed(1)} %` : metric.endsWith("econds") ? formatDuration : (x: number) => fmt(x);
  return s.sd === null ? f(s.mean) : `${f(s.mean)} ± ${f(s.sd)}`;
};

/** Arms beside the baseline in one statistics table (as many as a 3-arm experiment has): more go in further tables, so none grows too wide to read. */
export const STATISTICS_ARMS_PER_TABLE = 2;

/**
 * The statistics tables: per metric, the baseline's and each arm's mean ± sd over seeds, then each
 * arm's paired difference with its interval and p; the arms STATISTICS_ARMS_PER_TABLE at a time,
 * each table with the baseline's column.
 */
export function statisticsTables(r: ComparisonResult): { columns: string[]; rows: string[][] }[] {
  const base = r.arms.filter((a) => !a.vsBaseline);
  const others = r.arms.filter((a) => a.vsBaseline);
  if (others.length === 0) return [statisticsRows(r, base, [])];
  const tables = [];
  for (let i = 0; i < others.length; i += STATISTICS_ARMS_PER_TABLE)
    tables.push(statisticsRows(r, base, others.slice(i, i + STATISTICS_ARMS_PER_TABLE)));
  return tables;
}

function statisticsRows(r: ComparisonResult, base: ArmComparison[], others: ArmComparison[]): { columns: string[]; rows: string[][] } {
  const shown = [...base, ...others];
  const columns = [
    "metric",
    ...shown.map(
      (a) =>
        `${a.arm} (n = ${a.runs.length}${r.arms.some((x) => x.learningRates.length > 1) ? `, lr ${a.learningRate ?? "none: diverged at every rate"}` : ""})`,
    ),
    ...others.map((a) => `${a.arm} − ${r.baseline}: Δ [${Math.round(r.confidence * 100)} % CI], p`),
  ];
  const rows = METRICS.map((m) => [
    m === "stepsToTarget" && r.targetLoss !== null ? `${METRIC_LABELS[m]} (${fmt(r.targetLoss)})` : METRIC_LABELS[m],
    ...shown.map((a) => cell(a.metrics[m], m)),
    ...others.map((a) => {
      const v = a.vsBaseline![m];
      if (v.meanDiff === null) return "n/a";
      const ci = v.ci95 ? ` [${fmt(v.ci95[0])}, ${fmt(v.ci95[1])}]` : "";
      return `${fmt(v.meanDiff)}${ci}, p ${pText(v.pPermutation)}${m === r.primary && v.pHolm !== null ? ` (Holm ${pText(v.pHolm)})` : ""}`;
    }),
  ]);
  return { columns, rows };
}

function table(columns: string[], rows: string[][]): string {
  const all = [columns, ...rows];
  const widths = columns.map((_, c) => Math.max(...all.map((r) => r[c].length)));
  const line = (r: string[]) =>
    r
      .map((x, c) => (c === 0 ? x.padEnd(widths[c]) : x.padStart(widths[c])))
      .join("   ")
      .trimEnd();
  return [line(columns), widths.map((w) => "-".repeat(w)).join("   "), ...rows.map(line)].join("\n");
}

/** What the LEARNING RATES table's caption says. */
export const LEARNING_RATES_CAPTION =
  "final loss over seeds: mean [95 % CI]; * = the arm's tuned rate; a rate at which a seed diverged (loss or gradient not finite) loses";

/**
 * The learning-rate table (with several rates): per arm and rate, the final validation and test
 * losses over seeds, or that k of its n seeds diverged there; the arm's tuned rate is starred.
 */
export function learningRateRows(r: ComparisonResult): { columns: string[]; rows: string[][] } | null {
  if (!r.arms.some((a) => a.learningRates.length > 1)) return null;
  const loss = (s: Summary) => (s.mean === null ? "n/a" : `${fmt(s.mean)}${s.ci ? ` [${fmt(s.ci[0])}, ${fmt(s.ci[1])}]` : ""}`);
  const seeds = (p: LearningRatePoint) => p.runs.length + p.diverged.length;
  return {
    columns: ["arm", "learning rate", "validation", "test", "runs"],
    rows: r.arms.flatMap((a) =>
      a.learningRates.map((p) => [
        a.arm,
        `${p.learningRate}${p.learningRate === a.learningRate ? " *" : ""}`,
        ...(p.diverged.length > 0 ? [`diverged (${p.diverged.length} of ${seeds(p)} seeds)`, "–"] : [loss(p.validation), loss(p.test)]),
        String(seeds(p)),
      ]),
    ),
  };
}

export function renderComparisonReport(r: ComparisonResult): string {
  const tables = statisticsTables(r).flatMap((t) => ["", table(t.columns, t.rows)]);
  const rates = learningRateRows(r);
  const lr = rates ? ["", `LEARNING RATES (${LEARNING_RATES_CAPTION})`, table(rates.columns, rates.rows)] : [];
  const mcnemar = r.arms.flatMap((a) =>
    a.mcnemar.map((m) => `  ${a.arm} vs ${r.baseline}, seed ${m.seed}: b = ${m.test.b}, c = ${m.test.c}, p = ${pText(m.test.p)}`),
  );
  const perRun = r.runs.map(
    (x) =>
      `  ${x.name} (arm ${x.arm}, seed ${x.seed}, lr ${x.learningRate}): ${x.steps} steps; ` +
      METRICS.filter((m) => x.values[m] !== null)
        .map((m) => `${m} ${m === "accuracy" ? `${x.accuracy?.correct}/${x.accuracy?.total}` : fmt(x.values[m]!)}`)
        .join(", "),
  );
  const perDiverged = r.diverged.map(
    (d) =>
      `  ${d.name} (arm ${d.arm}, seed ${d.seed}, lr ${d.learningRate}): diverged, ${d.message}` +
      (d.logPath ? `; its log up to then: ${path.basename(d.logPath)}` : ""),
  );
  return [
    "svdlora: comparison of LoRA initializations (step 4 of docs/experiment.md)",
    "",
    `training folder: ${r.trainingDir}`,
    `baseline arm: ${r.baseline}; primary endpoint: ${METRIC_LABELS[r.primary]}; seeds: ${r.seeds.join(", ")}`,
    `held-out target for "steps to target": ${r.targetLoss === null ? "none" : fmt(r.targetLoss)} (${r.targetSource})`,
    "",
    "VERDICT",
    ...r.verdict.map((v) => `  ${v}`),
    ...tables,
    ...lr,
    ...(mcnemar.length
      ? ["", "ACCURACY, SEED BY SEED (McNemar's exact test; b: only the baseline right, c: only the arm right)", ...mcnemar]
      : []),
    "",
    "CAVEATS",
    ...(r.caveats.length ? r.caveats.map((c) => `  - ${c}`) : ["  (none)"]),
    "",
    "DEFINITIONS",
    ...Object.values(r.definitions).map((d) => `  - ${d}`),
    "",
    "PER RUN",
    ...perRun,
    ...perDiverged,
    "",
  ].join("\n");
}

export interface ComparisonPaths {
  json: string;
  report: string;
  chart: string;
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
  // The charts draw each compared run's logged curves; comparison_random_vs_svd.png shows those two arms only.
  const compared = result.arms.flatMap((a) => a.runs.map((name) => result.runs.find((r) => r.name === name)!));
  const curves = runCurves(compared.map((r) => ({ run: r.name, arm: r.arm, log: r.logPath })));
  const pair = curves.filter((c) => c.arm === result.baseline || c.arm === TEACHER_ARM);
  const chart = (runs: RunCurves[]) =>
    comparisonChart({
      runs,
      subtitle: runs.some((c) => c.arm === TEACHER_ARM)
        ? `${TEACHER_ARM}'s teacher came from the ${TEACHER_SOURCE_ARM} run of the same seed`
        : undefined,
      heldOutTarget: result.targetLoss ?? undefined,
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
