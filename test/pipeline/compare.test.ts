// The comparison on synthetic runs (no training): paired statistics over seeds, the verdict's
// wording, learning-rate tuning on the validation set and its edge rule, McNemar on accuracy,
// compute including dependencies, the held-out target, and errors.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { trainingLayout } from "../../src/pipeline/layout.js";
import {
  CompareError,
  STATISTICS_ARMS_PER_TABLE,
  compareRuns,
  learningRateRows,
  renderComparisonReport,
  statisticsTables,
  writeComparison,
} from "../../src/pipeline/compare.js";
import { mcnemarExact, pairedComparison } from "../../src/stats/index.js";
import { TrainingLogWriter } from "../../src/train/log.js";
import { runCli, tempDir } from "../helpers.js";

interface FakeRun {
  arm: string;
  seed: number;
  lr?: number;
  /** Held-out (test) loss at steps 0, 10, 20. */
  heldOut: [number, number, number];
  validation?: number;
  trainFinal?: number;
  accuracy?: boolean[];
  dependsOn?: string[];
  external?: { what: string; tokens: number; seconds: number }[];
  sourceOnly?: boolean;
}

/** Writes a run's summary and log as svdlora train leaves them. */
function writeRun(dir: string, name: string, r: FakeRun): void {
  const L = trainingLayout(dir);
  fs.mkdirSync(dir, { recursive: true });
  const steps = [0, 10, 20];
  const log = new TrainingLogWriter(L.log(name));
  for (let step = 1; step <= 20; step++) {
    log.writeTrain({ step, epoch: step / 10, loss: 1 - step / 40, lr: r.lr ?? 1e-3, gradNorm: 1, tokens: step * 100, elapsedS: step });
    if (step % 10 === 0) log.writeEval({ step, epoch: step / 10, evalLoss: r.heldOut[step / 10], tokens: step * 100, elapsedS: step });
  }
  log.close();
  const evalLosses = steps.map((step, i) => ({
    step,
    epoch: step / 10,
    loss: r.heldOut[i],
    ...(r.validation !== undefined && step === 20 ? { validationLoss: r.validation } : {}),
    tokens: step * 100,
    elapsedS: step,
  }));
  const result = {
    kind: "lora",
    init: r.arm,
    seed: r.seed,
    steps: 20,
    stepsPerEpoch: 10,
    tokens: 2000,
    seconds: 20,
    initialLoss: 1,
    finalLoss: r.trainFinal ?? 0.6,
    epochLosses: [0.8, r.trainFinal ?? 0.6],
    evalLosses,
    samples: 40,
    truncated: 0,
    dropped: 0,
    trainableParameters: 100,
    accuracy: r.accuracy ? { correct: r.accuracy.filter(Boolean).length, total: r.accuracy.length, seconds: 1, items: r.accuracy } : null,
    skippedSteps: 0,
    resumedFrom: null,
  };
  const summary = {
    made_by: "svdlora",
    settings: { init: r.arm, seed: r.seed, learningRate: r.lr ?? 1e-3 },
    result,
    experiment: { arm: r.arm, dependsOn: r.dependsOn ?? [], external: r.external ?? [], ...(r.sourceOnly ? { sourceOnly: true } : {}) },
  };
  fs.writeFileSync(L.summary(name), JSON.stringify(summary));
}

const dir = tempDir("compare");
const SEEDS = [42, 43, 44, 45, 46];
const randomFinal = [0.5, 0.52, 0.48, 0.51, 0.49];
// svd: better on every seed by about 0.03; pissa: as good as random within noise.
const svdFinal = [0.468, 0.492, 0.449, 0.482, 0.458];
const pissaFinal = [0.505, 0.515, 0.482, 0.506, 0.495];

function fiveSeeds(out: string): void {
  SEEDS.forEach((seed, k) => {
    const s = k === 0 ? "" : `-s${k + 1}`;
    writeRun(out, `random${s}`, {
      arm: "random",
      seed,
      heldOut: [0.7, 0.6, randomFinal[k]],
      accuracy: [true, false, false, true, false, false],
    });
    writeRun(out, `svd${s}`, {
      arm: "svd",
      seed,
      heldOut: [0.52, 0.48, svdFinal[k]],
      accuracy: [true, true, true, true, false, true],
      dependsOn: [`random${s}`],
      external: [{ what: "teacher synthesis", tokens: 0, seconds: 0.05 }],
    });
    writeRun(out, `pissa${s}`, { arm: "pissa", seed, heldOut: [0.7, 0.61, pissaFinal[k]] });
  });
}

describe("compareRuns over five paired seeds", () => {
  const out = path.join(dir, "five");
  fiveSeeds(out);
  const r = compareRuns(out);

  it("compares every arm with the baseline seed by seed, with the stats module's numbers", () => {
    assert.deepEqual(
      r.arms.map((a) => a.arm),
      ["random", "svd", "pissa"],
    );
    assert.deepEqual(r.seeds, SEEDS);
    const svd = r.arms[1].vsBaseline!.heldOutFinal;
    const want = pairedComparison(randomFinal, svdFinal);
    assert.equal(svd.n, 5);
    assert.ok(Math.abs(svd.meanDiff! - want.meanDiff!) < 1e-12);
    assert.deepEqual(svd.ci95, want.ciT);
    assert.equal(svd.pT, want.pT);
    assert.equal(svd.pPermutation, 2 / 32, "every seed favours svd: the exact two-sided p is 2/2^5");
    assert.equal(svd.dz, want.dz);
    assert.deepEqual(
      svd.perSeed.map(([seed, b, a]) => [seed, b, a]),
      SEEDS.map((seed, k) => [seed, randomFinal[k], svdFinal[k]]),
    );
    // Holm over the two arms' permutation p for the primary endpoint.
    const p = [r.arms[1].vsBaseline!.heldOutFinal.pPermutation!, r.arms[2].vsBaseline!.heldOutFinal.pPermutation!];
    const sorted = [...p].sort((a, b) => a - b);
    assert.equal(
      Math.max(...[r.arms[1], r.arms[2]].map((a) => a.vsBaseline!.heldOutFinal.pHolm!)),
      Math.min(1, Math.max(2 * sorted[0], sorted[1])),
    );
    assert.equal(r.arms[1].vsBaseline!.trainFinal.pHolm, null, "Holm only for the primary endpoint");
  });

  it("says in words what the data support: a difference, or none detected with the effects it excludes", () => {
    assert.match(
      r.arms[1].verdict,
      /^svd: no difference detected in the held-out loss after training vs random at learning rate 0\.001 \(difference -0\.0302 \[/,
    );
    assert.match(
      r.arms[1].verdict,
      /p = 0\.063 \(exact permutation, Holm-adjusted 0\.13\), 5 seeds\); the interval excludes effects larger than 0\.0327\d*\.$/,
    );
    assert.match(r.arms[2].verdict, /^pissa: no difference detected/);
    assert.ok(r.verdict.some((l) => /not tuned/.test(l)));
    assert.ok(
      r.verdict.some((l) =>
        /With 5 seeds the smallest two-sided permutation p is 2\/2\^n = 0\.063: no difference can reach p < 0\.05/.test(l),
      ),
    );
  });

  it("counts the compute of what a run depended on, and McNemar compares accuracy seed by seed", () => {
    const svdRun = r.runs.find((x) => x.name === "svd")!;
    assert.equal(svdRun.values.totalTokens, 4000, "its own 2000 tokens and its random run's 2000");
    assert.ok(Math.abs(svdRun.values.totalSeconds! - 40.05) < 1e-9, "20 s, the random run's 20 s, and 0.05 s of synthesis");
    assert.equal(r.runs.find((x) => x.name === "pissa")!.values.totalTokens, 2000);
    const m = r.arms[1].mcnemar;
    assert.equal(m.length, 5);
    assert.deepEqual(m[0].test, mcnemarExact([true, false, false, true, false, false], [true, true, true, true, false, true]));
    assert.equal(r.arms[1].metrics.accuracy.mean, 5 / 6);
    assert.deepEqual(r.runs.find((x) => x.name === "random")!.accuracy!.ci95.length, 2);
  });

  it("measures steps to the held-out target by interpolation, the target being the baseline's final held-out loss", () => {
    const target = randomFinal.reduce((a, b) => a + b) / 5;
    assert.ok(Math.abs(r.targetLoss! - target) < 1e-12);
    const svd = r.runs.find((x) => x.name === "svd")!;
    // svd's curve 0.52 → 0.48 → 0.468 crosses 0.5 between steps 0 and 10.
    assert.ok(Math.abs(svd.values.stepsToTarget! - (10 * (0.52 - target)) / (0.52 - 0.48)) < 1e-9);
    const random = r.runs.find((x) => x.name === "random")!;
    assert.equal(random.values.stepsToTarget, 20, "random ends exactly at its own mean (0.5)");
  });

  it("writes comparison.json, the text report and the charts", async () => {
    const paths = await writeComparison(out, r);
    const json = JSON.parse(fs.readFileSync(paths.json, "utf8"));
    assert.deepEqual(Object.keys(json.arms[1].vsBaseline.heldOutFinal).sort(), [
      "ci95",
      "ciBootstrap95",
      "dz",
      "meanDiff",
      "n",
      "pHolm",
      "pPermutation",
      "pT",
      "perSeed",
    ]);
    const text = fs.readFileSync(paths.report, "utf8");
    assert.match(text, /^VERDICT$/m);
    assert.match(text, /^held-out loss after training .* -0\.0302 \[-0\.03274, -0\.02766\], p 0\.063 \(Holm 0\.13\)/m);
    assert.match(text, /svd vs random, seed 42: b = 0, c = 3, p = 0\.25/);
    assert.ok(fs.statSync(paths.chart).size > 1000 && fs.statSync(paths.allArmsChart!).size > 1000);
  });
});

/** Calls `write` for every run of a learning-rate grid: seed k (its index) at rate i, `tag` its name's ending (-lr<i>, then -s<k+1> past the first seed). */
function eachGridRun(
  seeds: number[],
  rates: number[],
  write: (run: { tag: string; seed: number; lr: number; k: number; i: number }) => void,
): void {
  seeds.forEach((seed, k) => rates.forEach((lr, i) => write({ tag: `-lr${i}${k === 0 ? "" : `-s${k + 1}`}`, seed, lr, k, i })));
}

describe("learning rates", () => {
  it("each arm is compared at the rate with its lowest validation loss; an arm tuned at the grid's edge gets no verdict", () => {
    const out = path.join(dir, "grid");
    const rates = [1e-4, 4e-4, 1.6e-3];
    eachGridRun([42, 43, 44], rates, ({ tag, seed, lr, k, i }) => {
      // random is best at the middle rate; svd keeps improving up to the largest one.
      writeRun(out, `random${tag}`, {
        arm: "random",
        seed,
        lr,
        heldOut: [0.7, 0.6, [0.55, 0.5, 0.53][i] + k / 100],
        validation: [0.56, 0.51, 0.54][i] + k / 100,
      });
      writeRun(out, `svd${tag}`, {
        arm: "svd",
        seed,
        lr,
        heldOut: [0.5, 0.48, [0.5, 0.47, 0.45][i] + k / 100],
        validation: [0.5, 0.47, 0.45][i] + k / 100,
      });
    });
    const r = compareRuns(out);
    const [random, svd] = r.arms;
    assert.equal(random.learningRate, 4e-4);
    assert.equal(random.rateAtEdge, false);
    assert.equal(svd.learningRate, 1.6e-3);
    assert.equal(svd.rateAtEdge, true);
    assert.match(svd.verdict, /^svd: verdict withheld — its best learning rate 0\.0016 is at the edge of the grid/);
    assert.equal(random.learningRates.length, 3);
    assert.ok(Math.abs(random.learningRates[1].validation.mean! - 0.52) < 1e-12);
    // Paired at each arm's own tuned rate.
    assert.deepEqual(
      svd.vsBaseline!.heldOutFinal.perSeed.map(([, b, a]) => [b, a]),
      [0, 1, 2].map((k) => [0.5 + k / 100, 0.45 + k / 100]),
    );
    assert.match(renderComparisonReport(r), /^LEARNING RATES/m);
  });

  it("when the baseline is tuned at the grid's edge, no arm gets a verdict", () => {
    const out = path.join(dir, "grid-baseline-edge");
    const rates = [1e-4, 4e-4, 1.6e-3];
    eachGridRun([42, 43, 44], rates, ({ tag, seed, lr, k, i }) => {
      // random keeps improving up to the largest rate; svd is best at the middle one.
      writeRun(out, `random${tag}`, { arm: "random", seed, lr, heldOut: [0.7, 0.6, 0.5 + k / 100], validation: [0.56, 0.51, 0.48][i] });
      writeRun(out, `svd${tag}`, { arm: "svd", seed, lr, heldOut: [0.5, 0.48, 0.4 + k / 100], validation: [0.5, 0.45, 0.47][i] });
    });
    const r = compareRuns(out);
    const [random, svd] = r.arms;
    assert.equal(random.rateAtEdge, true);
    assert.equal(svd.rateAtEdge, false);
    assert.match(svd.verdict, /^svd: verdict withheld — the baseline random's best learning rate 0\.0016 is at the edge of the grid/);
    assert.ok(r.verdict.some((l) => /every verdict is withheld/.test(l)));
    // The paired differences are still reported, at each arm's best rate of the grid.
    assert.ok(Math.abs(svd.vsBaseline!.heldOutFinal.meanDiff! - -0.1) < 1e-12);
  });
});

describe("many arms", () => {
  it("arms that give the same reason share a verdict line, and the statistics come two arms a table, each with the baseline", () => {
    const out = path.join(dir, "many-arms");
    const arms = ["random", "pissa", "olora", "milora", "eva", "mica", "orthogonal", "gaussian"];
    for (const [i, arm] of arms.entries()) writeRun(out, arm, { arm, seed: 42, heldOut: [0.7, 0.6, 0.5 - i / 100] });
    const r = compareRuns(out);
    const others = r.arms.slice(1).map((a) => a.arm); // the comparison's order: random, pissa, then by name
    assert.deepEqual(others, ["pissa", "eva", "gaussian", "mica", "milora", "olora", "orthogonal"]);
    assert.deepEqual(r.verdict.slice(0, 1), [
      `${others.join(", ")}: not enough paired seeds (1) for an interval or a test on the held-out loss after training; run more seeds.`,
    ]);
    assert.match(r.arms[1].verdict, /^pissa: not enough paired seeds \(1\)/, "each arm's own verdict stays whole in comparison.json");
    const tables = statisticsTables(r);
    assert.equal(STATISTICS_ARMS_PER_TABLE, 2);
    assert.deepEqual(
      tables.map((t) => t.columns.filter((c) => / \(n = /.test(c)).map((c) => c.split(" ")[0])),
      [
        ["random", "pissa", "eva"],
        ["random", "gaussian", "mica"],
        ["random", "milora", "olora"],
        ["random", "orthogonal"],
      ],
    );
    assert.deepEqual(tables[3].columns.slice(3), ["orthogonal − random: Δ [95 % CI], p"]);
    assert.ok(tables.every((t) => t.rows.length === 9 && t.rows.every((row) => row.length === t.columns.length)));
    const text = renderComparisonReport(r);
    assert.equal(text.match(/^metric {2,}random \(n = 1\)/gm)?.length, 4, "four tables in the text report");
    const widths = text
      .split("\n")
      .filter((l) => /^-+( {3}-+)+$/.test(l))
      .map((l) => l.length);
    assert.equal(widths.length, 4);
    assert.ok(Math.max(...widths) < 160, `tables at most 160 characters wide (${widths})`);
  });
});

describe("teacher sources", () => {
  it("svd-xfit's half-data run counts in svd-xfit's compute but is not an arm of the comparison", () => {
    const out = path.join(dir, "xfit");
    SEEDS.forEach((seed, k) => {
      const s = k === 0 ? "" : `-s${k + 1}`;
      writeRun(out, `random${s}`, { arm: "random", seed, heldOut: [0.7, 0.6, randomFinal[k]] });
      writeRun(out, `random-half${s}`, { arm: "random-half", seed, heldOut: [0.7, 0.65, 0.6], sourceOnly: true });
      writeRun(out, `svd-xfit${s}`, { arm: "svd-xfit", seed, heldOut: [0.6, 0.5, svdFinal[k]], dependsOn: [`random-half${s}`] });
    });
    const r = compareRuns(out);
    assert.deepEqual(
      r.arms.map((a) => a.arm),
      ["random", "svd-xfit"],
    );
    assert.equal(r.runs.find((x) => x.name === "svd-xfit")!.values.totalTokens, 4000, "its own 2000 tokens and the half-data run's 2000");
    assert.ok(
      r.runs.some((x) => x.name === "random-half"),
      "the source run stays in the per-run table",
    );
  });
});

describe("errors and the command line", () => {
  it("one clear error for a missing folder, no runs, no baseline, a malformed summary", () => {
    assert.throws(
      () => compareRuns(path.join(dir, "nope")),
      (e) => e instanceof CompareError && /does not exist/.test(e.message),
    );
    fs.mkdirSync(path.join(dir, "empty"));
    assert.throws(() => compareRuns(path.join(dir, "empty")), /no training runs in .*empty/);
    const only = path.join(dir, "only-svd");
    writeRun(only, "svd", { arm: "svd", seed: 42, heldOut: [0.5, 0.4, 0.3] });
    assert.throws(() => compareRuns(only), /no "random" arm in .*only-svd: found svd/);
    const bad = path.join(dir, "bad");
    fs.mkdirSync(bad);
    fs.writeFileSync(path.join(bad, "train_summary_random.json"), "{");
    assert.throws(() => compareRuns(bad), /train_summary_random\.json: not readable JSON/);
  });

  it("runs whose settings differ beyond arm, seed and learning rate are refused, or compared with the differences listed", () => {
    const out = path.join(dir, "mismatch");
    fiveSeeds(out);
    const L = trainingLayout(out);
    const setIdentity = (run: string, training: Record<string, unknown>) => {
      const s = JSON.parse(fs.readFileSync(L.summary(run), "utf8"));
      fs.writeFileSync(L.summary(run), JSON.stringify({ ...s, identity: { training, evaluation: { evalLimit: 100 } } }));
    };
    SEEDS.forEach((seed, k) => {
      const s = k === 0 ? "" : `-s${k + 1}`;
      setIdentity(`random${s}`, { loraRank: 16, seed, init: "random" });
      setIdentity(`svd${s}`, { loraRank: 16, seed, init: "svd", svdFactors: `teacher${s}` });
      setIdentity(`pissa${s}`, { loraRank: k === 4 ? 8 : 16, seed, init: "pissa" });
    });
    assert.throws(
      () => compareRuns(out),
      (e) =>
        e instanceof CompareError &&
        /^the runs differ in more than their arm, seed and learning rate: loraRank 16 \(pissa, pissa-s2, pissa-s3, …\) vs 8 \(pissa-s5\); compare like with like, or set `allowMismatch`/.test(
          e.message,
        ),
    );
    const r = compareRuns(out, { allowMismatch: true });
    assert.ok(r.caveats.some((c) => c.startsWith("Settings differ between runs (compared anyway, allowMismatch): loraRank 16")));
  });

  it("svdlora compare prints the verdict and writes its files", async () => {
    const out = path.join(dir, "cli");
    fiveSeeds(out);
    const r = await runCli("compare", "--training-dir", out);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^VERDICT$/m);
    assert.match(r.stdout, /^json: {3}.*comparison\.json$/m);
    const bad = await runCli("compare", "--training-dir", out, "--primary", "loss");
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /--primary <metric>' argument 'loss' is invalid\. expected one of heldOutFinal/);
  });
});

/** Writes the record a run of a grid leaves when its loss stops being finite (pipeline/train.ts). */
function writeDiverged(dir: string, name: string, d: { arm: string; seed: number; lr: number }): void {
  fs.mkdirSync(dir, { recursive: true });
  const record = {
    made_by: "svdlora",
    kind: "diverged LoRA training run",
    run: name,
    arm: d.arm,
    seed: d.seed,
    learningRate: d.lr,
    step: 3,
    message: "loss became NaN at step 3",
    experiment: { arm: d.arm, dependsOn: [], external: [] },
  };
  fs.writeFileSync(trainingLayout(dir).diverged(name), JSON.stringify(record));
}

describe("learning rates that diverged", () => {
  const rates = [1e-4, 4e-4, 1.6e-3];
  const out = path.join(dir, "diverged");
  eachGridRun([42, 43], rates, ({ tag, seed, lr, k, i }) => {
    // random: best finite rate 4e-4; at 1.6e-3 seed 43 diverged, seed 42 finished lowest of all (it must not win).
    if (i === 2 && k === 1) writeDiverged(out, `random${tag}`, { arm: "random", seed, lr });
    else writeRun(out, `random${tag}`, { arm: "random", seed, lr, heldOut: [0.7, 0.6, 0.5 + i / 100], validation: [0.56, 0.51, 0.3][i] });
    // svd starts from random's teacher, so it has no run where random diverged; it improves up to the largest rate.
    if (!(i === 2 && k === 1))
      writeRun(out, `svd${tag}`, {
        arm: "svd",
        seed,
        lr,
        heldOut: [0.5, 0.48, 0.45 - i / 100],
        validation: [0.5, 0.47, 0.45][i],
        dependsOn: [`random${tag}`],
      });
    // pissa diverged at every rate.
    writeDiverged(out, `pissa${tag}`, { arm: "pissa", seed, lr });
  });
  const r = compareRuns(out);
  const [random, svd, pissa] = r.arms;

  it("a rate at which any seed diverged is never the arm's rate, and a best rate below it is bracketed, not at the edge", () => {
    assert.deepEqual(
      r.arms.map((a) => a.arm),
      ["random", "svd", "pissa"],
    );
    assert.equal(random.learningRate, 4e-4);
    assert.equal(random.rateAtEdge, false);
    assert.deepEqual(
      random.learningRates.map((p) => [p.learningRate, p.runs.length, p.diverged]),
      [
        [1e-4, 2, []],
        [4e-4, 2, []],
        [1.6e-3, 1, ["random-lr2-s2"]],
      ],
    );
    // Paired at the tuned rates only: no run of the diverged rate is paired.
    assert.deepEqual(
      svd.vsBaseline!.heldOutFinal.perSeed.map(([seed, b]) => [seed, b]),
      [
        [42, 0.51],
        [43, 0.51],
      ],
    );
    // svd's edge is over the rates it was trained at; its best is the largest of them (seed 42 alone there).
    assert.equal(svd.learningRate, 1.6e-3);
    assert.equal(svd.rateAtEdge, true);
    assert.ok(
      r.caveats.includes(
        "svd was not trained where the random run it starts from diverged (learning rate 0.0016: seed 43): its rate is chosen among the rates it was trained at.",
      ),
      r.caveats.join("\n"),
    );
  });

  it("an arm that diverged at every rate has no rate and no verdict; the baseline that did is an error", () => {
    assert.equal(pissa.learningRate, null);
    assert.equal(pissa.rateAtEdge, false);
    assert.deepEqual(pissa.runs, []);
    assert.equal(pissa.vsBaseline!.heldOutFinal.n, 0);
    assert.equal(pissa.verdict, "pissa: no verdict — it diverged at every learning rate it was tried at (0.0001, 0.0004, 0.0016).");
    const all = path.join(dir, "all-diverged");
    for (const [i, lr] of [1e-3, 1e-2].entries()) {
      writeDiverged(all, `random-lr${i}`, { arm: "random", seed: 42, lr });
      writeRun(all, `svd-lr${i}`, { arm: "svd", seed: 42, lr, heldOut: [0.5, 0.4, 0.3], validation: 0.3 });
    }
    assert.throws(
      () => compareRuns(all),
      (e) =>
        e instanceof CompareError &&
        e.message ===
          "the baseline random diverged at every learning rate it was tried at (0.001, 0.01): there is nothing to compare with; add smaller rates to `lrGrid`",
    );
  });

  it("the learning-rate table, comparison.json and the report show each diverged rate with how many of its seeds diverged", async () => {
    const table = learningRateRows(r)!;
    assert.deepEqual(table.rows.slice(0, 3), [
      ["random", "0.0001", "0.56 [0.56, 0.56]", "0.5 [0.5, 0.5]", "2"],
      ["random", "0.0004 *", "0.51 [0.51, 0.51]", "0.51 [0.51, 0.51]", "2"],
      ["random", "0.0016", "diverged (1 of 2 seeds)", "–", "2"],
    ]);
    assert.deepEqual(
      table.rows.filter((row) => row[0] === "pissa").map((row) => row[2]),
      ["diverged (2 of 2 seeds)", "diverged (2 of 2 seeds)", "diverged (2 of 2 seeds)"],
    );
    const text = renderComparisonReport(r);
    assert.match(text, /^ {2}random-lr2-s2 \(arm random, seed 43, lr 0\.0016\): diverged, loss became NaN at step 3$/m);
    assert.match(text, /pissa \(n = 0, lr none: diverged at every rate\)/);
    const paths = await writeComparison(out, r);
    const json = JSON.parse(fs.readFileSync(paths.json, "utf8"));
    assert.deepEqual(json.arms[0].learningRates[2].diverged, ["random-lr2-s2"]);
    assert.deepEqual(
      json.diverged.map((d: { name: string; step: number; learningRate: number }) => [d.name, d.learningRate, d.step]).slice(0, 2),
      [
        ["pissa-lr0", 1e-4, 3],
        ["pissa-lr0-s2", 1e-4, 3],
      ],
    );
  });

  it("with two rates, the finite one below a diverged rate is the lowest rate tried: still the grid's edge", () => {
    const two = path.join(dir, "two-rates");
    writeRun(two, "random-lr0", { arm: "random", seed: 42, lr: 1e-3, heldOut: [0.7, 0.6, 0.5], validation: 0.5 });
    writeDiverged(two, "random-lr1", { arm: "random", seed: 42, lr: 1e-2 });
    const random = compareRuns(two).arms[0];
    assert.equal(random.learningRate, 1e-3);
    assert.equal(random.rateAtEdge, true, "its optimum may lie below the grid");
  });

  it("a record that is not svdlora's diverged run is refused with one line", () => {
    const bad = path.join(dir, "bad-diverged");
    writeRun(bad, "random", { arm: "random", seed: 42, heldOut: [0.7, 0.6, 0.5] });
    fs.writeFileSync(trainingLayout(bad).diverged("random-lr1"), JSON.stringify({ made_by: "svdlora", step: "3" }));
    assert.throws(() => compareRuns(bad), /diverged_random-lr1\.json: not a record of a diverged run written by this svdlora/);
    // Its log is the one its name gives, or none: a record that points elsewhere is not this svdlora's.
    const record = { made_by: "svdlora", run: "random-lr1", arm: "random", seed: 42, learningRate: 1, step: 3, log: "../notes.csv" };
    fs.writeFileSync(trainingLayout(bad).diverged("random-lr1"), JSON.stringify(record));
    assert.throws(
      () => compareRuns(bad),
      /diverged_random-lr1\.json: its log is named "\.\.\/notes\.csv"; a run named random-lr1 logs to training_log_random-lr1\.csv$/,
    );
    fs.writeFileSync(trainingLayout(bad).diverged("random-lr1"), JSON.stringify({ ...record, log: "training_log_random-lr1.csv" }));
    assert.deepEqual(
      compareRuns(bad).diverged.map((d) => d.logPath),
      [trainingLayout(bad).log("random-lr1")],
    );
  });
});
