// Each chart builder renders cleanly (no Vega warnings) to a PNG whose SVG carries the titles,
// axis titles and legend entries. SVDLORA_REPORT_EXAMPLES=<dir> also writes the PNGs there to look at.
import assert from "node:assert/strict";
import * as path from "node:path";
import { describe, it } from "node:test";
import { renderChart, saveChart, type RenderedChart, type TopLevelSpec } from "../../src/report/charts.js";
import { comparisonChart } from "../../src/report/comparison-chart.js";
import { epochBoundaries, lossCurvesChart, lossSeriesNames } from "../../src/report/loss-curves-chart.js";
import { svdAnalysisChart } from "../../src/report/svd-analysis-chart.js";
import { spreadIndices, synthesisChart } from "../../src/report/synthesis-chart.js";
import { pngSize } from "./png.js";
import { emaSmooth, lossAxisDomain, paddedDomain } from "../../src/report/smoothing.js";
import { sampleLossRows, sampleRuns, sampleSvdModules, sampleSynthesisModules } from "./sample-data.js";

const examplesDir = process.env.SVDLORA_REPORT_EXAMPLES;

async function render(name: string, spec: TopLevelSpec): Promise<RenderedChart> {
  const chart = examplesDir ? await saveChart(path.join(examplesDir, `${name}.png`), spec) : await renderChart(spec);
  const size = pngSize(chart.png);
  assert.ok(size.width >= 600 && size.height >= 400, `${name}: ${size.width}×${size.height}`);
  assert.deepEqual(chart.warnings, [], `${name}: Vega warnings`);
  return chart;
}

/** Vega writes each label as its own <text> element; escaping follows XML rules. */
function assertHasText(svg: string, ...texts: string[]): void {
  const escape = (t: string) => t.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  for (const t of texts) assert.ok(svg.includes(`>${escape(t)}</text>`), `SVG lacks text "${t}"`);
}

describe("lossCurvesChart", () => {
  it("draws raw, smoothed and eval loss with titles and a legend that names the smoothing", async () => {
    const { svg } = await render("loss_curves_random", lossCurvesChart(sampleLossRows(), "Training loss — random init"));
    const names = lossSeriesNames(0.9);
    assertHasText(
      svg,
      "Training loss — random init",
      "optimizer step",
      "cross-entropy loss (nats / token)",
      names.raw,
      names.smoothed,
      names.eval,
      "epoch 2",
      "epoch 5",
    );
    assert.match(names.smoothed, /EMA, β = 0\.9/);
  });

  it("renders without eval rows, and with no rows at all", async () => {
    const trainOnly = sampleLossRows().filter((r) => r.evalLoss === undefined);
    await render("loss_curves_train_only", lossCurvesChart(trainOnly, "train only", { smoothing: 0.6 }));
    const { svg } = await renderChart(lossCurvesChart([], "nothing logged yet"));
    assertHasText(svg, "nothing logged yet");
  });

  it("spans the y-axis over the EMA and eval curves, and says so when a raw spike is cut off", async () => {
    const flat = [1, 2, 3, 4].map((step) => ({ step, epoch: 1, loss: 1 }));
    const calm = lossCurvesChart(flat, "calm") as any;
    assert.equal(calm.title.subtitle, undefined);
    const spiky = lossCurvesChart([...flat, { step: 5, epoch: 1, loss: 1 }, { step: 6, epoch: 1, loss: 9 }], "spiky") as any;
    assert.deepEqual(spiky.title.subtitle, ["raw spikes above the EMA and eval curves are cut off"]);
    const [, hi] = spiky.layer.at(-1).layer[0].encoding.y.scale.domain;
    assert.ok(hi < 9 && hi > 1.8, `top of the axis ${hi}: above the EMA (${emaSmooth([1, 1, 1, 1, 1, 9]).at(-1)}), below the spike`);
    assertHasText((await renderChart(spiky)).svg, "spiky");
  });

  it("places epoch boundaries between epochs, for fractional and whole-number epochs", () => {
    const fractional = [1, 2, 3, 4].map((step) => ({ step, epoch: step / 2, loss: 1 }));
    assert.deepEqual(epochBoundaries(fractional), [{ step: 2.5, label: "epoch 2" }]);
    const zeroBased = [0, 0, 1, 1, 2].map((epoch, i) => ({ step: i + 1, epoch, loss: 1 }));
    assert.deepEqual(
      epochBoundaries(zeroBased).map((b) => b.label),
      ["epoch 2", "epoch 3"],
    );
  });
});

describe("synthesisChart", () => {
  it("shows spectra for a few modules and the noise of every module against the requested one", async () => {
    const modules = sampleSynthesisModules(28);
    const { svg } = await render("synthesis_plots", synthesisChart({ modules, noiseScale: 0.1, targetRank: 64, loraRank: 16 }));
    assertHasText(
      svg,
      "Teacher synthesis: singular-value spectra and achieved noise",
      "LoRA ΔW (rank r)",
      "synthesized teacher ΔW (rank K)",
    );
    assertHasText(svg, "singular value index i", "achieved noise ratio", "requested 0.1", modules[0].name, modules[27].name);
    assert.match(svg, /r = 16, K = 64/);
    assertHasText(
      svg,
      "Singular values of 6 of the 28 matrices, spread over the model (log scale)",
      "Achieved noise ratio of all 28 matrices",
    );
    const few = await renderChart(synthesisChart({ modules: sampleSynthesisModules(4) }));
    assertHasText(few.svg, "Singular values of all 4 matrices (log scale)", "4 adapted matrices");
  });

  it("copes with a 7B-sized module list and with a single module", async () => {
    const { svg } = await render("synthesis_plots_196", synthesisChart({ modules: sampleSynthesisModules(196) }));
    assertHasText(svg, "adapted matrix (in model order)");
    await renderChart(synthesisChart({ modules: sampleSynthesisModules(1) }));
  });

  it("spreads the spectrum panels over the model", () => {
    assert.deepEqual(spreadIndices(28, 3), [0, 14, 27]);
    assert.deepEqual(spreadIndices(2, 6), [0, 1]);
    assert.deepEqual(spreadIndices(5, 0), []);
  });
});

describe("svdAnalysisChart", () => {
  it("draws the four panels with the means in the subtitle", async () => {
    const modules = sampleSvdModules(28);
    const { svg } = await render("svd_analysis_rank16", svdAnalysisChart({ modules, rank: 16, subject: "synthesized teacher ΔW" }));
    assertHasText(
      svg,
      "SVD analysis of the synthesized teacher ΔW at rank r = 16",
      "Relative reconstruction error",
      "Energy captured by rank r",
    );
    assertHasText(
      svg,
      "Singular-value spectra",
      "grey: the other matrices",
      "Error vs energy per matrix",
      "energy ratio",
      "relative error",
      "r = 16",
    );
    assertHasText(svg, "number of matrices", "σᵢ / σ₁  (log scale)", "√(1 − energy): exact SVD");
    const meanError = modules.reduce((a, m) => a + m.relError, 0) / modules.length;
    assert.ok(svg.includes(`mean relative error ${meanError.toFixed(3)}`));
  });

  it("leaves out modules without finite metrics and says so", async () => {
    const modules = [...sampleSvdModules(5), { name: "broken", relError: NaN, energy: NaN, spectrum: [0, 0] }];
    const { svg } = await render("svd_analysis_with_nan", svdAnalysisChart({ modules, rank: 4, subject: "real fine-tune ΔW" }));
    assert.match(svg, /1 without finite metrics left out/);
  });
});

describe("comparisonChart", () => {
  it("puts training loss (raw and EMA) beside held-out loss, one colour per arm", async () => {
    const { svg } = await render("comparison_random_vs_svd", comparisonChart({ runs: sampleRuns(), heldOutTarget: 1 }));
    assertHasText(svg, "Training and held-out loss: random vs svd", "Training loss per step", "Held-out loss at each evaluation");
    assertHasText(svg, "optimizer step", "training loss (nats / token)", "held-out loss (nats / token)", "random", "svd", "target 1");
    for (const line of ["faint: raw, one batch · solid: EMA, β = 0.9", "raw spikes above the EMA curves are cut off"])
      assert.ok(svg.includes(`>${line}<`), `subtitle line "${line}"`); // lines of a subtitle are <tspan>s
    assert.doesNotMatch(svg, /initial loss|final loss/, "no bar of a raw first batch beside a smoothed last step");
  });

  it("tops the y-axis of the training panel out at the EMA curves, so one-batch spikes do not squash them", () => {
    const runs = sampleRuns();
    const spec = comparisonChart({ runs }) as any;
    const domain: [number, number] = spec.hconcat[0].layer[1].encoding.y.scale.domain;
    const raw = runs.flatMap((r) => r.train.map((p) => p.loss));
    const smoothed = runs.flatMap((r) =>
      emaSmooth(
        r.train.map((p) => p.loss),
        0.9,
      ),
    );
    assert.ok(Math.max(...raw) > domain[1], "the sample has spikes above the axis");
    assert.ok(domain[0] <= Math.min(...raw) && domain[1] >= Math.max(...smoothed), `${domain} covers the EMA curves and the raw dips`);
    assert.ok(domain[1] < Math.max(...smoothed) * 1.1);
    assert.deepEqual(paddedDomain([1, 1]), [0.95, 1.05]);
    assert.equal(paddedDomain([Number.NaN]), undefined);
    assert.deepEqual(lossAxisDomain([0, 10], [1, 1]), [0, 1.05], "not below zero");
    assert.deepEqual(lossAxisDomain([0.5, 10], [1, 1.5]), [0.45, 1.55]);
  });

  it("past the palette's ten colours, arms repeat them dashed, and the title counts the arms instead of naming them", () => {
    const arms = Array.from({ length: 12 }, (_, i) => `arm${i}`);
    const spec = comparisonChart({ runs: sampleRuns(arms, 1) }) as any;
    assert.equal(spec.title.text, "Training and held-out loss: 12 arms");
    const dash = spec.hconcat[0].layer[1].encoding.strokeDash;
    assert.deepEqual(dash.scale.domain, arms);
    assert.deepEqual(dash.scale.range, [...Array(10).fill([1, 0]), [6, 3], [6, 3]]);
    assert.deepEqual(spec.hconcat[1].layer[0].encoding.strokeDash, dash, "the held-out panel alike");
    const few = comparisonChart({ runs: sampleRuns(["random", "svd"], 1) }) as any;
    assert.equal(few.hconcat[0].layer[1].encoding.strokeDash, undefined, "ten arms or fewer: colour alone");
  });

  it("with several runs per arm, draws each run's EMA thin and the arm's mean over its runs thick, without the raw losses", () => {
    const runs = sampleRuns(["random", "svd"], 3);
    const spec = comparisonChart({ runs }) as any;
    const [thin, thick] = spec.hconcat[0].layer;
    assert.equal(thin.encoding.y.field, "smoothed", "no raw one-batch lines");
    assert.equal(thin.encoding.detail.field, "run");
    assert.equal(thick.encoding.detail.field, "arm");
    // The svd mean at step 10 is the mean of its three runs' EMA there.
    const ema = (r: (typeof runs)[number]) =>
      emaSmooth(
        r.train.map((p) => p.loss),
        0.9,
      )[9];
    const svdRuns = runs.filter((r) => r.arm === "svd");
    const mean = thick.data.values.find((p: any) => p.arm === "svd" && p.step === 10);
    assert.equal(mean.runs, 3);
    assert.ok(Math.abs(mean.smoothed - svdRuns.reduce((a, r) => a + ema(r), 0) / 3) < 1e-12);
    // The held-out panel: runs thin, the arm's mean on top.
    assert.deepEqual(spec.hconcat[1].title.subtitle[1], "thin: each run · thick: the arm's mean over its runs");
    const heldOut = spec.hconcat[1].layer;
    const held = heldOut[1].data.values.find((p: any) => p.arm === "random" && p.step === 21);
    const want = runs.filter((r) => r.arm === "random").map((r) => r.heldOut.find((p) => p.step === 21)!.loss);
    assert.ok(Math.abs(held.loss - want.reduce((a, b) => a + b) / want.length) < 1e-12);
    // The axis tops out at the means, so one run's early peak does not set it.
    const top = spec.hconcat[0].layer[1].encoding.y.scale.domain[1];
    const means = thick.data.values.map((p: any) => p.smoothed);
    assert.ok(top >= Math.max(...means) && top < Math.max(...means) * 1.1);
  });

  it("takes more arms and several seeds per arm, and leaves out the held-out panel when nothing was evaluated", async () => {
    const { svg } = await render(
      "comparison_three_arms",
      comparisonChart({ runs: sampleRuns(["random", "svd", "pissa"], 2), title: "Three inits" }),
    );
    assertHasText(svg, "Three inits", "pissa", "2 runs per arm");
    const trainOnly = sampleRuns().map((r) => ({ ...r, heldOut: [] }));
    const chart = await render("comparison_train_only", comparisonChart({ runs: trainOnly }));
    assert.doesNotMatch(chart.svg, /Held-out loss/);
  });
});
