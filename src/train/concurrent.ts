// Several LoRA runs trained together over one copy of the base model (docs/concurrent.md): every
// step stacks the runs' micro-batches through the shared frozen projections as one larger GEMM,
// each run's factors applied to its own rows. Each run keeps what trainLora gives it alone — its
// data, seed and batch order, optimizer, schedule, clipping, generator, log, checkpoints, adapter
// and summary — and writes the same folder. Runs go in passes of at most `concurrentArms`; the
// base model is loaded once for all passes (an init that rewrites W to W − s·B₀A₀, PiSSA and its
// kin, is carried as a correction on the run's rows, so W is never changed). Runs whose adapter
// cannot share W (canShareBase: DoRA, LoftQ, the inits with a calibration pass) train alone.
import path from "node:path";
import { ArmGenerators, type ArmAdapter } from "../model/arms.js";
import { loadCausalLM } from "../model/loader.js";
import { isTargetModule } from "../hf/peft.js";
import { initStatistic, moduleInit, parseInitMethod } from "../lowrank/inits/index.js";
import {
  type LoRA,
  type LoraInit,
  type LoraSettings,
  type ModuleInit,
  adapterConfigFor,
  armAdapters,
  loraFromAdapter,
} from "../model/lora.js";
import type { CausalLM } from "../model/qwen2.js";
import * as torch from "../torch/index.js";
import { type RecomputePolicy, measureLayerBytesPerToken } from "./backprop.js";
import { type BatchOptions, epochOrder, microBatchRanges } from "./batches.js";
import { singleProcess } from "./data-parallel.js";
import { InterruptedError, type TrainingEvents } from "./events.js";
import { type LoopOutcome, trainLoops } from "./loop.js";
import { LORA_TRAINING, type LoraTrainingSettings } from "./settings.js";
import {
  type Data,
  type Preparation,
  type TrainResult,
  accuracyQuestions,
  finishLoraRun,
  loadData,
  loopRun,
  loraParams,
  loraRun,
  padIdOf,
  recomputePolicy,
  svdFactorsLora,
} from "./trainer.js";

/** One run of a concurrent training: what trainLora takes. */
export interface RunSpec {
  settings: Partial<LoraTrainingSettings>;
  /** The folder the run writes into (adapter/, training_log.csv, summary.json); its checkpoints go to checkpointDir. */
  dir: string;
  checkpointDir: string;
  /** Names the run in progress output and messages (default "train <init>"). */
  label?: string;
  events?: TrainingEvents;
}

export interface ConcurrentOptions {
  /** Aborting stops every run of the pass at the same step, each saving its checkpoint (InterruptedError). */
  signal?: AbortSignal;
  /** Runs per pass: a number, or "auto" (see trainsTogether); all of them in one pass when not given. */
  concurrentArms?: number | "auto";
  /** Called when a run's folder is complete, before the next pass starts (a caller may move its files into place). */
  onRunDone?: (index: number, result: TrainResult) => void | Promise<void>;
  /** Called when a run stops by itself (its loss or gradient not finite), before the next pass; it is still in RunsFailedError. */
  onRunFailed?: (index: number, error: Error) => void | Promise<void>;
  /** Notes about the passes (how many runs share each). */
  note?: (line: string) => void;
}

/** Some runs stopped on their own (a non-finite loss); the others finished and were handed to onRunDone. */
export class RunsFailedError extends Error {
  override name = "RunsFailedError";
  constructor(readonly failures: { index: number; label: string; error: Error }[]) {
    super(failures.map((f) => `${f.label}: ${f.error.message}`).join("\n"));
  }
}

/**
 * Whether a run of these settings can be an arm over a shared base: its init must leave W as it is
 * or take W − s·B₀A₀ (carried as a correction), without a calibration pass, and it must not be
 * DoRA (whose magnitude is a norm of the arm's own W). The others train alone (trainLora).
 */
export function canShareBase(s: { init?: string; dora?: boolean }): boolean {
  const init = s.init ?? "random";
  if (s.dora) return false;
  if (init === "random" || init === "gaussian" || init === "svd") return true;
  const method = parseInitMethod(init);
  return initStatistic(method) === "weight" && method.name !== "loftq";
}

/**
 * Whether `concurrentArms` trains runs together on this device. `auto` does so only on a GPU, as
 * many as `maxMemory` holds; on the CPU runs trained together measured no faster than one after
 * another (docs/concurrent.md), so `auto` trains them one at a time there.
 */
export function trainsTogether(concurrentArms: number | "auto", device: string): boolean {
  return concurrentArms === "auto" ? device.startsWith("cuda") : concurrentArms > 1;
}

/**
 * Runs trained together share every step's time: each is charged the pass's wall time in
 * proportion to the tokens it trained, so the runs' seconds add up to the pass's and compare
 * with a run trained alone (whose seconds are all its own).
 */
export function chargeShares(outcomes: LoopOutcome[]): void {
  const done = outcomes.flatMap((o) => (o.ok ? [o.result] : []));
  const tokens = done.reduce((n, r) => n + r.tokens, 0);
  const wall = Math.max(...done.map((r) => r.seconds));
  if (done.length > 1 && tokens > 0) for (const r of done) r.seconds = (wall * r.tokens) / tokens;
}

// The settings every run of a concurrent training must share, because the model and its batches do.
const SHARED = ["baseModel", "device", "dtype", "packing", "gradientCheckpointing", "maxMemory", "gpus"] as const;

interface Prepared {
  spec: RunSpec;
  s: LoraTrainingSettings;
  lora: LoraSettings;
  data: Data;
  questions: ReturnType<typeof accuracyQuestions>;
  label: string;
}

/**
 * Trains the runs over one loaded base model, in passes of at most `concurrentArms` runs, and
 * returns one result per run, in order; each run's folder is as trainLora writes it. Runs must
 * share the base model, device, dtype, packing and memory settings, and run in one process.
 */
export async function trainConcurrently(specs: RunSpec[], o: ConcurrentOptions = {}): Promise<TrainResult[]> {
  if (specs.length === 0) throw new Error("trainConcurrently: no runs");
  const runs = specs.map((spec) => ({ spec, ...loraRun(spec.settings) }));
  const alone = runs.find((r) => !canShareBase(r.s));
  if (alone)
    throw new Error(
      `${alone.spec.label ?? `train ${alone.s.init}`}: ${alone.s.dora ? "a DoRA adapter" : `\`init\` ${alone.s.init}`} cannot share the base model with other runs; train it alone`,
    );
  checkShared(runs.map((r) => r.s));
  const first = runs[0].s;
  if (first.gpus > 1) throw new Error("concurrent runs train in one process: set `gpus` to 1, or train the runs one by one");
  const dp = singleProcess(first.device);
  const recompute = recomputePolicy(first);
  const prepared: Prepared[] = [];
  const tokenizers = new Map<string, Awaited<ReturnType<typeof loadData>>>();
  for (const r of runs) {
    const key = JSON.stringify([r.s.trainData, r.s.evalData, r.s.evalLimit, r.s.maxLength, r.s.systemPrompt]);
    if (!tokenizers.has(key)) tokenizers.set(key, await loadData(r.s, r.spec.events));
    prepared.push({ ...r, data: tokenizers.get(key)!.data, questions: accuracyQuestions(r.s), label: r.spec.label ?? `train ${r.s.init}` });
  }
  const tokenizer = [...tokenizers.values()][0].tokenizer;
  const model = loadCausalLM(first.baseModel, { dtype: first.dtype, device: dp.device });
  const batch: BatchOptions = { padId: padIdOf(tokenizer), device: dp.device, packing: first.packing ?? false, dtype: model.dtype };
  const results: TrainResult[] = [];
  const failures: RunsFailedError["failures"] = [];
  try {
    const perPass = armsPerPass(o.concurrentArms, model, prepared, batch, recompute);
    for (let start = 0; start < prepared.length; start += perPass) {
      const pass = prepared.slice(start, start + perPass);
      const names = pass.map((p) => p.label.replace(/^train /, "")).join(", ");
      o.note?.(`training ${names} ${pass.length > 1 ? "together over one" : "over the same"} ${first.baseModel}`);
      const arms = attach(model, pass);
      const events = passEvents(pass);
      try {
        const outcomes = await trainLoops(
          { model, batch, recompute, dataParallel: dp },
          pass.map((p, k) => ({
            ...loopRun(LORA_TRAINING, p.s, dp, {
              params: arms[k].params,
              data: p.data,
              dir: p.spec.dir,
              checkpointDir: p.spec.checkpointDir,
            }),
            arm: k,
            label: p.label,
            events: events[k],
          })),
          { signal: o.signal },
        );
        chargeShares(outcomes);
        for (const [k, outcome] of outcomes.entries()) {
          const p = pass[k];
          const index = start + k;
          if (!outcome.ok) {
            failures.push({ index, label: p.label, error: outcome.error });
            await o.onRunFailed?.(index, outcome.error);
            continue;
          }
          const result = finishLoraRun(model, {
            s: p.s,
            lora: p.lora,
            loras: arms[k].loras,
            questions: p.questions,
            tokenizer,
            loop: outcome.result,
            data: p.data,
            preparation: arms[k].preparation,
            dir: p.spec.dir,
            dp,
            events: p.spec.events,
            arm: k,
          });
          results[index] = result;
          await o.onRunDone?.(index, result);
        }
      } finally {
        model.detachArms();
        disposeArms(arms);
      }
    }
  } catch (e) {
    if (e instanceof InterruptedError && failures.length > 0)
      throw new InterruptedError(`${e.message}\n${failures.map((f) => `${f.label}: ${f.error.message}`).join("\n")}`);
    throw e;
  } finally {
    torch.dispose([...model.namedWeights().values()]);
  }
  if (failures.length > 0) throw new RunsFailedError(failures);
  return results;
}

function checkShared(settings: LoraTrainingSettings[]): void {
  const first = settings[0];
  for (const key of SHARED)
    settings.forEach((s, i) => {
      const [a, b] = key === "baseModel" ? [path.resolve(first[key]), path.resolve(s[key])] : [first[key], s[key]];
      if (a !== b)
        throw new Error(
          `concurrent runs share one model, so they must share \`${key}\`: run 1 has ${JSON.stringify(first[key])}, run ${i + 1} ${JSON.stringify(s[key])}; train them in separate calls`,
        );
    });
}

interface Arm {
  adapters: Map<string, ArmAdapter>;
  loras: Map<string, LoRA>;
  params: Map<string, torch.Tensor>;
  preparation: Preparation;
}

/** Each run's adapters made from its seed (on its own generator) and attached to the model as arm k. */
function attach(model: CausalLM, pass: Prepared[]): Arm[] {
  const generators = new ArmGenerators(model.device);
  const made: Arm[] = [];
  try {
    for (const p of pass) {
      const t0 = performance.now();
      torch.manualSeed(p.s.seed);
      const adapters =
        p.s.init === "svd"
          ? new Map(
              [...svdFactorsLora(model, p.s, p.lora, (config, weights) => loraFromAdapter(model, config, weights))].map(([m, lora]) => [
                m,
                { lora, correction: null },
              ]),
            )
          : armAdapters(model, p.lora, armInit(p.s));
      generators.add();
      const loras = new Map([...adapters].map(([m, a]) => [m, a.lora]));
      const preparation = { tokens: 0, seconds: (performance.now() - t0) / 1000, batches: 0 };
      made.push({ adapters, loras, params: loraParams(loras), preparation });
    }
    model.attachArms(
      made.map((m) => m.adapters),
      generators,
    );
    return made;
  } catch (e) {
    generators.dispose();
    disposeArms(made);
    throw e;
  }
}

/** The init of a run that can share the base (canShareBase), as addLora takes it. */
function armInit(s: LoraTrainingSettings): LoraInit | ModuleInit {
  if (s.init === "random" || s.init === "gaussian") return s.init;
  return moduleInit(parseInitMethod(s.init), { rank: s.loraRank, alpha: s.loraAlpha, rslora: s.rslora, seed: s.seed });
}

/** Frees the arms' factors, their corrections and their rewrite records. */
function disposeArms(arms: Arm[]): void {
  for (const a of arms)
    for (const { lora, correction } of a.adapters.values()) {
      lora.dispose();
      correction?.dispose();
    }
}

/**
 * Runs per pass: all of them when not set; "auto": one on the CPU (trainsTogether); on a GPU as
 * many as fit the memory budget with every layer's activations kept: what is free after the model,
 * less each run's largest micro-batch × the measured bytes a layer keeps per token × (layers + 3,
 * backward's working set as backprop.ts counts it), less its adapter and AdamW state.
 */
function armsPerPass(
  setting: number | "auto" | undefined,
  model: CausalLM,
  runs: Prepared[],
  batch: BatchOptions,
  recompute: RecomputePolicy,
): number {
  if (setting === undefined) return runs.length;
  if (setting !== "auto") return Math.min(setting, runs.length);
  if (!trainsTogether(setting, model.device)) return 1;
  if (typeof recompute !== "object" || !("budgetBytes" in recompute)) return runs.length;
  const widest = runs.reduce((a, b) => (targeted(model, b.lora).length > targeted(model, a.lora).length ? b : a));
  const perToken = measureWithArm(model, widest.lora);
  const device = torch.cuda.index(model.device);
  const free = recompute.budgetBytes - torch.cuda.memory(device).allocated;
  const layers = model.config.numHiddenLayers;
  const costs = runs.map((r) => largestMicroBatch(r, batch) * perToken * (layers + 3) + adapterBytes(model, r.lora));
  let fit = 0;
  for (let used = 0; fit < runs.length && used + costs[fit] <= free; fit++) used += costs[fit];
  return Math.max(1, fit);
}

/** The projections these LoRA settings adapt, as addLora picks them. */
function targeted(model: CausalLM, lora: LoraSettings) {
  const config = adapterConfigFor(lora, "");
  return [...model.linears()].filter(([p]) => isTargetModule(config, p)).map(([, l]) => l);
}

// float32 factors, their gradients and AdamW's two moments.
const adapterBytes = (model: CausalLM, lora: LoraSettings) =>
  targeted(model, lora).reduce((n, l) => n + lora.rank * (l.inFeatures + l.outFeatures), 0) * 4 * 4;

/** Tokens of the run's largest micro-batch over all its epochs, as its batches are made (padded: samples × longest). */
function largestMicroBatch(r: Prepared, batch: BatchOptions): number {
  const n = r.data.train.length;
  const ranges = microBatchRanges(n, r.s.batchSize);
  let largest = 0;
  for (let epoch = 0; epoch < r.s.epochs; epoch++) {
    const order = epochOrder(n, r.s.seed, epoch);
    for (const [a, b] of ranges) {
      const lengths = order.slice(a, b).map((i) => r.data.train[i].ids.length);
      largest = Math.max(largest, batch.packing ? lengths.reduce((x, y) => x + y, 0) : lengths.length * Math.max(...lengths));
    }
  }
  return largest;
}

// The per-token bytes one layer keeps, measured with a throwaway arm of these LoRA settings.
function measureWithArm(model: CausalLM, lora: LoraSettings): number {
  const generators = new ArmGenerators(model.device);
  const adapters = armAdapters(model, lora, "random");
  generators.add();
  model.attachArms([adapters], generators);
  try {
    return measureLayerBytesPerToken(model);
  } finally {
    model.detachArms();
    for (const a of adapters.values()) a.lora.dispose();
  }
}

/**
 * Each run's events for one pass. A sink that several runs of the pass share (the command line's
 * progress display) follows the first of them, labelled with how many more train with it; the others
 * only send it their notes. Their held-out losses and results are in their own logs and summaries.
 */
function passEvents(pass: Prepared[]): (TrainingEvents | undefined)[] {
  return pass.map((p, k) => {
    const e = p.spec.events;
    if (!e) return e;
    if (pass.findIndex((q) => q.spec.events === e) !== k) return { note: (line) => e.note?.(line) };
    const others = pass.filter((q) => q.spec.events === e).length - 1;
    if (others === 0) return e;
    const label = `${p.label} and ${others} more`;
    return {
      phase: (phase, detail) => e.phase?.(phase, detail),
      start: (s) => e.start?.({ ...s, label }),
      step: (s) => e.step?.(s),
      evaluated: (x) => e.evaluated?.(x),
      end: () => e.end?.(),
      note: (line) => e.note?.(line),
    };
  });
}
