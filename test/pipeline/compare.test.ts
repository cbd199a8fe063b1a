// svdlora compare: every number in comparison.json and comparison_report.txt is recomputed here from
// the CSV text of synthetic runs, independently of the code under test.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";
import {
  type ComparisonResult,
  CompareError,
  METRICS,
  type MetricKey,
  compareRuns,
  comparisonTable,
  writeComparison,
} from "../../src/pipeline/compare.js";
import { TrainingLogError, TrainingLogWriter } from "../../src/train/log.js";
import { PNG_SIGNATURE } from "../report/png.js";
import { tempDir } from "../helpers.js";

const bin = new URL("../../../bin/svdlora.js", import.meta.url).pathname;

interface RunSpec {
  init: string;
  seed?: number;
  losses: number[];
  /** [step, eval loss]; step 0 = before training. */
  evals?: [number, number][];
  seconds: number;
  accuracy?: { correct: number; total: number } | null;
  /** Write no train_summary_NAME.json. */
  noSummary?: boolean;
}

const TOKENS_PER_STEP = 100;

function writeRun(dir: string, name: string, run: RunSpec): void {
  const log = new TrainingLogWriter(path.join(dir, `training_log_${name}.csv`));
  const steps = run.losses.length;
  const evalAt = new Map(run.evals ?? []);
  const writeEval = (step: number) => {
    const loss = evalAt.get(step);
    if (loss !== undefined)
      log.writeEval({ step, epoch: step / (steps / 2), evalLoss: loss, tokens: step * TOKENS_PER_STEP, elapsedS: step * 0.5 });
  };
  writeEval(0);
  run.losses.forEach((loss, i) => {
    const step = i + 1;
    log.writeTrain({ step, epoch: step / (steps / 2), loss, lr: 1e-4, gradNorm: 1, tokens: step * TOKENS_PER_STEP, elapsedS: step * 0.5 });
    writeEval(step);
  });
  log.close();
  if (run.noSummary) return;
  const result = {
    init: run.init,
    runName: name,
    seed: run.seed ?? 42,
    steps,
    tokens: steps * TOKENS_PER_STEP,
    seconds: run.seconds,
    initialLoss: run.losses[0],
    finalLoss: run.losses.at(-1),
    epochLosses: [],
    evalLosses: [],
    accuracy: run.accuracy ?? null,
  };
  fs.writeFileSync(path.join(dir, `train_summary_${name}.json`), JSON.stringify({ config: { init: run.init }, result }));
}

/** A decreasing curve with a zigzag, as decimals that float32 keeps close. */
const curve = (start: number, slope: number, steps = 10, zig = 0.05) =>
  Array.from({ length: steps }, (_, i) => Number((start - slope * i + (i % 2 === 0 ? zig : -zig)).toFixed(4)));

function experiment(runs: Record<string, RunSpec>, timing?: { synthesis: number; svd: number }): string {
  const root = tempDir("compare");
  const dir = path.join(root, "training_results");
  fs.mkdirSync(dir);
  for (const [name, run] of Object.entries(runs)) writeRun(dir, name, run);
  if (timing) {
    for (const [sub, file, seconds] of [
      ["synthesized_teacher", "synthesis_timing.json", timing.synthesis],
      ["svd_results", "svd_timing.json", timing.svd],
    ] as const) {
      fs.mkdirSync(path.join(root, sub));
      fs.writeFileSync(path.join(root, sub, file), JSON.stringify({ seconds }));
    }
  }
  return dir;
}

// ---- the independent recomputation ------------------------------------------------------------

interface Csv {
  train: { step: number; loss: number; tokens: number; elapsed: number }[];
  eval: { step: number; loss: number }[];
}

function parseCsv(file: string): Csv {
  const [header, ...lines] = fs.readFileSync(file, "utf8").trim().split("\n");
  assert.equal(header, "step,epoch,loss,lr,grad_norm,tokens,elapsed_s,eval_loss");
  const out: Csv = { train: [], eval: [] };
  for (const l of lines) {
    const [step, , loss, , , tokens, elapsed, evalLoss] = l.split(",");
    if (evalLoss === "") out.train.push({ step: +step, loss: +loss, tokens: +tokens, elapsed: +elapsed });
    else out.eval.push({ step: +step, loss: +evalLoss });
  }
  return out;
}

/** Bias-corrected EMA at position t, from its closed form Σ (1-β) β^(t-k) x_k / (1 - β^t). */
function emaAt(xs: number[], t: number, beta: number): number {
  let sum = 0;
  for (let k = 0; k <= t; k++) sum += (1 - beta) * beta ** (t - k) * xs[k];
  return sum / (1 - beta ** (t + 1));
}

interface Expected {
  initialLoss: number;
  finalLoss: number;
  evalLossBefore: number | null;
  evalLossAfter: number | null;
  tokens: number;
  seconds: number;
  accuracy: number | null;
  smoothed: number[];
  steps: number[];
}

function expectedRun(dir: string, name: string, beta: number): Expected {
  const csv = parseCsv(path.join(dir, `training_log_${name}.csv`));
  const losses = csv.train.map((r) => r.loss);
  const smoothed = losses.map((_, t) => emaAt(losses, t, beta));
  const summaryFile = path.join(dir, `train_summary_${name}.json`);
  const summary = fs.existsSync(summaryFile) ? JSON.parse(fs.readFileSync(summaryFile, "utf8")).result : null;
  const after = csv.eval.filter((e) => e.step > 0);
  return {
    initialLoss: losses[0],
    finalLoss: smoothed.at(-1)!,
    evalLossBefore: csv.eval.find((e) => e.step === 0)?.loss ?? null,
    evalLossAfter: after.length ? after.at(-1)!.loss : null,
    tokens: csv.train.at(-1)!.tokens,
    seconds: summary ? summary.seconds : csv.train.at(-1)!.elapsed,
    accuracy: summary?.accuracy ? summary.accuracy.correct / summary.accuracy.total : null,
    smoothed,
    steps: csv.train.map((r) => r.step),
  };
}

const stepsTo = (e: Expected, target: number) => {
  const i = e.smoothed.findIndex((s) => s <= target);
  return i < 0 ? null : e.steps[i];
};
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const sampleStd = (xs: number[]) => Math.sqrt(xs.reduce((a, x) => a + (x - mean(xs)) ** 2, 0) / (xs.length - 1));
const close = (actual: number | null, expected: number | null, tol: number, what: string) => {
  if (expected === null) return assert.equal(actual, null, what);
  assert.ok(actual !== null && Math.abs(actual - expected) <= tol, `${what}: ${actual} != ${expected}`);
};

/** Recomputes every run's metrics and every arm's mean/std/improvement, and checks result against them. */
function checkAgainstCsvs(
  dir: string,
  result: ComparisonResult,
  timing: { synthesis: number; svd: number } | null,
): Map<string, Record<MetricKey, (number | null)[]>> {
  const beta = result.smoothing;
  const names = fs
    .readdirSync(dir)
    .map((f) => /^training_log_(.+)\.csv$/.exec(f)?.[1])
    .filter((n): n is string => !!n);
  const expected = new Map(names.map((n) => [n, expectedRun(dir, n, beta)]));
  const run = (name: string) => result.runs.find((r) => r.name === name)!;
  const armOf = (name: string) => run(name).init;
  const base = names.filter((n) => armOf(n) === result.baseline);
  const target = result.targetSource === "given" ? result.targetLoss : mean(base.map((n) => expected.get(n)!.finalLoss));
  close(result.targetLoss, target, 1e-12, "target loss");
  const randomRuns = names.filter((n) => armOf(n) === "random");
  const perArm = new Map<string, Record<MetricKey, (number | null)[]>>();
  for (const name of names) {
    const e = expected.get(name)!;
    const isSvd = armOf(name) === "svd";
    const values: Record<MetricKey, number | null> = {
      initialLoss: e.initialLoss,
      stepsToTarget: stepsTo(e, target),
      finalLoss: e.finalLoss,
      evalLossBefore: e.evalLossBefore,
      evalLossAfter: e.evalLossAfter,
      accuracy: e.accuracy,
      tokens: e.tokens,
      seconds: e.seconds,
      totalTokens: e.tokens + (isSvd ? mean(randomRuns.map((n) => expected.get(n)!.tokens)) : 0),
      totalSeconds:
        e.seconds + (isSvd ? mean(randomRuns.map((n) => expected.get(n)!.seconds)) + (timing ? timing.synthesis + timing.svd : 0) : 0),
    };
    for (const m of METRICS) close(run(name)[m], values[m], 1e-9, `${name} ${m}`);
    const arm =
      perArm.get(armOf(name)) ?? (Object.fromEntries(METRICS.map((m) => [m, []])) as unknown as Record<MetricKey, (number | null)[]>);
    for (const m of METRICS) arm[m].push(values[m]);
    perArm.set(armOf(name), arm);
  }
  const baseValues = perArm.get(result.baseline)!;
  for (const arm of result.arms) {
    const values = perArm.get(arm.init)!;
    for (const m of METRICS) {
      const xs = values[m].filter((v): v is number => v !== null);
      close(arm.metrics[m].mean, xs.length ? mean(xs) : null, 1e-9, `${arm.init} mean ${m}`);
      close(arm.metrics[m].std, xs.length > 1 ? sampleStd(xs) : null, 1e-9, `${arm.init} std ${m}`);
      if (arm.init === result.baseline) continue;
      const b = baseValues[m].filter((v): v is number => v !== null);
      const partial = m === "stepsToTarget" && (values[m].includes(null) || baseValues[m].includes(null));
      const better = m === "accuracy" ? +1 : -1;
      const pct = xs.length && b.length && !partial ? ((better * (mean(xs) - mean(b))) / mean(b)) * 100 : null;
      close(arm.improvement![m], pct, 1e-9, `${arm.init} improvement ${m}`);
    }
  }
  return perArm;
}

// ---- reading the report back ------------------------------------------------------------------

/** The cells of the table row whose label starts with `label`. */
function reportRow(report: string, label: string): string[] {
  const line = report.split("\n").find((l) => l.startsWith(label));
  assert.ok(line, `report has a row "${label}"`);
  return line
    .slice(label.length)
    .trim()
    .replace(/^\(<= [\d.]+\)\s*/, "")
    .split(/\s{3,}/);
}

const numbersIn = (cell: string) => [...cell.matchAll(/[+-]?\d+(\.\d+)?/g)].map((m) => Number(m[0]));

const ROWS: [string, MetricKey, number][] = [
  ["initial loss (step 1)", "initialLoss", 5e-5],
  ["steps to target", "stepsToTarget", 0.05],
  ["final loss (EMA, last step)", "finalLoss", 5e-5],
  ["eval loss before training", "evalLossBefore", 5e-5],
  ["eval loss after training", "evalLossAfter", 5e-5],
  ["accuracy (%)", "accuracy", 0.05],
  ["tokens (this run)", "tokens", 0.5],
  ["wall time s (this run)", "seconds", 0.05],
  ["tokens incl. dependencies", "totalTokens", 0.5],
  ["wall time s incl. dependencies", "totalSeconds", 0.05],
];

/** Checks every number of the report's table against the recomputed per-arm values. */
function checkReportTable(report: string, result: ComparisonResult, perArm: Map<string, Record<MetricKey, (number | null)[]>>): void {
  const others = result.arms.filter((a) => a.init !== result.baseline);
  for (const [label, key, tol] of ROWS) {
    const cells = reportRow(report, label);
    assert.equal(cells.length, result.arms.length + others.length, `${label}: ${cells.join(" | ")}`);
    result.arms.forEach((arm, i) => {
      const xs = perArm.get(arm.init)![key].filter((v): v is number => v !== null);
      const scale = key === "accuracy" ? 100 : 1;
      if (xs.length === 0) return assert.match(cells[i], /^(n\/a|not reached)$/, `${label} ${arm.init}`);
      const [m, s] = numbersIn(cells[i]);
      close(m, mean(xs) * scale, tol, `report ${label} ${arm.init} mean`);
      if (xs.length > 1) close(s, sampleStd(xs) * scale, tol, `report ${label} ${arm.init} std`);
      else assert.doesNotMatch(cells[i], /±/);
    });
    others.forEach((arm, j) => {
      const pct = arm.improvement![key];
      const cell = cells[result.arms.length + j];
      if (pct === null) return assert.equal(cell, "n/a");
      close(numbersIn(cell)[0], pct, 0.05, `report ${label} ${arm.init} improvement`);
    });
  }
}

// ---- tests ------------------------------------------------------------------------------------

const TIMING = { synthesis: 5, svd: 7 };

describe("compare: one run per arm", () => {
  const dir = experiment(
    {
      random: {
        init: "random",
        losses: curve(3.0, 0.15),
        evals: [
          [0, 3.1],
          [5, 2.4],
          [10, 1.9],
        ],
        seconds: 20,
        accuracy: { correct: 3, total: 10 },
      },
      svd: {
        init: "svd",
        losses: curve(2.4, 0.12),
        evals: [
          [0, 2.5],
          [5, 2.0],
          [10, 1.7],
        ],
        seconds: 18,
        accuracy: { correct: 4, total: 10 },
      },
      pissa: {
        init: "pissa",
        losses: curve(2.8, 0.14),
        evals: [
          [0, 2.9],
          [5, 2.3],
          [10, 1.8],
        ],
        seconds: 21,
      },
    },
    TIMING,
  );
  const result = compareRuns(dir);

  it("recomputes every run metric, arm mean and improvement from the CSVs", () => {
    checkAgainstCsvs(dir, result, TIMING);
    assert.deepEqual(
      result.arms.map((a) => a.init),
      ["random", "svd", "pissa"],
    );
  });

  it("matches numbers worked out by hand", () => {
    const [random, svd, pissa] = result.arms;
    assert.equal(random.metrics.initialLoss.mean, 3.05);
    close(svd.improvement!.initialLoss, ((3.05 - 2.45) / 3.05) * 100, 1e-9, "initial loss improvement");
    close(svd.improvement!.accuracy, ((0.4 - 0.3) / 0.3) * 100, 1e-9, "accuracy improvement");
    assert.equal(svd.metrics.totalTokens.mean, 2000);
    assert.equal(svd.metrics.totalSeconds.mean, 18 + 20 + 5 + 7);
    close(svd.improvement!.totalSeconds, -150, 1e-9, "svd total time vs random");
    assert.equal(pissa.metrics.totalSeconds.mean, 21, "pissa depends on no other run");
    assert.equal(pissa.metrics.accuracy.mean, null);
    // The default target is the baseline's own final loss, which the baseline reaches at its last step.
    assert.equal(result.runs.find((r) => r.name === "random")!.stepsToTarget, 10);
    assert.ok(svd.metrics.stepsToTarget.mean! < 10);
  });

  it("writes the report, the JSON and the chart, and the report's numbers are the CSVs' numbers", async () => {
    const paths = await writeComparison(dir, result);
    const report = fs.readFileSync(paths.report, "utf8");
    const json = JSON.parse(fs.readFileSync(paths.json, "utf8")) as ComparisonResult;
    checkAgainstCsvs(dir, json, TIMING);
    const perArm = checkAgainstCsvs(dir, result, TIMING);
    checkReportTable(report, result, perArm);
    assert.match(report, /synthesized from the random-init run's own trained adapter/);
    assert.match(report, /information that the random run earned by training/);
    assert.match(report, /pissa arm .* no such leak/);
    assert.doesNotMatch(report, /Unknown time/);
    assert.match(report, /One run per arm/);
    for (const d of Object.values(json.definitions)) assert.ok(report.includes(d), `definition in report: ${d}`);
    const png = fs.readFileSync(paths.chart);
    assert.ok(png.subarray(0, 8).equals(PNG_SIGNATURE), "PNG signature");
    assert.equal(path.basename(paths.chart), "comparison_random_vs_svd.png");
    assert.equal(path.basename(paths.allArmsChart ?? ""), "comparison_all_arms.png", "pissa too: a chart of every arm");
    assert.doesNotMatch(
      fs.readFileSync(paths.chart.replace(/\.png$/, ".svg"), "utf8"),
      />pissa</,
      "the random-vs-svd chart shows those two",
    );
  });
});

describe("compare: several seeds per arm", () => {
  const seeds = [1, 2, 3];
  const runs: Record<string, RunSpec> = {};
  const randomStarts = [3.0, 3.1, 3.3];
  seeds.forEach((seed, i) => {
    runs[`random-s${seed}`] = {
      init: "random",
      seed,
      losses: curve(randomStarts[i] - 0.05, 0.15),
      evals: [
        [0, 3.1 + i / 10],
        [10, 1.9 + i / 20],
      ],
      seconds: 20 + i,
      accuracy: { correct: 3 + i, total: 10 },
    };
    runs[`svd-s${seed}`] = {
      init: "svd",
      seed,
      losses: curve(2.4 + i * 0.2, 0.12 + i * 0.01),
      evals: [
        [0, 2.5],
        [10, 1.7 + i / 10],
      ],
      seconds: 18 - i,
      accuracy: { correct: 4, total: 10 },
    };
  });

  it("reports mean ± sample std, recomputed from the CSVs, and marks the svd time without teacher timing as a lower bound", async () => {
    const dir = experiment(runs);
    const result = compareRuns(dir);
    const perArm = checkAgainstCsvs(dir, result, null);
    // Sample std (n − 1) of 3.0, 3.1, 3.3, worked out by hand.
    close(result.arms[0].metrics.initialLoss.std, Math.sqrt(0.07 / 3), 1e-12, "std of the random initial losses");
    assert.deepEqual(result.arms[0].runs, ["random-s1", "random-s2", "random-s3"]);
    const paths = await writeComparison(dir, result);
    const report = fs.readFileSync(paths.report, "utf8");
    checkReportTable(report, result, perArm);
    assert.match(reportRow(report, "initial loss (step 1)")[0], /^\d\.\d{4} ± \d\.\d{4}$/);
    assert.match(reportRow(report, "wall time s incl. dependencies")[1], /^>= /);
    assert.match(reportRow(report, "wall time s incl. dependencies")[2], /^<= [+-]/);
    assert.match(report, /Unknown time: teacher synthesis .*synthesis_timing\.json missing/);
    assert.doesNotMatch(report, /One run per arm/);
  });

  it("leaves seeds that never reach the target out of the mean, and gives no improvement then", () => {
    const dir = experiment(runs);
    // Reached by svd-s1 only (svd-s2 and -s3 start higher); random never gets there.
    const svd1 = expectedRun(dir, "svd-s1", 0.9);
    const target = (svd1.finalLoss + Math.min(...["svd-s2", "svd-s3"].map((n) => expectedRun(dir, n, 0.9).smoothed.at(-1)!))) / 2;
    const result = compareRuns(dir, { targetLoss: target });
    checkAgainstCsvs(dir, result, null);
    const [random, svd] = result.arms;
    assert.equal(random.metrics.stepsToTarget.n, 0);
    assert.equal(svd.metrics.stepsToTarget.n, 1);
    assert.equal(svd.improvement!.stepsToTarget, null);
    assert.ok(result.runs.filter((r) => r.stepsToTarget === null).length === 5);
    const row = reportRow(comparisonTable(result), "steps to target");
    assert.equal(row[0], "not reached");
    assert.match(row[1], /^\d+ \(1\/3\)$/, "the mean of the one run that reached it, marked 1/3");
    assert.equal(row[2], "n/a");
  });
});

describe("compare: edge cases and errors", () => {
  const base = {
    random: { init: "random", losses: curve(3, 0.1), seconds: 10 },
    svd: { init: "svd", losses: curve(2.5, 0.1), seconds: 9 },
  };

  it("steps to target is null when the target is never reached, and the report says so", async () => {
    const dir = experiment(base, TIMING);
    const result = compareRuns(dir, { targetLoss: 0.5 });
    assert.equal(result.targetSource, "given");
    assert.ok(result.runs.every((r) => r.stepsToTarget === null));
    assert.equal(result.arms[1].improvement!.stepsToTarget, null);
    const paths = await writeComparison(dir, result);
    const row = reportRow(fs.readFileSync(paths.report, "utf8"), "steps to target");
    assert.deepEqual(row, ["not reached", "not reached", "n/a"]);
    assert.match(fs.readFileSync(paths.report, "utf8"), /No held-out eval loss was logged/);
  });

  it("another baseline, and a run without a summary (init from its name, time from its log)", () => {
    const dir = experiment({ ...base, "pissa-s7": { init: "pissa", losses: curve(2.9, 0.1), seconds: 0, noSummary: true } });
    const result = compareRuns(dir, { baseline: "pissa", smoothing: 0.5 });
    assert.deepEqual(
      result.arms.map((a) => a.init),
      ["pissa", "svd", "random"],
    );
    checkAgainstCsvs(dir, result, null);
    assert.equal(result.runs.find((r) => r.name === "pissa-s7")!.seconds, 5);
    assert.ok(result.notes.some((n) => /pissa-s7: no train_summary_pissa-s7\.json/.test(n)));
  });

  it("one clear error for a missing directory, no runs, no baseline arm, a malformed log or timing file", () => {
    const empty = tempDir("compare-empty");
    assert.throws(
      () => compareRuns(path.join(empty, "nope")),
      (e: Error) => e instanceof CompareError && /training directory .*nope does not exist/.test(e.message),
    );
    assert.throws(() => compareRuns(empty), /no training runs in .*training_log_NAME\.csv/);
    const svdOnly = experiment({ svd: base.svd });
    assert.throws(() => compareRuns(svdOnly), /no "random" arm in .*: found svd \(pass --baseline/);
    const bad = experiment(base);
    fs.appendFileSync(path.join(bad, "training_log_svd.csv"), "11,2,oops,1e-4,1,1100,5.5,\n");
    assert.throws(
      () => compareRuns(bad),
      (e: Error) => e instanceof TrainingLogError && /training_log_svd\.csv:12: loss 'oops' is not a number/.test(e.message),
    );
    const badTiming = experiment(base, TIMING);
    fs.writeFileSync(path.join(badTiming, "..", "svd_results", "svd_timing.json"), '{"secs": 3}');
    assert.throws(() => compareRuns(badTiming), /svd_timing\.json: expected \{"seconds": number >= 0\}/);
    assert.throws(() => compareRuns(bad, { smoothing: 1 }), /smoothing must be in \[0, 1\)/);
  });

  it("the CLI prints the table and the paths, and one line for an error", () => {
    const dir = experiment(base, TIMING);
    const ok = spawnSync(process.execPath, [bin, "compare", "--training-dir", dir, "--target-loss", "2.2"], { encoding: "utf8" });
    assert.equal(ok.status, 0, ok.stderr);
    assert.match(ok.stdout, /steps to target \(<= 2\.2000\)/);
    assert.match(ok.stdout, /caveat: The teacher ΔW/);
    assert.match(ok.stdout, /report: .*comparison_report\.txt/);
    assert.ok(fs.existsSync(path.join(dir, "comparison_random_vs_svd.png")));
    const err = spawnSync(process.execPath, [bin, "compare", "--training-dir", dir, "--baseline", "gaussian"], { encoding: "utf8" });
    assert.notEqual(err.status, 0);
    assert.match(err.stderr.trim(), /^svdlora: error: no "gaussian" arm in .*: found random, svd \(pass --baseline with one of them\)$/);
  });
});
