// The experiment's report.html from a sample experiment written with a relative output directory
// (as `npm run demo` does): every figure embedded, parts in the order a reader needs them, links
// that resolve, and a missing figure refused. The browser test (test/browser) opens it for real.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { experimentLayout } from "../../src/pipeline/experiment.js";
import { EXPERIMENT, type ExperimentConfig } from "../../src/pipeline/settings.js";
import { defaults } from "../../src/util/settings.js";
import type { ComparisonResult } from "../../src/pipeline/compare.js";
import { summarizeComparison, writeExperimentReport } from "../../src/pipeline/report.js";
import { writeSampleExperiment } from "./sample-experiment.js";
import { tempDir } from "../helpers.js";

const tmp = tempDir("report");

describe("writeExperimentReport", () => {
  it("embeds every figure, leads with the verdict, and links each run's files, from a relative output directory", async () => {
    const relative = path.relative(process.cwd(), path.join(tmp, "exp"));
    const { config, L } = await writeSampleExperiment(relative);
    const file = await writeExperimentReport(config, L);
    assert.equal(file, L.html);
    const html = fs.readFileSync(file, "utf8");

    assert.equal((html.match(/<img src="data:image\/png;base64,/g) ?? []).length, 5, "synthesis, SVD analysis, a loss figure per run");
    const page = html.slice(0, html.indexOf("<script")); // the page, without the inlined chart code
    const headings = [...page.matchAll(/<h2>([^<]*)<\/h2>/g)].map((m) => m[1]);
    assert.deepEqual(headings, [
      "Verdict",
      "Training and held-out loss of every arm",
      "Teacher synthesis (step 2a)",
      "SVD of the teacher at rank 16 (step 2b)",
      "Runs",
      "Set-up",
      "How to read this",
    ]);
    assert.match(
      html,
      /<p>svd, pissa: not enough paired seeds \(1\) for an interval or a test on the held-out loss after training; run more seeds\.<\/p>/,
    );
    assert.match(html, /<th>svd − random: Δ \[95 % CI\], p<\/th>/);
    assert.match(html, /synthesis took 49 ms/, "durations under a second in ms, not 0.0 s");

    const specs = [...html.matchAll(/<script type="application\/json" id="chart-\d+">(.*?)<\/script>/g)].map((m) => JSON.parse(m[1]));
    assert.equal(specs.length, 1);
    const [train, heldOut] = specs[0].hconcat.map((panel: any) => panel.data.values);
    assert.deepEqual([...new Set(train.map((p: any) => p.run))], ["random", "svd", "pissa"], "every arm, baseline first");
    assert.equal(heldOut.length, 3 * 6, "held-out loss before training and after each of 5 epochs, per run");
    assert.match(html, /<a href="training_results\/comparison_all_arms\.png"/);

    const hrefs = [...page.matchAll(/<a href="([^"#][^"]*)"/g)].map((m) => decodeURIComponent(m[1]));
    for (const run of ["random", "svd", "pissa"])
      for (const f of [`final_model_${run}/`, `training_log_${run}.csv`, `train_summary_${run}.json`])
        assert.ok(hrefs.includes(`training_results/${f}`), `link to ${f}`);
    for (const href of hrefs) assert.ok(fs.existsSync(path.join(path.dirname(file), href)), `${href} resolves from the report's folder`);
    assert.ok(html.length < 2.5e6, `report.html is ${(html.length / 1e6).toFixed(2)} MB`);

    fs.rmSync(L.svdPlot);
    await assert.rejects(writeExperimentReport(config, L), /report image "Relative error.*" not found: .*svd_analysis_rank16\.png/);
  });

  it("links each run's loss plot instead of embedding it once there are more than a dozen runs", async () => {
    const { config, L } = await writeSampleExperiment(path.join(tmp, "many"));
    const copies = Array.from({ length: 10 }, (_, i) => `random-c${i + 1}`);
    for (const run of copies) {
      fs.cpSync(L.adapter("random"), L.adapter(run), { recursive: true });
      for (const file of [L.log, L.summary, L.lossPlot]) fs.copyFileSync(file("random"), file(run));
    }
    const html = fs.readFileSync(await writeExperimentReport(config, L), "utf8");
    assert.equal((html.match(/<img src="data:image\/png;base64,/g) ?? []).length, 2, "the synthesis and SVD figures only");
    assert.match(html, /13 runs: each run(&#39;|&#x27;|')s loss plot is linked from its row/);
    for (const run of ["random", "pissa", ...copies]) assert.match(html, new RegExp(`<a href="[^"]*plots/loss_curves_${run}\\.png"`));
  });

  it("says what is missing before the steps have run", async () => {
    const config = { ...(defaults(EXPERIMENT) as ExperimentConfig), outputDir: path.join(tmp, "empty") };
    const html = fs.readFileSync(await writeExperimentReport(config, experimentLayout(config)), "utf8");
    assert.match(html, /No comparison yet: step 4 \(svdlora compare\)/);
    assert.doesNotMatch(html, /<script/);
    assert.deepEqual(
      [...html.matchAll(/<h2>([^<]*)<\/h2>/g)].map((m) => m[1]),
      ["Verdict", "Set-up", "How to read this"],
    );
  });

  it("takes the verdict, the statistics and the caveats from comparison.json", async () => {
    const comparison = JSON.parse(
      fs.readFileSync(path.join(tmp, "exp", "training_results", "comparison.json"), "utf8"),
    ) as ComparisonResult;
    const summary = summarizeComparison({ ...comparison, verdict: ["svd is ahead of random on held-out loss (p = 0.01)"] });
    assert.deepEqual(summary.verdict, ["svd is ahead of random on held-out loss (p = 0.01)"]);
    assert.deepEqual(summary.notes, comparison.caveats);
    assert.equal(summary.statistics.length, 1, "two arms beside the baseline: one table");
    assert.equal(summary.statistics[0].rows.length, 9);
    assert.deepEqual(summary.statistics[0].columns, [
      "metric",
      "random (n = 1)",
      "svd (n = 1)",
      "pissa (n = 1)",
      "svd − random: Δ [95 % CI], p",
      "pissa − random: Δ [95 % CI], p",
    ]);
    assert.ok(summary.notes.some((n) => n.includes("synthesized from the random run of the same seed")));
  });
});
