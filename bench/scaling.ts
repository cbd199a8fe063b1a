// How the cost of a LoRA step grows, svdlora beside PEFT (with and without gradient checkpointing),
// in one call on a GPU machine: real tokens/s and peak memory against tokens per step (packed
// about 1k, 4k, 16k and 32k on the 7B architecture) and against model size (the Qwen2.5 0.5B,
// 1.5B, 7B and 14B architectures of bench/configs/ with random bf16 weights, at about 4k tokens
// per step). q,v, r = 16; the workload of src/train/bench.ts (samples of 150–600 tokens), a step
// being a batch of consecutive samples: svdlora packs it (its default on CUDA), PEFT pads it.
// One process per model and side: svdlora's (this script's `svdlora` mode) and PEFT's
// (scripts/bench_peft.py, both checkpointing settings); a point that runs out of memory is
// recorded as such and the rest go on; a process that dies or times out leaves an error row for
// each point it did not report. Every line goes to <out>/scaling-<stamp>.jsonl as it comes, then
// bench/scaling-report.ts writes the markdown table and the figure.
//   node dist/bench/scaling.js plan                      the points, the steps and a time estimate (no GPU)
//   node dist/bench/scaling.js run [--out DIR] [--models 0.5B,7B] [--timeout S] [--python CMD]
//   node dist/bench/scaling.js svdlora --config FILE --samples FILE --points B:STEPS,…   (one process's points)
// bench/scaling.sh runs `run` from the repository root.
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { parseModelConfig } from "../src/hf/config.js";
import { randomCausalLM } from "../src/model/loader.js";
import { addLora, detachLora, loraParameters } from "../src/model/lora.js";
import * as torch from "../src/torch/index.js";
import { SAMPLE_LENGTHS, WARMUP_STEPS, benchSamples, benchSteps, matmulWeights, measureTraining, samplesFor } from "../src/train/bench.js";
import { AdamW } from "../src/train/optim.js";
import { recomputePolicy } from "../src/train/trainer.js";
import { writeScalingReport } from "./scaling-report.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const TARGETS = ["q_proj", "v_proj"];
const LORA = { rank: 16, alpha: 16 };
const OPTIMIZER = { lr: 2e-4, weightDecay: 0.01 };

/** The architectures, smallest first; the tokens-per-step series runs on SERIES_MODEL. */
export const MODELS = [
  { size: "0.5B", config: "bench/configs/qwen2.5-0.5b.json" },
  { size: "1.5B", config: "bench/configs/qwen2.5-1.5b.json" },
  { size: "7B", config: "bench/configs/qwen2.5-math-7b.json" },
  { size: "14B", config: "bench/configs/qwen2.5-14b.json" },
] as const;
export const SERIES_MODEL = "7B";
/** Tokens per step of the tokens series; the size series runs at SERIES_TOKENS. */
export const TOKENS_PER_STEP = [1024, 4096, 16384, 32768];
export const SERIES_TOKENS = 4096;
/** Each point times at least this many tokens, and at least 2 steps, after the warm-up. */
const TIMED_TOKENS = 24576;
const MIN_TIMED_STEPS = 2;
/** The smallest vocabulary of the architectures: the samples' ids are valid for every one. */
const VOCAB = 151936;

export interface Point {
  size: string;
  targetTokens: number;
  batchSize: number;
  /** Steps in all, warm-up included. */
  maxSteps: number;
}

const meanLength = (SAMPLE_LENGTHS.min + SAMPLE_LENGTHS.max) / 2;

/** The points: every tokens-per-step value on SERIES_MODEL, SERIES_TOKENS on the others. */
export function scalingPlan(sizes: readonly string[] = MODELS.map((m) => m.size)): Point[] {
  const points: Point[] = [];
  for (const m of MODELS) {
    if (!sizes.includes(m.size)) continue;
    for (const targetTokens of m.size === SERIES_MODEL ? TOKENS_PER_STEP : [SERIES_TOKENS]) {
      const batchSize = Math.max(1, Math.round(targetTokens / meanLength));
      const timed = Math.max(MIN_TIMED_STEPS, Math.ceil(TIMED_TOKENS / (batchSize * meanLength)));
      points.push({ size: m.size, targetTokens, batchSize, maxSteps: WARMUP_STEPS + timed });
    }
  }
  return points;
}

/**
 * A rough time estimate in seconds: tokens run at the rates the issue measured on an H200 for the
 * 7B (svdlora 11,000, PEFT with checkpointing 3,500, without 6,000 real tokens/s), scaled by size,
 * plus start-up and model building per process. Points that run out of memory end sooner.
 */
export function estimateSeconds(points: Point[]): number {
  const scale: Record<string, number> = { "0.5B": 8, "1.5B": 4, "7B": 1, "14B": 0.5 };
  const rates = [11000, 3500, 6000];
  let seconds = 20 * new Set(points.map((p) => p.size)).size; // start-up and model building: node 5 s, python 15 s
  for (const p of points) {
    const tokens = p.maxSteps * p.batchSize * meanLength;
    for (const rate of rates) seconds += tokens / (rate * (scale[p.size] ?? 1));
  }
  return seconds;
}

const configPath = (size: string) => path.join(ROOT, MODELS.find((m) => m.size === size)!.config);

// ---- svdlora's side: one process, one model, its points ------------------------------------------

function svdloraWorker(argv: string[]): void {
  const { values } = parseArgs({
    args: argv,
    options: {
      config: { type: "string" },
      samples: { type: "string" },
      points: { type: "string" },
      device: { type: "string", default: "cuda" },
    },
  });
  if (!values.config || !values.samples || !values.points) throw new Error("svdlora mode: --config, --samples and --points are required");
  const samples: number[][] = JSON.parse(fs.readFileSync(values.samples, "utf8"));
  const points = values.points.split(",").map((p) => p.split(":").map(Number) as [number, number]);
  const device = values.device;
  torch.tuneHostAllocator();
  torch.manualSeed(0);
  const t0 = performance.now();
  const model = randomCausalLM(parseModelConfig(JSON.parse(fs.readFileSync(values.config, "utf8"))), { dtype: "bfloat16", device });
  if (device.startsWith("cuda")) torch.cuda.synchronize();
  console.error(`model ready in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  const N = matmulWeights(model);
  const recompute = recomputePolicy({ device, gradientCheckpointing: "auto" });
  for (const [batchSize, maxSteps] of points) {
    const line: Record<string, unknown> = {
      side: "svdlora",
      checkpointing: "auto",
      batch_size: batchSize,
      layers: model.config.numHiddenLayers,
      matmul_weights: N,
    };
    try {
      const loras = addLora(model, { ...LORA, targets: TARGETS }, "random");
      const optimizer = new AdamW(loraParameters(loras), OPTIMIZER);
      try {
        const m = measureTraining(model, optimizer, samples, {
          steps: benchSteps(samples.length, batchSize, 1, maxSteps),
          padId: 0,
          packing: device.startsWith("cuda"),
          recompute,
          lr: OPTIMIZER.lr,
        });
        Object.assign(line, {
          timed_steps: m.timedSteps,
          seconds: Number(m.seconds.toFixed(3)),
          real_tokens_per_s: Math.round(m.realTokensPerSecond),
          padded_tokens_per_s: Math.round(m.paddedTokensPerSecond),
          tokens_per_step: Math.round(m.tokensPerStep),
          peak_mem_gib: Number((m.peakMemoryBytes / 2 ** 30).toFixed(3)),
          recomputed_layers_per_step: Number(m.recomputedLayersPerStep.toFixed(1)),
        });
      } finally {
        optimizer.dispose();
        detachLora(model);
      }
    } catch (e) {
      const message = (e as Error).message.split("\n")[0].slice(0, 300);
      line.error = /out of memory/i.test(message) ? `out of memory: ${message}` : message;
      if (device.startsWith("cuda")) torch.cuda.emptyCache();
    }
    console.log(JSON.stringify(line));
  }
}

// ---- the run: every process, the JSONL, the report -----------------------------------------------

/** Runs a command to its end or its timeout; each stdout line that is a JSON object goes to onLine as it comes. */
function runProcess(
  command: string,
  args: string[],
  timeoutS: number,
  onLine: (line: Record<string, unknown>) => void,
): Promise<{ code: number | null; timedOut: boolean; lastError: string }> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
    let pending = "";
    let lastError = "";
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, timeoutS * 1000);
    child.stdout.on("data", (d: Buffer) => {
      pending += d.toString();
      const lines = pending.split("\n");
      pending = lines.pop()!;
      for (const l of lines) {
        if (!l.trim().startsWith("{")) continue;
        try {
          onLine(JSON.parse(l));
        } catch {}
      }
    });
    child.stderr.on("data", (d: Buffer) => {
      process.stderr.write(d);
      const text = d.toString().trim();
      const hit = text
        .split("\n")
        .reverse()
        .find((l) => /error|out of memory/i.test(l));
      if (hit) lastError = hit.trim().slice(0, 300);
    });
    child.on("error", (e) => {
      clearTimeout(timer);
      resolve({ code: null, timedOut, lastError: e.message });
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, timedOut, lastError });
    });
  });
}

/** The versions line: the Python stack of the PEFT side, the card, Node, the libtorch svdlora was built against, the commit. */
function versions(python: string): Record<string, unknown> {
  const probe = spawnSync(
    python,
    [
      "-c",
      'import json, torch, transformers, peft; p = torch.cuda.get_device_properties(0) if torch.cuda.is_available() else None; print(json.dumps({"torch": torch.__version__, "cuda": torch.version.cuda, "transformers": transformers.__version__, "peft": peft.__version__, "gpu": p.name if p else None, "gpu_memory_gib": round(p.total_memory / 2**30, 1) if p else None}))',
    ],
    { encoding: "utf8" },
  );
  let stack: Record<string, unknown> = { error: `the Python version probe failed: ${(probe.stderr ?? "").trim().split("\n").at(-1)}` };
  try {
    if (probe.status === 0) stack = JSON.parse(probe.stdout.trim().split("\n").at(-1)!);
  } catch {}
  const git = (...args: string[]) => spawnSync("git", args, { cwd: ROOT, encoding: "utf8" });
  const commit = git("rev-parse", "--short", "HEAD").stdout?.trim() || null;
  const dirty = git("diff", "--quiet", "HEAD").status === 1;
  return {
    kind: "versions",
    date: new Date().toISOString().slice(0, 10),
    utc: new Date().toISOString().replace(/\.\d+Z$/, "Z"),
    ...stack,
    node: process.version,
    libtorch: torch.buildInfo().torchVersion,
    commit: commit && dirty ? `${commit}-dirty` : commit,
    targets: TARGETS,
    lora_rank: LORA.rank,
  };
}

async function run(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      out: { type: "string", default: process.env.OUT || path.join(ROOT, "bench/results") },
      models: { type: "string", default: MODELS.map((m) => m.size).join(",") },
      timeout: { type: "string", default: "300" },
      python: { type: "string", default: "python3" },
      "peft-script": { type: "string", default: path.join(ROOT, "scripts/bench_peft.py") },
      "svdlora-worker": { type: "string", default: fileURLToPath(import.meta.url) },
    },
  });
  const sizes = values.models.split(",");
  const unknown = sizes.filter((s) => !MODELS.some((m) => m.size === s));
  if (unknown.length) throw new Error(`--models ${unknown.join(",")}: use ${MODELS.map((m) => m.size).join(",")}`);
  const points = scalingPlan(sizes);
  const timeoutS = Number(values.timeout);
  console.error(describePlan(points));
  fs.mkdirSync(values.out, { recursive: true });
  const stamp = new Date().toISOString().replace(/[-:]/g, "").replace(/\..*/, "").replace("T", "-");
  const jsonl = path.join(values.out, `scaling-${stamp}.jsonl`);
  const write = (line: Record<string, unknown>) => fs.appendFileSync(jsonl, `${JSON.stringify(line)}\n`);
  write(versions(values.python));
  const work = fs.mkdtempSync(path.join(os.tmpdir(), "svdlora-scaling-"));
  const t0 = performance.now();
  try {
    const samplesFile = path.join(work, "samples.json");
    const count = Math.max(...points.map((p) => samplesFor(p.maxSteps - WARMUP_STEPS, p.batchSize)));
    fs.writeFileSync(samplesFile, JSON.stringify(benchSamples(count, VOCAB)));
    for (const size of sizes) {
      const mine = points.filter((p) => p.size === size);
      const config = configPath(size);
      // [side, grad_ckpt] of every row a process owes, and the command that makes them
      const sides: { rows: [string, boolean | null][]; command: string; args: string[] }[] = [
        {
          rows: [["svdlora", null]],
          command: process.execPath,
          args: [
            values["svdlora-worker"],
            "svdlora",
            "--config",
            config,
            "--samples",
            samplesFile,
            "--points",
            mine.map((p) => `${p.batchSize}:${p.maxSteps}`).join(","),
          ],
        },
        {
          rows: [
            ["peft", true],
            ["peft", false],
          ],
          command: values.python,
          args: [
            values["peft-script"],
            ...["--samples", samplesFile, "--model-config", config, "--targets", TARGETS.join(",")],
            ...[
              "--rank",
              `${LORA.rank}`,
              "--alpha",
              `${LORA.alpha}`,
              "--lr",
              `${OPTIMIZER.lr}`,
              "--weight-decay",
              `${OPTIMIZER.weightDecay}`,
            ],
            ...["--batch-size", mine.map((p) => p.batchSize).join(","), "--max-steps", mine.map((p) => p.maxSteps).join(",")],
            ...["--gradient-checkpointing", "on,off", "--device", "cuda"],
          ],
        },
      ];
      for (const side of sides) {
        console.error(
          `scaling: ${size}: ${path.basename(side.command)} ${side.args
            .slice(0, 2)
            .map((a) => path.basename(a))
            .join(" ")} …`,
        );
        const seen = new Set<string>();
        const key = (batch: unknown, s: unknown, gc: unknown) => `${batch}/${s}/${gc ?? ""}`;
        const r = await runProcess(side.command, side.args, timeoutS, (line) => {
          const p = mine.find((q) => q.batchSize === line.batch_size);
          if (!p) return;
          const gc = line.side === "peft" ? line.grad_ckpt : null;
          seen.add(key(p.batchSize, line.side, gc));
          write({ kind: "point", size, target_tokens: p.targetTokens, ...line, grad_ckpt: gc });
        });
        const why = r.timedOut ? `timed out after ${timeoutS} s` : `exit ${r.code}${r.lastError ? `: ${r.lastError}` : ""}`;
        for (const p of mine)
          for (const [s, gc] of side.rows)
            if (!seen.has(key(p.batchSize, s, gc)))
              write({
                kind: "point",
                size,
                target_tokens: p.targetTokens,
                side: s,
                grad_ckpt: gc,
                batch_size: p.batchSize,
                error: `not measured: ${why}`,
              });
      }
    }
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
  console.error(`scaling: all processes took ${((performance.now() - t0) / 1000).toFixed(0)} s; lines in ${jsonl}`);
  const written = await writeScalingReport(jsonl, values.out);
  console.log(fs.readFileSync(written.markdown, "utf8"));
  console.error(`scaling: ${written.markdown}\nscaling: ${written.figure}`);
}

export function describePlan(points: Point[]): string {
  const lines = points.map(
    (p) =>
      `  ${p.size.padEnd(4)} ~${String(p.targetTokens).padStart(5)} tokens/step: batches of ${p.batchSize} samples, ${p.maxSteps - WARMUP_STEPS} steps timed after ${WARMUP_STEPS}`,
  );
  const minutes = estimateSeconds(points) / 60;
  return [
    `scaling: ${points.length} points × svdlora, PEFT with and without checkpointing:`,
    ...lines,
    `scaling: about ${minutes.toFixed(1)} min of GPU time on an H200 (a rough estimate)`,
  ].join("\n");
}

const isMain = process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url);
if (isMain) {
  const [mode, ...rest] = process.argv.slice(2);
  if (mode === "plan") console.log(describePlan(scalingPlan()));
  else if (mode === "run") await run(rest);
  else if (mode === "svdlora") svdloraWorker(rest);
  else {
    console.error("usage: node dist/bench/scaling.js plan | run [--out DIR] [--models …] | svdlora --config F --samples F --points B:S,…");
    process.exitCode = 2;
  }
}
