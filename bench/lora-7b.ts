// Our side of the GPU LoRA benchmark (bench/run-lora7b.sh): a model of bench/configs/'s
// architectures with random bf16 weights (the Qwen2.5-Math-7B one by default) or a checkpoint,
// LoRA r = 16, α = 16, batch 4 in file order, AdamW lr 2e-4 (weight decay 0.01, no clipping), on
// the samples file scripts/bench_peft.py reads too. It runs the training step `svdlora train`
// runs (src/train/step.ts), with the same defaults on CUDA: packed flash attention, chunked loss,
// gradient checkpointing only where --max-memory-gib needs it, fused AdamW; MFU as src/train/bench.ts
// counts it (4N FLOPs per real token).
// With --gpus N, one process per GPU (data-parallel as `svdlora train --gpus N`): each takes 4
// samples of every global batch of 4·N, and the figures are for all GPUs together; the gradients'
// all-reduce overlaps backward unless --no-overlap. Each timed step's host phases on every rank
// (src/train/step.ts: hostMs), its tokens and recomputed layers are gathered by rank 0, which
// prints them with a summary (`breakdown`) beside the throughput, so that one run tells where a
// data-parallel step's time goes.
//   node dist/bench/lora-7b.js SAMPLES.json [TARGETS] [--max-memory-gib G] [--checkpointing auto|on|off]
//        [--no-packing] [--model-config FILE] [--layers N] [--model-dir DIR] [--save-adapter DIR] [--steps N] [--epochs E] [--gpus N]
//        [--batch-size B] [--no-overlap] [--device cuda|cpu] [--trace FILE] [--length-multiple N]
// --length-multiple: packed rows padded to a multiple of N tokens (train/batches.ts
// PACKED_LENGTH_MULTIPLE by default; 1: not padded).
// --trace FILE: after the timed steps, one more step (the first batch again) under libtorch's
// profiler, written to FILE as Chrome trace JSON (bench/trace-summary.ts reads it); not timed.
// --device cpu (with --model-dir models/tiny-prob and token ids below its vocabulary) is a smoke
// test of this script and its multi-process path on a machine without a GPU.
// --batch-size is per process (default 4): the global batch is B × the number of processes.
import fs from "node:fs";
import { parseArgs } from "node:util";
import { parseModelConfig } from "../src/hf/config.js";
import { MATH_7B_CONFIG, readConfigFile } from "./configs.js";
import { saveAdapter } from "../src/hf/peft.js";
import { loadCausalLM, randomCausalLM } from "../src/model/loader.js";
import { addLora, adapterConfigFor, loraParameters, loraWeights } from "../src/model/lora.js";
import * as torch from "../src/torch/index.js";
import { knownPeakTflops, matmulWeights, mfuPercent } from "../src/train/bench.js";
import { broadcastFromMain, joinProcessGroup, shareOf } from "../src/train/data-parallel.js";
import { launchPlan, launchWorkers } from "../src/cli/launch.js";
import { AdamW } from "../src/train/optim.js";
import { PACKED_LENGTH_MULTIPLE, usesFlashPacking } from "../src/train/batches.js";
import { optimizerStep, rankMicroBatch } from "../src/train/step.js";
import type { GradientCheckpointing } from "../src/train/settings.js";
import { recomputePolicy } from "../src/train/trainer.js";

torch.tuneHostAllocator(); // as the svdlora command does

const { values: flags, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    "max-memory-gib": { type: "string" },
    checkpointing: { type: "string", default: "auto" },
    "no-packing": { type: "boolean", default: false },
    "model-config": { type: "string", default: MATH_7B_CONFIG },
    layers: { type: "string" },
    "model-dir": { type: "string" },
    "save-adapter": { type: "string" },
    steps: { type: "string" },
    epochs: { type: "string", default: "2" },
    "batch-size": { type: "string", default: "4" },
    gpus: { type: "string" },
    "no-overlap": { type: "boolean", default: false },
    device: { type: "string", default: "cuda" },
    trace: { type: "string" },
    "length-multiple": { type: "string" },
  },
});
if (flags.trace && flags.gpus !== undefined) throw new Error("--trace profiles one process: leave out --gpus");
const plan = launchPlan(flags.gpus === undefined ? null : Number(flags.gpus));
if (plan) {
  await launchWorkers(plan.gpus, process.argv.slice(2), { output: "main" });
  process.exit(0);
}
const dp = joinProcessGroup(flags.device);
const cuda = dp.device.startsWith("cuda");
const synchronize = () => cuda && torch.cuda.synchronize();
const [samplesFile, targetsArg = "q_proj,v_proj"] = positionals;
if (!samplesFile) throw new Error("usage: node dist/bench/lora-7b.js SAMPLES.json [TARGETS] [--max-memory-gib G] …");
const samples: number[][] = JSON.parse(fs.readFileSync(samplesFile, "utf8"));
const targets = targetsArg.split(",");
const budgetGib = flags["max-memory-gib"] === undefined ? undefined : Number(flags["max-memory-gib"]);
const packing = !flags["no-packing"];
const maxSteps = flags.steps === undefined ? Infinity : Number(flags.steps);
const batch = Number(flags["batch-size"]);
const lengthMultiple = flags["length-multiple"] === undefined ? undefined : Number(flags["length-multiple"]);

const t0 = performance.now();
torch.manualSeed(0);
const config = readConfigFile(flags["model-config"]!);
if (flags.layers !== undefined) config.num_hidden_layers = Number(flags.layers);
const model = flags["model-dir"]
  ? loadCausalLM(flags["model-dir"], { dtype: "bfloat16", device: dp.device })
  : randomCausalLM(parseModelConfig(config), { dtype: "bfloat16", device: dp.device });
synchronize();
console.error(`model ready in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
const lora = { rank: 16, alpha: 16, targets };
const loras = addLora(model, lora, "random");
if (flags["save-adapter"]) {
  const w = loraWeights(loras);
  saveAdapter(flags["save-adapter"], adapterConfigFor(lora, flags["model-dir"] ?? "random-qwen2.5-math-7b"), w);
  torch.dispose([...w.values()]);
}
const optimizer = new AdamW(loraParameters(loras), { lr: 2e-4, weightDecay: 0.01 });
broadcastFromMain(loraParameters(loras), dp);
const recompute = recomputePolicy({
  device: dp.device,
  gradientCheckpointing: flags.checkpointing as GradientCheckpointing,
  maxMemory: budgetGib,
});
const encoded = samples.map((ids) => ({ ids, lossMask: ids.map(() => true), truncated: false }));
const batchOptions = { padId: 151643, device: dp.device, packing, dtype: model.dtype, lengthMultiple };

if (cuda) torch.cuda.resetPeakMemory();
let steps = 0,
  real = 0,
  padded = 0,
  timed = 0,
  recomputed = 0,
  start = 0;
const losses: number[] = [];
// One row per timed step: STEP_FIELDS, as this rank saw it.
const STEP_FIELDS = ["start", "end", "backward", "sum", "read", "update", "tokens", "recomputed", "cpu"] as const;
const rows: number[][] = [];
const now = () => performance.timeOrigin + performance.now(); // comparable across processes on one machine
outer: for (let epoch = 0; epoch < Number(flags.epochs); epoch++)
  for (let i = 0; i < encoded.length; i += batch * dp.worldSize) {
    if (steps >= maxSteps) break outer;
    if (epoch === 0 && steps === 3) {
      synchronize();
      start = performance.now();
      real = 0;
      padded = 0;
      timed = 0;
      recomputed = 0;
      rows.length = 0;
    }
    const t0 = now();
    const cpu0 = process.cpuUsage();
    const global = encoded.slice(i, i + batch * dp.worldSize);
    const mine = shareOf(global, dp, (s) => s.ids.length).reduce((n, s) => n + s.ids.length, 0);
    const micro = rankMicroBatch(global, 1, dp, batchOptions);
    const r = optimizerStep(model, optimizer, [micro], { recompute, lr: 2e-4, dataParallel: dp, overlap: !flags["no-overlap"] });
    const cpu = process.cpuUsage(cpu0);
    rows.push([
      t0,
      now(),
      r.hostMs.backward,
      r.hostMs.sum,
      r.hostMs.read,
      r.hostMs.update,
      mine,
      r.recomputed,
      (cpu.user + cpu.system) / 1000,
    ]);
    losses.push(r.loss);
    real += r.tokens;
    padded += packing ? r.tokens : global.length * Math.max(...global.map((s) => s.ids.length));
    recomputed += r.recomputed;
    steps++;
    timed++;
  }
synchronize();
const seconds = (performance.now() - start) / 1000;
if (flags.trace) {
  const micro = rankMicroBatch(encoded.slice(0, batch * dp.worldSize), 1, dp, batchOptions);
  torch.profile(flags.trace, { cuda }, () => {
    optimizerStep(model, optimizer, [micro], { recompute, lr: 2e-4, dataParallel: dp });
    synchronize();
  });
}
// Every rank's rows, to rank 0: each fills its own slot of one all-reduce (after the timing).
const perRank = gatherRows(rows);
if (!dp.isMain) process.exit(0);
const gpu = cuda ? torch.cuda.devices()[0].name : "cpu";
const peak = cuda ? knownPeakTflops(gpu, "bfloat16") : null;
console.log(
  JSON.stringify({
    side: "svdlora",
    gpus: dp.worldSize,
    batch_per_gpu: batch,
    targets,
    layers: model.config.numHiddenLayers,
    budget_gib: budgetGib ?? null,
    checkpointing: flags.checkpointing,
    packing,
    // packed rows are padded only for flash attention (CUDA, 16-bit)
    length_multiple: packing && usesFlashPacking(dp.device, model.dtype) ? (lengthMultiple ?? PACKED_LENGTH_MULTIPLE) : null,
    overlap: dp.worldSize > 1 ? !flags["no-overlap"] : null,
    timed_steps: timed,
    seconds: Number(seconds.toFixed(2)),
    real_tokens_per_s: Math.round(real / seconds),
    padded_tokens_per_s: Math.round(padded / seconds),
    peak_tflops: peak,
    mfu_4N_pct: peak === null ? null : Number((mfuPercent(real / seconds, matmulWeights(model), peak * 1e12) / dp.worldSize).toFixed(1)),
    recomputed_layers_per_step: Number((recomputed / timed).toFixed(1)),
    peak_mem_gib: cuda ? Number((torch.cuda.memory().peakAllocated / 2 ** 30).toFixed(2)) : null,
    gpu,
    first_losses: losses.slice(0, 20).map((l) => Number(l.toFixed(5))),
    losses: losses.map((l) => Number(l.toFixed(5))),
    breakdown: breakdown(perRank),
    step_fields: STEP_FIELDS,
    steps_by_rank: perRank.map((rs) => rs.map((row) => row.map((v, k) => Number(v.toFixed(k < 2 ? 2 : 3))))),
  }),
);

function gatherRows(mine: number[][]): number[][][] {
  if (dp.worldSize === 1) return [mine];
  const width = mine.length * STEP_FIELDS.length;
  const all = new Array<number>(dp.worldSize * width).fill(0);
  mine.flat().forEach((v, k) => {
    all[dp.rank * width + k] = v;
  });
  const summed = torch.distributed.allReduceNumbers(all, "sum");
  return Array.from({ length: dp.worldSize }, (_, r) =>
    Array.from({ length: mine.length }, (_, i) =>
      summed.slice(r * width + i * STEP_FIELDS.length, r * width + (i + 1) * STEP_FIELDS.length),
    ),
  );
}

/**
 * Means over the timed steps, per rank: wall ms per step (start to next start), host ms in each
 * phase (backward: queueing forward and backward, batch made included; sum: waiting for the
 * gradients' all-reduce, i.e. for this GPU to finish backward and for the other ranks; read:
 * reading the step's numbers; update: queueing the optimizer), tokens and recomputed layers, CPU
 * ms of the process. Across ranks, per step: how far apart the ranks reach the all-reduce
 * (arrival spread: the slowest host's lag), how often each rank arrives last, and the token
 * imbalance (most tokens on a rank / mean).
 */
function breakdown(byRank: number[][][]) {
  const f = Object.fromEntries(STEP_FIELDS.map((name, k) => [name, k])) as Record<(typeof STEP_FIELDS)[number], number>;
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
  const round = (x: number) => Number(x.toFixed(2));
  const per_rank = byRank.map((rs, rank) => {
    const wall = rs.map((row, i) => (i + 1 < rs.length ? rs[i + 1][f.start] : row[f.end]) - row[f.start]);
    const m = (name: (typeof STEP_FIELDS)[number]) => round(mean(rs.map((row) => row[f[name]])));
    return {
      rank,
      step_ms: round(mean(wall)),
      backward_ms: m("backward"),
      sum_ms: m("sum"),
      read_ms: m("read"),
      update_ms: m("update"),
      between_ms: round(mean(rs.map((row, i) => (i + 1 < rs.length ? rs[i + 1][f.start] - row[f.end] : 0)))),
      cpu_ms: m("cpu"),
      tokens: m("tokens"),
      recomputed: m("recomputed"),
    };
  });
  const steps = byRank[0].map((_, i) => byRank.map((rs) => rs[i]));
  const arrivals = steps.map((ranks) => ranks.map((row) => row[f.start] + row[f.backward]));
  const lastToArrive = byRank.map((_, r) => arrivals.filter((a) => a.indexOf(Math.max(...a)) === r).length);
  return {
    per_rank,
    arrival_spread_ms: round(mean(arrivals.map((a) => Math.max(...a) - Math.min(...a)))),
    last_to_arrive: lastToArrive,
    token_imbalance: Number(
      mean(steps.map((ranks) => Math.max(...ranks.map((row) => row[f.tokens])) / mean(ranks.map((row) => row[f.tokens])))).toFixed(3),
    ),
  };
}
