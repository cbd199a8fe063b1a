#!/usr/bin/env node
// The tables of bench/run-data-parallel.sh, from its runs (one JSON line each, from
// dist/bench/lora-7b.js): tokens/s, speed-up and scaling efficiency against one GPU with the same
// targets and budget, with the gradients' all-reduce overlapped with backward or after it; where
// each rank's step time goes; and the loss curves of one GPU vs all of them on the same global
// batch, as a table and, given an output folder, data-parallel-loss.csv and .png (needs `npm run build`).
//   node bench/dp-table.mjs data-parallel-runs.jsonl [OUTDIR]
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";

const [runsFile, outDir] = process.argv.slice(2);
const runs = readFileSync(runsFile, "utf8")
  .split("\n")
  .filter(Boolean)
  .map((l) => JSON.parse(l));
const ok = (r) => r.result && !r.result.error;
const fmt = (x, digits = 0) => x.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
// "qv-2-blocking" → the series "qv" (targets and budget) on 2 GPUs; its baseline is "qv-1".
const parse = (name) => {
  const m = /^([a-z0-9]+)-(\d+)(-blocking)?$/.exec(name);
  return m && { series: m[1], gpus: Number(m[2]) };
};
const out = [];

out.push(
  "| run | targets | budget GiB | GPUs | all-reduce | real tok/s | speed-up | efficiency | ms/step | peak GiB (rank 0) | recomputed layers/step (rank 0) |",
  "|---|---|---:|---:|---|---:|---:|---:|---:|---:|---:|",
);
for (const r of runs) {
  const p = parse(r.name);
  if (!p) continue;
  const res = r.result;
  if (!ok(r)) {
    out.push(`| ${r.name} | | | ${p.gpus} | | error: ${res?.error ?? "no result"} | | | | | |`);
    continue;
  }
  const one = runs.find((x) => x.name === `${p.series}-1` && ok(x))?.result;
  const speedup = one ? res.real_tokens_per_s / one.real_tokens_per_s : null;
  const targets = res.targets.length === 7 ? "all seven" : res.targets.map((t) => t.replace("_proj", "")).join(",");
  const allReduce = p.gpus === 1 ? "—" : res.overlap ? "during backward" : "after backward";
  out.push(
    `| ${r.name} | ${targets} | ${res.budget_gib ?? "—"} | ${p.gpus} | ${allReduce} | ${fmt(res.real_tokens_per_s)} | ${speedup ? `${speedup.toFixed(2)}×` : "—"} | ${speedup ? `${fmt((100 * speedup) / p.gpus, 1)} %` : "—"} | ${fmt((1000 * res.seconds) / res.timed_steps, 1)} | ${res.peak_mem_gib} | ${res.recomputed_layers_per_step} |`,
  );
}

// Where each rank's step goes: host milliseconds per timed step (src/train/step.ts: hostMs).
out.push(
  "",
  "Per rank, mean per timed step (ms): wall time; host time queueing forward and backward (the batch made included); waiting for the gradients' all-reduce (this GPU finishing backward, the other ranks, the collective); reading the step's numbers; queueing the update; the bench between steps; the process's CPU time. Then tokens and recomputed layers per step. Spread: how far apart the ranks' hosts reach the all-reduce; last: how often each rank gets there last; imbalance: most tokens on one rank / mean.",
  "",
  "| run | rank | step | fwd+bwd queued | all-reduce wait | read | update | between | CPU | tokens | recomputed | spread | last | imbalance |",
  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|",
);
for (const r of runs.filter((x) => parse(x.name) && ok(x) && x.result.breakdown)) {
  const b = r.result.breakdown;
  b.per_rank.forEach((k, i) => {
    const across = i === 0 ? [fmt(b.arrival_spread_ms, 1), b.last_to_arrive.join("/"), b.token_imbalance] : ["", "", ""];
    out.push(
      `| ${i === 0 ? r.name : ""} | ${k.rank} | ${fmt(k.step_ms, 1)} | ${fmt(k.backward_ms, 1)} | ${fmt(k.sum_ms, 1)} | ${fmt(k.read_ms, 1)} | ${fmt(k.update_ms, 1)} | ${fmt(k.between_ms, 1)} | ${fmt(k.cpu_ms, 1)} | ${fmt(k.tokens)} | ${k.recomputed} | ${across.join(" | ")} |`,
    );
  });
}

// The same global batch on one GPU and on all: the losses must agree within bf16 rounding.
const curves = runs.filter((x) => x.name.startsWith("curve-"));
if (curves.length === 2 && curves.every(ok)) {
  const [a, b] = curves.map((c) => c.result.losses ?? c.result.first_losses);
  const n = Math.min(a.length, b.length);
  const rel = a.slice(0, n).map((x, i) => Math.abs(x - b[i]) / Math.abs(x));
  const [one, all] = curves.map((c) => c.name);
  out.push(
    "",
    `Loss of ${n} steps, ${one} vs ${all} (the same global batch): largest relative difference ${Math.max(...rel).toExponential(2)}, mean ${(rel.reduce((s, x) => s + x, 0) / n).toExponential(2)}`,
    "",
    `| step | ${one} | ${all} | relative difference |`,
    "|---:|---:|---:|---:|",
    ...a.slice(0, n).map((x, i) => `| ${i + 1} | ${x} | ${b[i]} | ${rel[i].toExponential(1)} |`),
  );
  if (outDir) await lossFiles(outDir, one, all, a.slice(0, n), b.slice(0, n), Math.max(...rel));
}
console.log(out.join("\n"));

async function lossFiles(dir, one, all, a, b, largest) {
  const csv = path.join(dir, "data-parallel-loss.csv");
  writeFileSync(csv, `step,${one},${all}\n${a.map((x, i) => `${i + 1},${x},${b[i]}`).join("\n")}\n`);
  const png = path.join(dir, "data-parallel-loss.png");
  try {
    const { saveChart } = await import("../dist/src/report/charts.js");
    const { PANEL_HEIGHT, PANEL_WIDTH, chartConfig, chartTitle } = await import("../dist/src/report/chart-theme.js");
    const values = [...a.map((loss, i) => ({ step: i + 1, loss, run: one })), ...b.map((loss, i) => ({ step: i + 1, loss, run: all }))];
    await saveChart(
      png,
      {
        $schema: "https://vega.github.io/schema/vega-lite/v5.json",
        config: chartConfig,
        title: chartTitle(
          "Training loss, one GPU vs data-parallel, same global batch",
          `largest relative difference ${largest.toExponential(2)}`,
        ),
        width: PANEL_WIDTH,
        height: PANEL_HEIGHT,
        data: { values },
        mark: { type: "line", point: true },
        encoding: {
          x: { field: "step", type: "quantitative", title: "optimizer step", axis: { format: "d", tickMinStep: 1 } },
          y: { field: "loss", type: "quantitative", title: "training loss", scale: { zero: false } },
          color: { field: "run", type: "nominal", title: null },
          strokeDash: { field: "run", type: "nominal", title: null },
        },
      },
      { writeSvg: false },
    );
    console.error(`loss curves: ${png}, ${csv}`);
  } catch (e) {
    console.error(`loss curves: ${csv} (no PNG: ${e.message})`);
  }
}
