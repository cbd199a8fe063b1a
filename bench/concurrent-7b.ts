// Concurrent arms against the same arms trained one after another (docs/concurrent.md): K LoRA
// arms over one base model, each step stacking their micro-batches through the shared projections
// (train/step.ts optimizerSteps on a model carrying arms), against K runs alone (optimizerStep,
// what `svdlora train` runs), each arm with its own seed and so its own batch order.
//
// Cases (each in its own process, with a time limit; a failure or timeout becomes an error row):
//   7b-seq-K, 7b-con-K   the Qwen2.5-Math-7B architecture with random bf16 weights, LoRA q,v r = 16,
//                        α = 16, batch 4, the 81 samples of bench/make_samples.py (every token a
//                        target), AdamW lr 2e-4; K = 1, 2, 4, 8
//   tiny-seq-8, tiny-con-8   the embedded tiny model and its 81 training samples (chat-formatted)
// Per case: real tokens (padding excluded) per second for each arm and for all arms together, the
// peak memory, and MFU (4·N·tokens/s over the card's bf16 dense peak, N the non-embedding weights:
// forward and the input gradient, as a frozen base needs no weight gradient). The sequential
// figure is all arms' tokens over the sum of their times; its peak is the largest arm's. Arm k
// sees the same batches in both modes, so the table also gives the largest relative difference
// between a concurrent arm's losses and the same arm's alone.
//
// One command on a GPU machine, from the repository root, with the addon and TypeScript built:
//   python3 bench/make_samples.py /tmp/samples.json
//   node dist/bench/concurrent-7b.js /tmp/samples.json [--cases 7b-seq-1,7b-con-1,…] [--case-timeout 240]
//        [--steps 20] [--device cuda|cpu] [--out DIR] [--length-multiple N]
// --length-multiple: packed rows padded to a multiple of N tokens (train/batches.ts
// PACKED_LENGTH_MULTIPLE by default; 1: not padded).
// prints a table and, last, one JSON line with every row; with --out, also writes them there.
// On the CPU: node dist/bench/concurrent-7b.js --device cpu --cases tiny-seq-8,tiny-con-8
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import type { Encoded } from "../src/data/types.js";
import { parseModelConfig } from "../src/hf/config.js";
import { MATH_7B_CONFIG, attachRandomArms, readConfigFile, tinyWorkload } from "./configs.js";
import { randomCausalLM } from "../src/model/loader.js";
import { addLora, loraParameters } from "../src/model/lora.js";
import type { CausalLM } from "../src/model/qwen2.js";
import * as torch from "../src/torch/index.js";
import type { BatchOptions } from "../src/train/batches.js";
import { epochOrder, microBatchRanges } from "../src/train/batches.js";
import { singleProcess } from "../src/train/data-parallel.js";
import { AdamW } from "../src/train/optim.js";
import { recomputePolicy } from "../src/train/trainer.js";
import { optimizerSteps, rankMicroBatch } from "../src/train/step.js";

const ALL_CASES = [1, 2, 4, 8].flatMap((k) => [`7b-seq-${k}`, `7b-con-${k}`]).concat(["tiny-seq-8", "tiny-con-8"]);
const BF16_PEAK = 989e12; // H100/H200 SXM dense bf16 FLOP/s

const { values: flags, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    cases: { type: "string", default: ALL_CASES.join(",") },
    case: { type: "string" },
    "case-timeout": { type: "string", default: "240" },
    steps: { type: "string", default: "20" },
    warmup: { type: "string", default: "3" },
    device: { type: "string", default: "cuda" },
    out: { type: "string" },
    "length-multiple": { type: "string" },
  },
});
const lengthMultiple = flags["length-multiple"] === undefined ? undefined : Number(flags["length-multiple"]);
const [samplesFile] = positionals;

interface Row {
  case: string;
  model: string;
  mode: "sequential" | "concurrent";
  arms: number;
  steps_per_arm: number;
  seconds: number;
  /** This process's CPU time over the timed steps (on a shared machine, less affected by others than the wall time). */
  cpu_seconds: number;
  /** The host's 1-minute load average when the case ended. */
  load: number;
  tokens: number;
  tokens_per_s: number;
  tokens_per_s_per_arm: number[];
  peak_gib: number | null;
  mfu_pct: number | null;
  /** Each arm's loss at every step, warm-up included (the same batches in both modes). */
  losses: number[][];
  device: string;
  error?: string;
}

if (flags.case) await runCase(flags.case);
else await runAll();

// ---- the parent: one child per case, then the table ------------------------------------------

async function runAll(): Promise<void> {
  const cases = flags.cases.split(",").filter(Boolean);
  const unknown = cases.find((c) => !/^(7b|tiny)-(seq|con)-\d+$/.test(c));
  if (unknown) throw new Error(`unknown case ${unknown}: cases look like ${ALL_CASES.slice(0, 2).join(", ")} (7b|tiny, seq|con, arms)`);
  if (cases.some((c) => c.startsWith("7b")) && !samplesFile)
    throw new Error("the 7b cases need the samples: python3 bench/make_samples.py /tmp/samples.json, then pass /tmp/samples.json");
  const self = fileURLToPath(import.meta.url);
  const rows: Row[] = [];
  for (const name of cases) {
    const t0 = performance.now();
    const args = [
      self,
      ...(samplesFile ? [samplesFile] : []),
      "--case",
      name,
      "--steps",
      flags.steps,
      "--warmup",
      flags.warmup,
      "--device",
      flags.device,
      ...(lengthMultiple === undefined ? [] : ["--length-multiple", String(lengthMultiple)]),
    ];
    const r = spawnSync(process.execPath, args, { encoding: "utf8", timeout: Number(flags["case-timeout"]) * 1000, killSignal: "SIGKILL" });
    const line = r.stdout
      ?.trim()
      .split("\n")
      .reverse()
      .find((l) => l.startsWith("{"));
    const seconds = ((performance.now() - t0) / 1000).toFixed(0);
    if (r.status === 0 && line) rows.push(JSON.parse(line) as Row);
    else {
      const why = r.error?.message.includes("ETIMEDOUT")
        ? `timed out after ${flags["case-timeout"]} s`
        : `exit ${r.status ?? r.signal}: ${(r.stderr ?? "").trim().split("\n").slice(-3).join(" | ")}`;
      rows.push({
        ...caseInfo(name),
        steps_per_arm: 0,
        seconds: 0,
        cpu_seconds: 0,
        load: os.loadavg()[0],
        tokens: 0,
        tokens_per_s: 0,
        tokens_per_s_per_arm: [],
        peak_gib: null,
        mfu_pct: null,
        losses: [],
        device: flags.device,
        error: why,
      });
    }
    process.stderr.write(`concurrent-7b: ${name} done in ${seconds} s\n`);
  }
  const table = formatTable(rows);
  console.log(table);
  const info = { kind: "concurrent-arms", date: new Date().toISOString(), host_cpus: os.cpus().length, load_average: os.loadavg(), rows };
  console.log(JSON.stringify(info));
  if (flags.out) {
    fs.mkdirSync(flags.out, { recursive: true });
    const stamp = new Date().toISOString().slice(0, 10);
    fs.writeFileSync(path.join(flags.out, `${stamp}-concurrent-arms.md`), `${table}\n`);
    fs.writeFileSync(path.join(flags.out, `${stamp}-concurrent-arms.json`), `${JSON.stringify(info, null, 2)}\n`);
  }
}

function caseInfo(name: string): Pick<Row, "case" | "model" | "mode" | "arms"> {
  const [model, mode, k] = name.split("-");
  return { case: name, model, mode: mode === "seq" ? "sequential" : "concurrent", arms: Number(k) };
}

/** The largest |a − b| / |b| over the arms' losses at the same steps: how far concurrent arms are from the same arms alone. */
function lossDelta(a: number[][], b: number[][]): number {
  let worst = 0;
  a.forEach((arm, k) => {
    arm.forEach((x, i) => {
      const y = b[k]?.[i];
      if (y !== undefined) worst = Math.max(worst, Math.abs(x - y) / Math.abs(y));
    });
  });
  return worst;
}

function formatTable(rows: Row[]): string {
  const seq = new Map(rows.filter((r) => r.mode === "sequential" && !r.error).map((r) => [`${r.model}-${r.arms}`, r]));
  const lines = [
    "| model | arms | mode | tok/s total | tok/s per arm | vs sequential | loss Δ vs sequential | peak GiB | MFU % | s (CPU s) | load |",
    "|---|---:|---|---:|---|---:|---:|---:|---:|---:|---:|",
  ];
  for (const r of rows) {
    if (r.error) {
      lines.push(`| ${r.model} | ${r.arms} | ${r.mode} | error: ${r.error.replaceAll("|", "/")} | | | | | | | ${r.load.toFixed(1)} |`);
      continue;
    }
    const base = seq.get(`${r.model}-${r.arms}`);
    const ratio = base ? `${(r.tokens_per_s / base.tokens_per_s).toFixed(2)}×` : "";
    const delta = base && r !== base ? lossDelta(r.losses, base.losses).toExponential(1) : "";
    const perArm = r.tokens_per_s_per_arm.map((x) => Math.round(x)).join(", ");
    lines.push(
      `| ${r.model} | ${r.arms} | ${r.mode} | ${Math.round(r.tokens_per_s)} | ${perArm} | ${ratio} | ${delta} | ${r.peak_gib ?? "-"} | ${r.mfu_pct ?? "-"} | ${r.seconds.toFixed(1)} (${r.cpu_seconds.toFixed(1)}) | ${r.load.toFixed(1)} |`,
    );
  }
  return lines.join("\n");
}

// ---- one case --------------------------------------------------------------------------------

async function runCase(name: string): Promise<void> {
  torch.tuneHostAllocator(); // as the svdlora command does
  const { model: which, mode, arms } = caseInfo(name);
  const device = flags.device;
  const cuda = device.startsWith("cuda");
  const { model, samples, padId, targets } = which === "7b" ? sevenB(device) : await tiny(device);
  const batch: BatchOptions = { padId, device, packing: cuda, dtype: model.dtype, lengthMultiple };
  const recompute = recomputePolicy({ device, gradientCheckpointing: "auto" });
  const steps = Number(flags.steps);
  const warmup = Number(flags.warmup);
  const lora = { rank: 16, alpha: 16, targets };
  const dp = singleProcess(device);
  const sync = () => (cuda ? torch.cuda.synchronize() : undefined);
  const peak = () => (cuda ? torch.cuda.memory().peakAllocated / 2 ** 30 : null);
  const cpuNow = () => {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1e6;
  };
  const n = samples.length;
  const ranges = microBatchRanges(n, 4);
  // Arm k's step i: its micro-batch in its own seed's order (epochs as needed).
  const microOf = (k: number, i: number) => {
    const epoch = Math.floor(i / ranges.length);
    const [a, b] = ranges[i % ranges.length];
    const order = epochOrder(n, k + 1, epoch);
    return rankMicroBatch(
      order.slice(a, b).map((j) => samples[j]),
      1,
      dp,
      batch,
    );
  };

  /** Runs warmup + steps steps (each giving one result per arm in it) and times the last `steps`. */
  const timeSteps = (step: (i: number) => { loss: number; tokens: number }[]) => {
    const losses: number[][] = [];
    const tokens: number[] = [];
    let start = 0;
    let cpuStart = 0;
    for (let i = 0; i < warmup + steps; i++) {
      if (i === warmup) {
        sync();
        start = performance.now();
        cpuStart = cpuNow();
      }
      step(i).forEach((r, k) => {
        losses[k] ??= [];
        losses[k].push(r.loss);
        tokens[k] = (tokens[k] ?? 0) + (i >= warmup ? r.tokens : 0);
      });
    }
    sync();
    return { losses, tokens, seconds: (performance.now() - start) / 1000, cpu: cpuNow() - cpuStart };
  };

  const perArm: { tokens: number; seconds: number; cpu: number }[] = [];
  const losses: number[][] = Array.from({ length: arms }, () => []);
  let peakGib: number | null = null;
  if (mode === "sequential") {
    for (let k = 0; k < arms; k++) {
      torch.manualSeed(k + 1);
      const loras = addLora(model, lora, "random");
      const optimizer = new AdamW(loraParameters(loras), { lr: 2e-4, weightDecay: 0.01 });
      if (cuda) torch.cuda.resetPeakMemory();
      const t = timeSteps((i) => optimizerSteps(model, [{ optimizer, micro: [microOf(k, i)], lr: 2e-4 }], { recompute }));
      losses[k] = t.losses[0];
      perArm.push({ tokens: t.tokens[0], seconds: t.seconds, cpu: t.cpu });
      const p = peak();
      if (p !== null) peakGib = Math.max(peakGib ?? 0, p);
      optimizer.dispose();
      for (const l of model.linears().values()) l.lora = null;
      torch.dispose(loraParameters(loras));
    }
  } else {
    const { optimizers } = attachRandomArms(model, lora, arms, device); // the case's process ends after it
    if (cuda) torch.cuda.resetPeakMemory();
    const t = timeSteps((i) =>
      optimizerSteps(
        model,
        optimizers.map((optimizer, k) => ({ optimizer, micro: [microOf(k, i)], lr: 2e-4, arm: k })),
        { recompute },
      ),
    );
    t.losses.forEach((l, k) => {
      losses[k] = l;
    });
    for (const tokens of t.tokens) perArm.push({ tokens, seconds: t.seconds, cpu: t.cpu });
    peakGib = peak();
  }
  const tokens = perArm.reduce((s, a) => s + a.tokens, 0);
  const total = (f: (a: (typeof perArm)[number]) => number) =>
    mode === "sequential" ? perArm.reduce((s, a) => s + f(a), 0) : f(perArm[0]);
  const seconds = total((a) => a.seconds);
  const N = [...model.namedWeights()].filter(([k]) => k !== "model.embed_tokens.weight").reduce((s, [, t]) => s + t.numel(), 0);
  const row: Row = {
    ...caseInfo(name),
    steps_per_arm: steps,
    seconds: Number(seconds.toFixed(3)),
    cpu_seconds: Number(total((a) => a.cpu).toFixed(3)),
    load: os.loadavg()[0],
    tokens,
    tokens_per_s: tokens / seconds,
    tokens_per_s_per_arm: perArm.map((a) => a.tokens / a.seconds),
    peak_gib: peakGib === null ? null : Number(peakGib.toFixed(2)),
    mfu_pct: cuda ? Number(((100 * 4 * N * tokens) / seconds / BF16_PEAK).toFixed(1)) : null,
    losses,
    device: cuda ? (torch.cuda.devices()[0]?.name ?? device) : `${os.cpus()[0]?.model ?? "cpu"} (${os.cpus().length} cores)`,
  };
  console.log(JSON.stringify(row));
}

function sevenB(device: string): { model: CausalLM; samples: Encoded[]; padId: number; targets: string[] } {
  if (!samplesFile) throw new Error("the 7b cases need SAMPLES.json (bench/make_samples.py)");
  const ids: number[][] = JSON.parse(fs.readFileSync(samplesFile, "utf8"));
  torch.manualSeed(0);
  const model = randomCausalLM(parseModelConfig(readConfigFile(MATH_7B_CONFIG)), {
    dtype: device.startsWith("cuda") ? "bfloat16" : "float32",
    device,
  });
  const samples = ids.map((s) => ({ ids: s, lossMask: s.map(() => true), truncated: false }));
  return { model, samples, padId: 151643, targets: ["q_proj", "v_proj"] };
}

async function tiny(device: string): Promise<{ model: CausalLM; samples: Encoded[]; padId: number; targets: string[] }> {
  return { ...(await tinyWorkload(device)), targets: ["q_proj", "v_proj"] };
}
