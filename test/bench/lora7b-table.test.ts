// bench/table.mjs (the 7B LoRA benchmark's table) and bench/run-lora7b.sh's bookkeeping, with
// stand-ins for scripts/bench_peft.py and lora-7b.js: no GPU needed.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { test } from "node:test";
import { tempDir } from "../hf/fixtures.js";

const root = new URL("../../../", import.meta.url).pathname;
const table = path.join(root, "bench/table.mjs");

// the lines of bench/results/2026-11-28-h200-lora7b-qv.jsonl, plus versions and the other rows
const lines = [
  {
    kind: "versions",
    date: "2026-11-28",
    gpu: "NVIDIA H200",
    torch: "2.11.0+cu130",
    transformers: "5.17.0",
    peft: "0.21.0",
    alloc_conf: "",
  },
  {
    targets: ["q_proj", "v_proj"],
    grad_ckpt: true,
    layers: 28,
    timed_steps: 39,
    seconds: 18.39,
    real_tokens_per_s: 3051,
    padded_tokens_per_s: 4138,
    peak_mem_gib: 19.59,
    gpu: "NVIDIA H200",
  },
  {
    targets: ["q_proj", "v_proj"],
    grad_ckpt: false,
    layers: 28,
    timed_steps: 39,
    seconds: 8.25,
    real_tokens_per_s: 6797,
    padded_tokens_per_s: 9219,
    peak_mem_gib: 31.77,
    gpu: "NVIDIA H200",
  },
  {
    side: "svdlora",
    targets: ["q_proj", "v_proj"],
    layers: 28,
    timed_steps: 39,
    seconds: 6.59,
    real_tokens_per_s: 8515,
    padded_tokens_per_s: 11549,
    peak_mem_gib: 32.47,
    gpu: "NVIDIA H200",
  },
  { side: "svdlora", targets: ["q_proj", "v_proj"], budget_gib: 20, real_tokens_per_s: 7000, peak_mem_gib: 21.5, gpu: "NVIDIA H200" },
  {
    side: "svdlora",
    targets: "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj".split(","),
    budget_gib: 20,
    error: "exit 1: CUDA out of memory",
  },
  {
    side: "peft",
    targets: "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj".split(","),
    grad_ckpt: true,
    real_tokens_per_s: 2805,
    peak_mem_gib: 20.0,
    gpu: "NVIDIA H200",
  },
];

test("table.mjs: one row per run, ratios to PEFT with checkpointing on the same targets, files named by date and GPU", () => {
  const dir = tempDir("table");
  const file = path.join(dir, "runs.jsonl");
  fs.writeFileSync(file, `${lines.map((l) => JSON.stringify(l)).join("\n")}\nnot json\n\n`);
  const r = spawnSync(process.execPath, [table, file, "--out", path.join(dir, "out")], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  const md = r.stdout;
  assert.match(md, /GPU: NVIDIA H200 · date: 2026-11-28/);
  assert.match(md, /torch 2\.11\.0\+cu130 · transformers 5\.17\.0 · peft 0\.21\.0/);
  const rows = md.split("\n").filter((l) => /^\| (peft|svdlora) /.test(l));
  assert.deepEqual(rows, [
    "| peft | q, v | GC on | 3,051 | 19.59 | 1.00× |  |",
    "| peft | q, v | GC off | 6,797 | 31.77 | 2.23× |  |",
    "| svdlora | q, v | budget 20 GiB | 7,000 | 21.50 | 2.29× | peak over the 20 GiB budget |",
    "| svdlora | q, v | no budget | 8,515 | 32.47 | 2.79× |  |",
    // PEFT first within a target set, though its line came last
    "| peft | all 7 | GC on | 2,805 | 20.00 | 1.00× |  |",
    "| svdlora | all 7 | budget 20 GiB | — | — | — | error: exit 1: CUDA out of memory |",
  ]);
  assert.match(r.stderr, /skipped 1 line/);
  const json = JSON.parse(fs.readFileSync(path.join(dir, "out", "2026-11-28-h200-lora7b.json"), "utf8"));
  assert.equal(json.versions.peft, "0.21.0");
  assert.equal(json.runs.length, lines.length - 1);
  assert.equal(fs.readFileSync(path.join(dir, "out", "2026-11-28-h200-lora7b.md"), "utf8"), md);
});

test("table.mjs: the example results file as it is, without versions", () => {
  const r = spawnSync(process.execPath, [table, path.join(root, "bench/results/2026-11-28-h200-lora7b-qv.jsonl"), "--no-write"], {
    encoding: "utf8",
  });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /GPU: NVIDIA H200/);
  assert.match(r.stdout, /Versions: not recorded/);
  assert.match(r.stdout, /\| svdlora \| q, v \| no budget \| 8,515 \| 32\.47 \| 2\.79× \|/);
});

test("run-lora7b.sh: every run becomes a line, failures and timeouts an error row, and the table follows", () => {
  const dir = tempDir("runner");
  const fakePython = path.join(dir, "python");
  fs.writeFileSync(
    fakePython,
    `${[
      "#!/usr/bin/env bash",
      'if [ "$1" = "-" ]; then cat >/dev/null; echo \'{"kind":"versions","date":"2026-11-30","gpu":"NVIDIA H100 80GB HBM3","torch":"2.11.0","transformers":"5.17.0","peft":"0.21.0"}\'; exit; fi',
      'echo "build_s 1.0"; [ -n "${PYTORCH_CUDA_ALLOC_CONF:-}" ] && { echo "Error: allocator settings leaked"; exit 3; }',
      // the project's PEFT script, told the samples file, the 7B architecture and the targets
      'case "$*" in scripts/bench_peft.py\\ --samples\\ *\\ --model-config\\ bench/configs/qwen2.5-math-7b.json\\ --targets\\ *) ;; *) echo "Error: arguments $*"; exit 4;; esac',
      'TARGETS=$(echo "$*" | sed -E "s/.*--targets ([^ ]+).*/\\1/")',
      'case "$*" in *"--gradient-checkpointing off"*) echo "torch.OutOfMemoryError: CUDA out of memory"; exit 1;; esac',
      'echo "{\\"targets\\": \\"$TARGETS\\", \\"grad_ckpt\\": true, \\"real_tokens_per_s\\": 3000, \\"peak_mem_gib\\": 19.6, \\"gpu\\": \\"NVIDIA H100 80GB HBM3\\"}"',
    ].join("\n")}\n`,
    { mode: 0o755 },
  );
  const fakeOurs = path.join(dir, "ours.mjs");
  fs.writeFileSync(
    fakeOurs,
    `${[
      "const [, targets, flag, g, configFlag, config] = process.argv.slice(2);",
      'if (flag !== "--max-memory-gib") process.exit(5);',
      // both sides on the same architecture
      'if (configFlag !== "--model-config" || config !== "bench/configs/qwen2.5-math-7b.json") process.exit(6);',
      'if (g === "24" && targets.includes("k_proj")) setTimeout(() => {}, 60000);',
      'else console.log(JSON.stringify({ side: "svdlora", targets: targets.split(","), budget_gib: Number(g), real_tokens_per_s: 6000, peak_mem_gib: Number(g) - 1, gpu: "NVIDIA H100 80GB HBM3" }));',
    ].join("\n")}\n`,
  );
  fs.writeFileSync(path.join(dir, "samples.json"), "[]");
  const out = path.join(dir, "out");
  const r = spawnSync("bash", [path.join(root, "bench/run-lora7b.sh"), out], {
    encoding: "utf8",
    env: {
      ...process.env,
      PYTHON: fakePython,
      NODE: process.execPath,
      OURS_SCRIPT: fakeOurs,
      SAMPLES: path.join(dir, "samples.json"),
      RUN_TIMEOUT: "2",
      PYTORCH_CUDA_ALLOC_CONF: "expandable_segments:True",
    },
  });
  assert.equal(r.status, 0, r.stderr);
  const jsonl = fs.readdirSync(out).find((f) => f.endsWith(".jsonl"))!;
  const got = fs
    .readFileSync(path.join(out, jsonl), "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l));
  assert.equal(got[0].kind, "versions");
  assert.deepEqual(
    got.slice(1).map((l) => l.run),
    ["peft-qv-gc", "svdlora-qv-20", "svdlora-qv-24", "peft-all-gc", "svdlora-all-20", "svdlora-all-24", "peft-qv-nogc"],
  );
  const byRun = Object.fromEntries(got.slice(1).map((l) => [l.run, l]));
  assert.equal(byRun["peft-qv-gc"].real_tokens_per_s, 3000);
  assert.equal(byRun["svdlora-all-20"].budget_gib, 20);
  assert.match(byRun["svdlora-all-24"].error, /timed out after 2 s/);
  assert.match(byRun["peft-qv-nogc"].error, /exit 1: torch\.OutOfMemoryError: CUDA out of memory/);
  assert.equal(byRun["peft-qv-nogc"].grad_ckpt, false);
  assert.match(r.stdout, /\| svdlora \| q, v \| budget 24 GiB \| 6,000 \| 23\.00 \| 2\.00× \|/);
  assert.ok(fs.existsSync(path.join(out, "2026-11-30-h100-80gb-hbm3-lora7b.md")));
});
