// The scaling bench's CPU parts: the plan, the table and figure from a JSONL, and the runner's
// bookkeeping (every point of every side becomes a line: measured, out of memory, or not measured
// because its process died or timed out), with stand-ins for the two GPU processes.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { parseScaling, scalingChart, scalingMarkdown, writeScalingReport } from "../../bench/scaling-report.js";
import { describePlan, scalingPlan } from "../../bench/scaling.js";
import { tempDir, tinyQwen2 } from "../helpers.js";

const root = new URL("../../../", import.meta.url).pathname;
const dir = tempDir("scaling");
const versions = { kind: "versions", date: "2026-12-01", gpu: "NVIDIA H200", gpu_memory_gib: 139.8, torch: "2.11.0", peft: "0.21.0" };
const point = (size: string, tokens: number, side: string, gc: boolean | null, extra: object) => ({
  kind: "point",
  size,
  target_tokens: tokens,
  side,
  grad_ckpt: gc,
  batch_size: Math.round(tokens / 375),
  ...extra,
});
const ok = (tps: number, gib: number) => ({ real_tokens_per_s: tps, peak_mem_gib: gib, tokens_per_step: 4000 });
const lines = [
  versions,
  point("0.5B", 4096, "svdlora", null, ok(90000, 3.1)),
  point("0.5B", 4096, "peft", true, ok(30000, 4.2)),
  point("0.5B", 4096, "peft", false, ok(45000, 12.5)),
  point("7B", 1024, "svdlora", null, ok(9000, 16.1)),
  point("7B", 1024, "peft", true, ok(2500, 17.5)),
  point("7B", 1024, "peft", false, ok(4500, 25.5)),
  point("7B", 4096, "svdlora", null, { ...ok(12000, 30.1), recomputed_layers_per_step: 2.5 }),
  point("7B", 4096, "peft", true, ok(3600, 24.5)),
  point("7B", 4096, "peft", false, { error: "out of memory: CUDA out of memory. Tried to allocate 20.00 GiB" }),
  point("14B", 4096, "svdlora", null, ok(6000, 50.1)),
  point("14B", 4096, "peft", true, { error: "not measured: timed out after 300 s" }),
  point("14B", 4096, "peft", false, { error: "out of memory: CUDA out of memory" }),
];
const jsonl = `${lines.map((l) => JSON.stringify(l)).join("\n")}\nnot json\n`;

test("the plan: 1k–32k tokens per step on the 7B, 4k on every size, and a time estimate", () => {
  const plan = scalingPlan();
  assert.deepEqual(
    plan.filter((p) => p.size === "7B").map((p) => [p.targetTokens, p.batchSize]),
    [
      [1024, 3],
      [4096, 11],
      [16384, 44],
      [32768, 87],
    ],
  );
  assert.deepEqual(
    plan.filter((p) => p.targetTokens === 4096).map((p) => p.size),
    ["0.5B", "1.5B", "7B", "14B"],
  );
  assert.ok(plan.every((p) => p.maxSteps >= 5));
  const text = describePlan(plan);
  const minutes = Number(/about (\d+\.\d) min/.exec(text)?.[1]);
  assert.ok(minutes > 1 && minutes <= 6, text);
});

test("the table: one row per tokens per step and per model, out of memory and failures said, the ratio to PEFT + checkpointing", () => {
  const md = scalingMarkdown(parseScaling(jsonl));
  assert.match(md, /NVIDIA H200 \(139\.8 GiB\); 2026-12-01; torch 2\.11\.0/);
  assert.match(md, /## Against tokens per step \(7B\)/);
  assert.match(md, /\| ~1k \| 3 \| 9,000 tok\/s · 16\.1 GiB \| 2,500 tok\/s · 17\.5 GiB \| 4,500 tok\/s · 25\.5 GiB \| 3\.60× \|/);
  assert.match(
    md,
    /\| ~4k \| 11 \| 12,000 tok\/s · 30\.1 GiB, 2\.5 layers recomputed \| 3,600 tok\/s · 24\.5 GiB \| out of memory \| 3\.33× \|/,
  );
  assert.match(md, /## Against model size \(~4k tokens per step\)/);
  assert.match(md, /\| 14B \| 11 \| 6,000 tok\/s · 50\.1 GiB \| failed \(not measured: timed out after 300 s\) \| out of memory \| — \|/);
  const order = [...md.matchAll(/^\| (0\.5B|7B|14B) \|/gm)].map((m) => m[1]);
  assert.deepEqual(order, ["0.5B", "7B", "14B"]);
  assert.match(md, /^- svdlora: fit at every point$/m);
  assert.match(md, /^- PEFT \+ checkpointing: fit at every point measured; not measured \(failed\): 14B at 4k tokens per step$/m);
  assert.match(md, /^- PEFT, no checkpointing: out of memory from 4k tokens per step on 7B, and from 7B at 4k tokens per step$/m);
});

test("the figure: throughput and memory panels per series, out-of-memory points at or above the card's memory, one height per side; PNG and SVG written", async () => {
  const spec = scalingChart(parseScaling(jsonl)) as unknown as {
    vconcat: { hconcat: { layer: { data: { values: Record<string, unknown>[] } }[] }[] }[];
  };
  const [throughput, memory] = spec.vconcat.map((row) => row.hconcat);
  assert.deepEqual(
    throughput[0].layer[0].data.values.map((v) => [v.side, v.tokens, v.realTokensPerSecond]),
    [
      ["svdlora", 1024, 9000],
      ["PEFT + checkpointing", 1024, 2500],
      ["PEFT, no checkpointing", 1024, 4500],
      ["svdlora", 4096, 12000],
      ["PEFT + checkpointing", 4096, 3600],
    ],
  );
  assert.deepEqual(
    memory[1].layer[1].data.values.map((v) => [v.side, v.size, v.memory]),
    [
      ["PEFT, no checkpointing", "7B", 139.8 * 1.12],
      ["PEFT, no checkpointing", "14B", 139.8 * 1.12],
    ],
  );
  const file = path.join(dir, "report.jsonl");
  fs.writeFileSync(file, jsonl);
  const written = await writeScalingReport(file, path.join(dir, "out"));
  assert.equal(path.basename(written.markdown), "2026-12-01-h200-scaling.md");
  assert.deepEqual([...fs.readFileSync(written.figure).subarray(0, 8)], [137, 80, 78, 71, 13, 10, 26, 10]);
  assert.match(fs.readFileSync(written.figure.replace(/\.png$/, ".svg"), "utf8"), /PEFT, no checkpointing/);
  await assert.rejects(writeScalingReport(path.join(dir, "report.jsonl").replace("report", "none"), dir), /ENOENT/);
  fs.writeFileSync(path.join(dir, "empty.jsonl"), `${JSON.stringify(versions)}\n`);
  await assert.rejects(writeScalingReport(path.join(dir, "empty.jsonl"), dir), /no points/);
});

test("svdlora's worker: one line per point, measured on the CPU; a point that fails is a line and the next goes on", () => {
  const config = path.join(dir, "tiny-config.json");
  fs.writeFileSync(config, JSON.stringify(tinyQwen2()));
  const samples = path.join(dir, "tiny-samples.json");
  fs.writeFileSync(
    samples,
    JSON.stringify(Array.from({ length: 12 }, (_, i) => Array.from({ length: 10 + i }, (_, j) => (i * 7 + j) % 97))),
  );
  const r = spawnSync(
    process.execPath,
    [
      path.join(root, "dist/bench/scaling.js"),
      "svdlora",
      "--config",
      config,
      "--samples",
      samples,
      "--points",
      "2:5,3:3,1:4",
      "--device",
      "cpu",
    ],
    { encoding: "utf8", env: { ...process.env, OMP_NUM_THREADS: "1" } },
  );
  assert.equal(r.status, 0, r.stderr);
  const got = r.stdout
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l));
  assert.deepEqual(
    got.map((l) => [l.side, l.batch_size, l.layers, l.timed_steps ?? null]),
    [
      ["svdlora", 2, 2, 2],
      ["svdlora", 3, 2, null],
      ["svdlora", 1, 2, 1],
    ],
  );
  // 2 timed steps of 2 samples after the 3 warm-up steps: samples 6–9, 16 to 19 tokens
  assert.equal(got[0].tokens_per_step, (16 + 17 + 18 + 19) / 2);
  assert.ok(got[0].real_tokens_per_s > 0 && got[0].padded_tokens_per_s >= got[0].real_tokens_per_s && got[0].peak_mem_gib > 0);
  assert.match(got[1].error, /3 steps leave none to time after the 3 warm-up steps/);
  assert.equal(got[2].tokens_per_step, 13, "sample 3 alone");
});

test("the runner: every point of every side is a line, whatever its process did", () => {
  // svdlora's stand-in measures 0.5B; on the 7B it reports the first point, then hangs (timed out).
  const worker = path.join(dir, "worker.mjs");
  fs.writeFileSync(
    worker,
    `const a = process.argv.slice(2);
const config = a[a.indexOf("--config") + 1], points = a[a.indexOf("--points") + 1].split(",");
const line = (p) => console.log(JSON.stringify({ side: "svdlora", batch_size: Number(p.split(":")[0]), real_tokens_per_s: 1000, peak_mem_gib: 2, tokens_per_step: 4000 }));
if (a[0] !== "svdlora" || !a.includes("--samples")) process.exit(9);
if (config.endsWith("qwen2.5-0.5b.json")) points.forEach(line);
else { line(points[0]); setTimeout(() => {}, 60000); }
`,
  );
  // PEFT's stand-in: the versions probe, then on the 0.5B one line with checkpointing and one out of
  // memory without; on the 7B a crash after the first line.
  const python = path.join(dir, "python");
  fs.writeFileSync(
    python,
    `#!/bin/sh
if [ "$1" = "-c" ]; then echo '{"torch":"2.11.0","peft":"0.21.0","gpu":"NVIDIA H200","gpu_memory_gib":139.8}'; exit 0; fi
case "$1" in */scripts/bench_peft.py) ;; *) exit 8;; esac
case "$*" in *"--gradient-checkpointing on,off"*) ;; *) exit 7;; esac
case "$*" in
  *qwen2.5-0.5b.json*)
    echo '{"side":"peft","batch_size":11,"grad_ckpt":true,"real_tokens_per_s":500,"peak_mem_gib":3,"tokens_per_step":4000}'
    echo '{"side":"peft","batch_size":11,"grad_ckpt":false,"error":"out of memory: CUDA out of memory"}' ;;
  *)
    echo '{"side":"peft","batch_size":3,"grad_ckpt":true,"real_tokens_per_s":300,"peak_mem_gib":18,"tokens_per_step":1100}'
    echo "RuntimeError: CUDA error: an illegal memory access was encountered" >&2
    exit 1 ;;
esac
`,
    { mode: 0o755 },
  );
  const out = path.join(dir, "run");
  const r = spawnSync(
    process.execPath,
    [
      path.join(root, "dist/bench/scaling.js"),
      "run",
      "--out",
      out,
      "--models",
      "0.5B,7B",
      "--timeout",
      "3",
      "--python",
      python,
      "--svdlora-worker",
      worker,
    ],
    { encoding: "utf8" },
  );
  assert.equal(r.status, 0, r.stderr);
  const file = fs.readdirSync(out).find((f) => f.endsWith(".jsonl"))!;
  const got = fs
    .readFileSync(path.join(out, file), "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l));
  assert.equal(got[0].kind, "versions");
  assert.equal(got[0].gpu, "NVIDIA H200");
  const rows = got.slice(1).map((l) => `${l.size} ${l.target_tokens} ${l.side} ${l.grad_ckpt} ${l.error ?? l.real_tokens_per_s}`);
  const timedOut = "not measured: timed out after 3 s";
  const crashed = "not measured: exit 1: RuntimeError: CUDA error: an illegal memory access was encountered";
  assert.deepEqual(
    rows.sort(),
    [
      "0.5B 4096 peft false out of memory: CUDA out of memory",
      "0.5B 4096 peft true 500",
      "0.5B 4096 svdlora null 1000",
      ...[1024, 4096, 16384, 32768].flatMap((t) => [
        `7B ${t} peft false ${crashed}`,
        ...(t === 1024 ? [] : [`7B ${t} peft true ${crashed}`]),
        ...(t === 1024 ? ["7B 1024 peft true 300"] : []),
        `7B ${t} svdlora null ${t === 1024 ? 1000 : timedOut}`,
      ]),
    ].sort(),
  );
  assert.match(r.stdout, /## Against tokens per step \(7B\)/);
  assert.ok(fs.readdirSync(out).some((f) => f.endsWith("-scaling.png")));
});
