#!/usr/bin/env node
// The table of bench/run-data-parallel.sh: tokens/s and peak memory per run, speed-up and scaling
// efficiency against one GPU with the same targets, and the loss curves of one GPU vs all on the
// same global batch. Usage: node bench/dp-table.mjs data-parallel-runs.jsonl
import { readFileSync } from "node:fs";

const rows = readFileSync(process.argv[2], "utf8")
  .split("\n")
  .filter(Boolean)
  .map((l) => JSON.parse(l));
const byName = new Map(rows.map((r) => [r.name, r.result]));
const out = [
  "| run | GPUs | real tok/s | speed-up | efficiency | peak GiB (rank 0) | recomputed layers/step |",
  "|---|---:|---:|---:|---:|---:|---:|",
];
for (const r of rows.filter((x) => /^(qv|all)-\d+$/.test(x.name))) {
  const [targets, n] = r.name.split("-");
  const one = byName.get(`${targets}-1`);
  const res = r.result;
  if (res.error) {
    out.push(`| ${r.name} | ${n} | error: ${res.error} | | | | |`);
    continue;
  }
  const speedup = one && !one.error ? res.real_tokens_per_s / one.real_tokens_per_s : null;
  out.push(
    `| ${targets === "qv" ? "q,v" : "all seven"} | ${n} | ${res.real_tokens_per_s.toLocaleString("en-US")} | ${speedup ? `${speedup.toFixed(2)}×` : "—"} | ${speedup ? `${((100 * speedup) / Number(n)).toFixed(1)} %` : "—"} | ${res.peak_mem_gib} | ${res.recomputed_layers_per_step} |`,
  );
}
const curves = rows.filter((x) => x.name.startsWith("curve-"));
if (curves.length === 2 && curves.every((c) => !c.result.error)) {
  const [a, b] = curves.map((c) => c.result.first_losses);
  const rel = a.map((x, i) => Math.abs(x - b[i]) / Math.abs(x));
  out.push(
    "",
    `Loss of the first ${a.length} steps, ${curves[0].name} vs ${curves[1].name} (same global batch): largest relative difference ${Math.max(...rel).toExponential(2)}`,
  );
  out.push("", "| step | one GPU | all GPUs |", "|---:|---:|---:|", ...a.map((x, i) => `| ${i + 1} | ${x} | ${b[i]} |`));
}
console.log(out.join("\n"));
