// `svdlora bench`: how fast LoRA training runs on this machine with these settings, and beside
// the PEFT reference. A synthetic workload (train/bench.ts: random token ids, samples of 150–600
// tokens), or a data set's samples formatted as `svdlora train` formats them, sized for the steps
// asked; svdlora's training step timed on it in this process; then,
// when the chosen Python can import peft, scripts/bench_peft.py on the same samples file, cut into
// the same steps, in a child process (after this process has given its GPU memory back).
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { loadDataset } from "../data/dataset.js";
import { formatSamples } from "../data/format.js";
import { targetNames } from "../hf/projections.js";
import { loadTokenizer } from "../hf/tokenizer.js";
import { loadCausalLM } from "../model/loader.js";
import { addLora, loraParameters } from "../model/lora.js";
import { PACKAGE_ROOT } from "../paths.js";
import * as torch from "../torch/index.js";
import {
  LORA_FLOPS_PER_WEIGHT,
  type Measurement,
  WARMUP_STEPS,
  benchSamples,
  benchSteps,
  knownPeakTflops,
  matmulWeights,
  measureTraining,
  mfuPercent,
  samplesFor,
} from "../train/bench.js";
import { InterruptedError, type TrainingEvents } from "../train/events.js";
import { AdamW } from "../train/optim.js";
import { TRAINING } from "../train/settings.js";
import { defaultDtype, recomputePolicy } from "../train/trainer.js";
import { checkValues, defaults } from "../util/settings.js";
import { BENCH, type BenchSettings } from "./settings.js";

/** The PEFT script, shipped with svdlora. */
export const PEFT_SCRIPT = path.join(PACKAGE_ROOT, "scripts", "bench_peft.py");

/** AdamW as the PEFT script runs it (torch's default weight decay); the learning rate is svdlora train's default. */
const OPTIMIZER = { lr: TRAINING.learningRate.default, weightDecay: 0.01 };

export interface SideResult {
  realTokensPerSecond: number;
  paddedTokensPerSecond: number;
  tokensPerStep: number;
  peakMemoryGiB: number;
  memoryKind: Measurement["memoryKind"];
  /** Model FLOPs utilization in percent (LORA_FLOPS_PER_WEIGHT · N per real token); null without a peak. */
  mfuPercent: number | null;
  timedSteps: number;
  seconds: number;
}

export interface BenchResult {
  model: { dir: string; layers: number; matmulWeights: number };
  device: string;
  /** The GPU's name, or "cpu". */
  deviceName: string;
  dtype: string;
  lora: { rank: number; alpha: number; targets: string[] };
  /** The data set the samples came from; null: the synthetic workload. */
  trainData: string | null;
  /** Mean real tokens per sample of the workload. */
  meanSampleTokens: number;
  batchSize: number;
  warmupSteps: number;
  steps: number;
  /** FLOPs per real token the MFU counts: "4N", N = matmulWeights. */
  flopsPerToken: string;
  peakTflops: number | null;
  /** Where peakTflops came from. */
  peakSource: "given" | "known card" | null;
  svdlora: SideResult & { gradientCheckpointing: string; recomputedLayersPerStep: number };
  /** PEFT's figures, or why there are none: skipped (Python has no peft) or failed; null when not asked for. */
  peft:
    | (SideResult & { gradientCheckpointing: boolean; versions: Record<string, string> })
    | { skipped: string }
    | { error: string }
    | null;
  /** svdlora's real tokens/s over PEFT's, when both ran. */
  ratio: number | null;
}

export interface BenchOptions {
  signal?: AbortSignal;
  events?: TrainingEvents;
  /** Lines about what is happening that are not progress (the PEFT child's start). */
  log?: (line: string) => void;
}

const GIB = 2 ** 30;

/** Settings with defaults, refused when bad or when one would have no effect. */
function resolveBench(given: Partial<BenchSettings>): BenchSettings {
  checkValues(BENCH, given);
  const s = { ...defaults(BENCH), ...given } as BenchSettings;
  if (s.maxMemory !== undefined && !s.device.startsWith("cuda"))
    throw new Error(`\`maxMemory\` is a GPU memory budget: it has no effect with \`device\` ${s.device}; drop it`);
  if (s.maxMemory !== undefined && s.gradientCheckpointing !== "auto")
    throw new Error(
      `\`maxMemory\` decides how many layers \`gradientCheckpointing\` auto recomputes: with ${s.gradientCheckpointing} it has no effect; drop one of them`,
    );
  if (s.trainData === undefined)
    for (const key of ["maxLength", "systemPrompt"] as const)
      if (given[key] !== undefined)
        throw new Error(`\`${key}\` formats the samples of \`trainData\`, which is not given: give it, or drop \`${key}\``);
  if (!s.peft)
    for (const key of ["peftCheckpointing", "python"] as const)
      if (given[key] !== undefined) throw new Error(`\`${key}\` sets up the PEFT reference, which is turned off: drop one of them`);
  return s;
}

/** Runs the benchmark; see the file comment. */
export async function benchRun(given: Partial<BenchSettings>, o: BenchOptions = {}): Promise<BenchResult> {
  const s = resolveBench(given);
  const dtype = s.dtype ?? defaultDtype(s.device);
  const cuda = s.device.startsWith("cuda");
  const targets = targetNames(s.targetModules);
  const deviceName = cuda ? torch.cuda.devices()[torch.cuda.index(s.device)].name : "cpu";
  const known = cuda ? knownPeakTflops(deviceName, dtype) : null;
  const peakTflops = s.peakTflops ?? known;
  const count = samplesFor(s.steps, s.batchSize);
  const steps = benchSteps(count, s.batchSize);

  // The data set's samples are formatted (and any problem with them reported) before the model loads.
  const data = s.trainData === undefined ? null : await dataSamples(s, count);
  o.events?.phase?.("loading", s.baseModel);
  torch.manualSeed(s.seed);
  const model = loadCausalLM(s.baseModel, { dtype, device: s.device });
  const N = matmulWeights(model);
  const samples = data ?? benchSamples(count, model.config.vocabSize, { seed: s.seed, maxLength: model.config.maxPositionEmbeddings });
  let measured: Measurement;
  try {
    const loras = addLora(model, { rank: s.loraRank, alpha: s.loraAlpha, targets }, "random");
    const optimizer = new AdamW(loraParameters(loras), OPTIMIZER);
    try {
      measured = measureTraining(model, optimizer, samples, {
        steps,
        padId: model.config.padTokenId ?? 0,
        packing: cuda,
        recompute: recomputePolicy({ device: s.device, gradientCheckpointing: s.gradientCheckpointing, maxMemory: s.maxMemory }),
        lr: OPTIMIZER.lr,
        events: o.events,
        signal: o.signal,
        label: "bench svdlora",
      });
    } finally {
      optimizer.dispose();
      torch.dispose(loraParameters(loras));
    }
  } finally {
    torch.dispose([...model.namedWeights().values()]);
    if (cuda) torch.cuda.emptyCache(); // the card is the PEFT child's now
  }
  const svdlora = {
    ...sideResult(measured, N, peakTflops),
    gradientCheckpointing: s.gradientCheckpointing,
    recomputedLayersPerStep: measured.recomputedLayersPerStep,
  };

  let peft: BenchResult["peft"] = null;
  if (s.peft) {
    const missing = peftMissing(s.python);
    peft = missing ? { skipped: missing } : await runPeft({ ...s, dtype }, samples, targets, { N, peakTflops, maxSteps: steps.length }, o);
  }
  return {
    model: { dir: s.baseModel, layers: model.config.numHiddenLayers, matmulWeights: N },
    device: s.device,
    deviceName,
    dtype,
    lora: { rank: s.loraRank, alpha: s.loraAlpha, targets },
    trainData: s.trainData ?? null,
    meanSampleTokens: samples.reduce((n, ids) => n + ids.length, 0) / samples.length,
    batchSize: s.batchSize,
    warmupSteps: WARMUP_STEPS,
    steps: s.steps,
    flopsPerToken: `${LORA_FLOPS_PER_WEIGHT}N`,
    peakTflops,
    peakSource: s.peakTflops !== undefined ? "given" : known !== null ? "known card" : null,
    svdlora,
    peft,
    ratio: peft && "realTokensPerSecond" in peft ? svdlora.realTokensPerSecond / peft.realTokensPerSecond : null,
  };
}

/** `count` samples of the data set as `svdlora train` formats them (its tokenizer, system prompt and maximum length), repeated in file order. */
async function dataSamples(s: BenchSettings, count: number): Promise<number[][]> {
  const file = s.trainData!;
  const tokenizer = await loadTokenizer(s.baseModel);
  const { encoded } = formatSamples(loadDataset(file), tokenizer, { systemPrompt: s.systemPrompt ?? undefined, maxLength: s.maxLength });
  if (encoded.length === 0) throw new Error(`${file}: no sample left after formatting (is \`maxLength\` ${s.maxLength} too small?)`);
  return Array.from({ length: count }, (_, i) => encoded[i % encoded.length].ids);
}

function sideResult(
  m: Pick<
    Measurement,
    "realTokensPerSecond" | "paddedTokensPerSecond" | "tokensPerStep" | "peakMemoryBytes" | "memoryKind" | "timedSteps" | "seconds"
  >,
  N: number,
  peakTflops: number | null,
): SideResult {
  return {
    realTokensPerSecond: m.realTokensPerSecond,
    paddedTokensPerSecond: m.paddedTokensPerSecond,
    tokensPerStep: m.tokensPerStep,
    peakMemoryGiB: m.peakMemoryBytes / GIB,
    memoryKind: m.memoryKind,
    mfuPercent: peakTflops === null ? null : mfuPercent(m.realTokensPerSecond, N, peakTflops * 1e12),
    timedSteps: m.timedSteps,
    seconds: m.seconds,
  };
}

/** Why `python` cannot run the PEFT reference (one line), or null when it can import torch, transformers and peft. */
export function peftMissing(python: string): string | null {
  const r = spawnSync(python, ["-c", "import torch, transformers, peft"], { encoding: "utf8", timeout: 120_000 });
  if (r.error && (r.error as NodeJS.ErrnoException).code === "ENOENT")
    return `${python} was not found: point \`python\` at a Python with torch, transformers and peft`;
  if (r.status === 0) return null;
  const why = lastLine(r.stderr) || (r.error ? r.error.message : `exit ${r.status ?? r.signal}`);
  return `${python} cannot import torch, transformers and peft (${why}): install them there, or point \`python\` at a Python that has them`;
}

const lastLine = (text: string | null | undefined): string =>
  (text ?? "")
    .split("\n")
    .map((l) => l.trim())
    .filter(Boolean)
    .at(-1) ?? "";

/** scripts/bench_peft.py on the same samples and steps, in a child process; its failure is a result, not an error. */
async function runPeft(
  s: BenchSettings,
  samples: number[][],
  targets: string[],
  m: { N: number; peakTflops: number | null; maxSteps: number },
  o: BenchOptions,
): Promise<BenchResult["peft"]> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "svdlora-bench-"));
  try {
    const file = path.join(dir, "samples.json");
    fs.writeFileSync(file, JSON.stringify(samples));
    const args = [
      PEFT_SCRIPT,
      ...["--samples", file, "--model-dir", s.baseModel, "--targets", targets.join(",")],
      ...["--rank", `${s.loraRank}`, "--alpha", `${s.loraAlpha}`, "--batch-size", `${s.batchSize}`, "--max-steps", `${m.maxSteps}`],
      ...["--gradient-checkpointing", s.peftCheckpointing, "--device", s.device, "--dtype", `${s.dtype}`],
      ...["--lr", `${OPTIMIZER.lr}`, "--weight-decay", `${OPTIMIZER.weightDecay}`, "--seed", `${s.seed}`],
    ];
    o.log?.(`PEFT reference: ${s.python} ${args.map((a) => (/[\s"']/.test(a) ? JSON.stringify(a) : a)).join(" ")}`);
    o.events?.phase?.("training", "PEFT reference");
    const run = await runChild(s.python, args, o.signal);
    const line = run.stdout
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .at(-1);
    let r: Record<string, unknown> | null = null;
    try {
      r = line ? (JSON.parse(line) as Record<string, unknown>) : null;
    } catch {
      r = null;
    }
    if (run.code !== 0 || !r)
      return { error: `${s.python} scripts/bench_peft.py failed (exit ${run.code}): ${lastLine(run.stderr) || "no output"}` };
    if (typeof r.error === "string") return { error: r.error };
    const num = (key: string) => {
      const v = r[key];
      if (typeof v !== "number" || !Number.isFinite(v))
        throw new Error(`scripts/bench_peft.py: its result has no number \`${key}\`: ${line}`);
      return v;
    };
    return {
      ...sideResult(
        {
          realTokensPerSecond: num("real_tokens_per_s"),
          paddedTokensPerSecond: num("padded_tokens_per_s"),
          tokensPerStep: num("tokens_per_step"),
          peakMemoryBytes: num("peak_mem_gib") * GIB,
          memoryKind: r.memory_kind === "cuda allocated" ? "cuda allocated" : "host resident",
          timedSteps: num("timed_steps"),
          seconds: num("seconds"),
        },
        m.N,
        m.peakTflops,
      ),
      gradientCheckpointing: r.grad_ckpt === true,
      versions: (r.versions ?? {}) as Record<string, string>,
    };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Runs a command to its end, stopped (and InterruptedError) when the signal fires. */
function runChild(command: string, args: string[], signal?: AbortSignal): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr = (stderr + d.toString()).slice(-20_000)));
    const stop = () => child.kill("SIGTERM");
    signal?.addEventListener("abort", stop, { once: true });
    child.on("error", (e) => {
      signal?.removeEventListener("abort", stop);
      reject(e);
    });
    child.on("close", (code, sig) => {
      signal?.removeEventListener("abort", stop);
      if (signal?.aborted) reject(new InterruptedError("the benchmark was stopped while the PEFT reference ran"));
      else resolve({ code: code ?? (sig ? 128 : 1), stdout, stderr });
    });
  });
}
