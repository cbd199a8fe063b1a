// The calibration pass of the data-dependent inits (docs/inits.md): before the adapter exists, a
// few batches of the training data, the run's first in its own seeded order, go through the base
// model, and each target linear layer yields the statistic its init needs:
//   lora-ga, lora-one  G, the mean over the batches of dL/dW: autograd's weight gradient, with the
//                      target weights made trainable for the pass (lossAndBackward, the training
//                      step's own forward and backward, recomputation within the memory budget);
//   corda-ipm/kpm      C, the mean over sequences of (X/|max X|)ᵀ(X/|max X|), one sequence per
//                      forward as PEFT runs it;
//   eva                an incremental PCA of the input rows at answer positions (label ≠ −100),
//                      batch after batch, cycling through the batches until EvaState converges;
//                      a batch's rows are kept after its first forward where memory allows.
// Layer inputs are read through Linear.probe, set for a forward and cleared after it. Layers that
// read the same input tensor (q, k, v; gate, up) share one statistic, as they share one value.
// On CUDA the statistics of a pass must fit beside the model within the memory budget: when those
// of all targets do not fit in half of what the budget leaves, the targets are split into groups,
// each calibrated by its own pass over the batches, and a finished group's statistics wait in host
// memory until its modules are initialized.
import type { Encoded } from "../data/types.js";
import {
  type EvaLayer,
  EvaState,
  GradientMean,
  InputCovariance,
  type InitContext,
  type InitMethod,
  initStatistic,
} from "../lowrank/inits/index.js";
import type { InputProbe } from "../model/linear.js";
import type { CausalLM, ForwardOptions } from "../model/qwen2.js";
import * as torch from "../torch/index.js";
import type { Tensor } from "../torch/index.js";
import { type RecomputePolicy, countingGradients, lossAndBackward } from "./backprop.js";
import { type BatchOptions, epochOrder, makeBatch, microBatchRanges } from "./batches.js";
import { InterruptedError } from "./events.js";

/** The samples of the calibration: the first `count` micro-batches of `batchSize` of the run's first epoch. */
export function calibrationBatches(train: Encoded[], o: { seed: number; batchSize: number; count: number }): Encoded[][] {
  const order = epochOrder(train.length, o.seed, 0);
  return microBatchRanges(train.length, o.batchSize)
    .slice(0, o.count)
    .map(([a, b]) => order.slice(a, b).map((i) => train[i]));
}

export interface CalibrationJob {
  model: CausalLM;
  method: InitMethod;
  /** The target modules' paths, in model order. */
  targets: string[];
  batches: Encoded[][];
  batch: BatchOptions;
  recompute: RecomputePolicy;
  /** The LoRA rank and alpha (EVA's budget and scaling). */
  rank: number;
  alpha: number;
  /** The bytes the process may hold on the device (`maxMemory` on CUDA, where the model's share is measured); null: no limit. */
  budgetBytes: number | null;
  /** Aborting stops the pass between batches (InterruptedError). */
  signal?: AbortSignal;
}

export interface Calibration {
  /** What moduleInit needs for the method: covariance, gradient or eva. */
  context: Pick<InitContext, "covariance" | "gradient" | "eva">;
  /** Tokens that went through the model, and batches (forward passes over a calibration batch, or its sequences; for EVA also its steps on kept inputs). */
  tokens: number;
  batches: number;
  /** Passes over the batches (more than one when the statistics were split into groups). */
  passes: number;
  dispose(): void;
}

/** Runs the calibration pass the method needs; weight-only methods need none (throws). */
export async function calibrate(given: CalibrationJob): Promise<Calibration> {
  // The statistics are of real tokens only: no padding of packed rows (BatchOptions.lengthMultiple).
  const job = { ...given, batch: { ...given.batch, lengthMultiple: 1 } };
  const statistic = initStatistic(job.method);
  if (statistic === "weight") throw new Error(`--init ${job.method.name} reads no calibration data`);
  if (job.batches.length === 0) throw new Error("calibration: no batches");
  const counter = { tokens: 0, batches: 0 };
  if (statistic === "inputs") {
    const eva = await evaPass(job, counter);
    return { context: { eva }, ...counter, passes: 1, dispose: () => torch.dispose([...eva.values()].map((l) => l.A)) };
  }
  const groups = statisticGroups(job, statistic);
  const means = new Map<string, Tensor>();
  try {
    for (const group of groups) {
      const pass = statistic === "gradient" ? await gradientPass(job, group, counter) : await covariancePass(job, group, counter);
      for (const [path, mean] of pass) means.set(path, groups.length > 1 ? torch.keep(moveTo(mean, "cpu")) : mean);
    }
  } catch (e) {
    torch.dispose([...means.values()]);
    throw e;
  }
  const device = job.batch.device;
  const get = (path: string) => {
    const mean = means.get(path);
    if (!mean) throw new Error(`no calibration statistic for ${path}: was it a target of the calibration pass?`);
    return mean.to({ device });
  };
  return {
    context: statistic === "gradient" ? { gradient: get } : { covariance: get },
    ...counter,
    passes: groups.length,
    dispose: () => torch.dispose([...means.values()]),
  };
}

const moveTo = (t: Tensor, device: string): Tensor => {
  const moved = t.to({ device, copy: true });
  t.dispose();
  return moved;
};

/**
 * The targets in groups whose statistics (float32 sums; for gradients also the weight's own
 * gradient) fit in half of what the memory budget leaves beside the model: one group on the CPU
 * or when all fit. The other half is the pass's working memory.
 */
function statisticGroups(job: CalibrationJob, statistic: "gradient" | "covariance"): string[][] {
  if (job.budgetBytes === null) return [job.targets];
  const linears = job.model.linears();
  const bytes = (path: string) => {
    const { inFeatures: n, outFeatures: m, weight } = linears.get(path)!;
    return statistic === "gradient" ? m * n * (4 + torch.elementSize[weight.dtype]) : n * n * 4;
  };
  const room = (job.budgetBytes - deviceAllocated(job.batch.device)) / 2;
  const groups: string[][] = [];
  let used = Number.POSITIVE_INFINITY;
  for (const path of job.targets) {
    const b = bytes(path);
    if (b > room)
      throw new Error(
        `the ${statistic} of ${path} (${gib(b)}) does not fit in the memory \`maxMemory\` leaves beside the model (half of ${gib(2 * room)} for statistics): raise \`maxMemory\` or target fewer modules`,
      );
    if (used + b > room) {
      groups.push([]);
      used = 0;
    }
    groups[groups.length - 1].push(path);
    used += b;
  }
  return groups;
}

const gib = (bytes: number) => `${(bytes / 2 ** 30).toFixed(2)} GiB`;

/** Lets a pending abort in between batches, and stops there if one came. */
async function checkpoint(signal: AbortSignal | undefined): Promise<void> {
  await new Promise(setImmediate);
  if (signal?.aborted) throw new InterruptedError("stopped during the init's calibration pass, before training: nothing was saved");
}

/** A forward of the decoder layers (no loss head, no graph) with a probe on each of the given linears, cleared after it. */
function probedForward(model: CausalLM, probes: Map<string, InputProbe>, ids: Tensor, options: ForwardOptions = {}): void {
  const linears = model.linears();
  for (const [path, probe] of probes) linears.get(path)!.probe = probe;
  try {
    torch.noGrad(() => torch.tidy(() => void model.hidden(ids, options, { finalNorm: false })));
  } finally {
    for (const path of probes.keys()) linears.get(path)!.probe = null;
  }
}

/**
 * Probes that hand each layer's input to `use`, except where a layer reads the very tensor an
 * earlier probed layer of the same forward read: that layer is recorded as sharing it (`shared`).
 * Call `nextForward` between forwards.
 */
function sharingProbes(paths: string[], use: (path: string, x: Tensor) => void, shared: Map<string, string>) {
  const firstReader = new Map<Tensor, string>();
  const probes = new Map(
    paths.map((path) => [
      path,
      (x: Tensor) => {
        const first = firstReader.get(x);
        if (first !== undefined) shared.set(path, first);
        else {
          firstReader.set(x, path);
          use(path, x);
        }
      },
    ]),
  );
  return { probes, nextForward: () => firstReader.clear() };
}

/** G of each target of the group: the weight gradient of each batch's mean token loss, averaged over the batches. */
async function gradientPass(
  job: CalibrationJob,
  group: string[],
  counter: { tokens: number; batches: number },
): Promise<Map<string, Tensor>> {
  const linears = job.model.linears();
  const weights = group.map((path) => [path, linears.get(path)!.weight] as const);
  const recompute = gradientPassPolicy(job, group);
  const G = new GradientMean();
  try {
    for (const [, w] of weights) w.requiresGrad_(true);
    for (const samples of job.batches) {
      const tokens = torch.tidy(() => {
        const b = makeBatch(samples, job.batch);
        lossAndBackward(job.model, b, { recompute });
        return b.tokens;
      });
      for (const [path, w] of weights) {
        const grad = w.grad;
        if (!grad) throw new Error(`calibration: ${path} got no gradient`);
        G.addGradient(path, grad);
        w.grad = null;
        // Our handle, not only the weight, holds the gradient: dispose it, or the storage lives on
        // until the garbage collector finalizes the handle (a whole batch's gradients on the GPU).
        grad.dispose();
      }
      counter.tokens += tokens;
      counter.batches++;
      await checkpoint(job.signal);
    }
    return new Map(group.map((path) => [path, G.takeMean(path)]));
  } finally {
    for (const [, w] of weights) {
      w.grad = null;
      w.requiresGrad_(false);
    }
    G.dispose();
  }
}

/**
 * The recomputation policy of a gradient pass over the group's targets: the run's, and under a
 * memory budget it also counts the weights' gradients (out · in in the weight's dtype, per decoder
 * layer), which backward allocates after the layers to keep were chosen.
 */
export function gradientPassPolicy(job: CalibrationJob, group: string[]): RecomputePolicy {
  const linears = job.model.linears();
  return countingGradients(
    job.recompute,
    job.model,
    group.map((path) => [path, linears.get(path)!.weight] as const),
  );
}

/** C of each target of the group, one sequence per forward; layers reading one input share one C. */
async function covariancePass(
  job: CalibrationJob,
  group: string[],
  counter: { tokens: number; batches: number },
): Promise<Map<string, Tensor>> {
  const C = new InputCovariance();
  const shared = new Map<string, string>();
  const { probes, nextForward } = sharingProbes(group, (path, x) => C.add(path, x), shared);
  try {
    for (const samples of job.batches) {
      for (const sample of samples) {
        torch.tidy(() => probedForward(job.model, probes, torch.tensor([sample.ids], { dtype: "int64", device: job.batch.device })));
        nextForward();
        counter.tokens += sample.ids.length;
      }
      counter.batches++;
      await checkpoint(job.signal);
    }
    const means = new Map<string, Tensor>();
    for (const path of group) if (!shared.has(path)) means.set(path, C.takeMean(path));
    // A layer that shares another's input shares its C (the same tensor, another handle).
    return new Map(
      group.map((path) => [
        path,
        shared.has(path) ? torch.keep(means.get(shared.get(path)!)!.to({ device: job.batch.device })) : means.get(path)!,
      ]),
    );
  } finally {
    C.dispose();
  }
}

/**
 * EVA: a first forward finds which layers share an input; then batch after batch (cycling), the
 * layers EvaState still wants get their input rows at answer positions, fitted together after the
 * forward, until every layer converged. A batch's rows are the same on every cycle (the model does
 * not change), so those of each batch are kept after its first forward where they fit in half of
 * what the memory budget leaves (all of them on the CPU), and later cycles read them instead of
 * running the model again; the other half is the fitting's working memory (EvaState's stepBytes).
 */
async function evaPass(job: CalibrationJob, counter: { tokens: number; batches: number }): Promise<Map<string, EvaLayer>> {
  const components = Math.round(2 * job.rank);
  const rows = job.batches.map((samples) => samples.reduce((n, s) => n + s.lossMask.filter(Boolean).length, 0));
  if (Math.max(...rows) < components)
    throw new Error(
      `eva needs at least ${components} answer tokens in a calibration batch (2 × \`loraRank\`), but the largest has ${Math.max(...rows)}: raise \`batchSize\``,
    );
  const shared = new Map<string, string>();
  const { probes } = sharingProbes(job.targets, () => {}, shared);
  counter.tokens += torch.tidy(() => {
    const b = makeBatch(job.batches[0], job.batch);
    probedForward(job.model, probes, b.ids, b.options);
    return b.tokens;
  });
  counter.batches++;
  const room = job.budgetBytes === null ? null : (job.budgetBytes - deviceAllocated(job.batch.device)) / 2;
  const state = new EvaState(job.targets, shared, {
    rank: () => job.rank,
    alpha: job.alpha,
    ...(room === null ? {} : { stepBytes: room }),
  });
  const fitted = job.targets.filter((path) => !shared.has(path));
  const kept: (Map<string, Tensor> | undefined)[] = [];
  let keptBytes = 0;
  try {
    for (let i = 0, want = state.next(); want; want = state.next(), i++) {
      const index = i % job.batches.length;
      const cached = kept[index];
      // Every fitted layer's rows when the batch may be kept, else those wanted now.
      const inputs = cached ?? answerInputs(job, index, kept.length <= index ? fitted : want, counter);
      if (!cached && kept.length <= index) {
        const bytes = [...inputs.values()].reduce((sum, x) => sum + x.numel() * torch.elementSize[x.dtype], 0);
        const fits = room === null || keptBytes + bytes <= room;
        kept[index] = fits ? inputs : undefined;
        if (fits) keptBytes += bytes;
      }
      try {
        state.feed(inputs);
      } finally {
        if (kept[index] !== inputs) torch.dispose([...inputs.values()]);
      }
      counter.batches++;
      await checkpoint(job.signal);
    }
    return state.result();
  } finally {
    for (const inputs of kept) if (inputs) torch.dispose([...inputs.values()]);
    state.dispose();
  }
}

/** One forward of calibration batch `index`: the input rows at its answer positions of each of the layers (kept tensors). */
function answerInputs(job: CalibrationJob, index: number, layers: string[], counter: { tokens: number }): Map<string, Tensor> {
  const inputs = new Map<string, Tensor>();
  try {
    counter.tokens += torch.tidy(() => {
      const b = makeBatch(job.batches[index], job.batch);
      const answers = answerRows(b.labels);
      const capture = (path: string) => (x: Tensor) => {
        inputs.set(path, torch.keep(torch.tidy(() => x.reshape(-1, x.shape[x.ndim - 1]).indexSelect(0, answers))));
      };
      probedForward(job.model, new Map(layers.map((path) => [path, capture(path)])), b.ids, b.options);
      return b.tokens;
    });
  } catch (e) {
    torch.dispose([...inputs.values()]);
    throw e;
  }
  return inputs;
}

const deviceAllocated = (device: string): number => (device.startsWith("cuda") ? torch.cuda.memory(torch.cuda.index(device)).allocated : 0);

/** The flat row indices of a batch's positions whose label is not −100 (the answer tokens), int64 on the labels' device. */
function answerRows(labels: Tensor): Tensor {
  const flat = Array.from(labels.reshape(-1).to("cpu").data() as ArrayLike<number | bigint>, Number);
  const index = flat.flatMap((label, i) => (label !== -100 ? [i] : []));
  return torch.tensor(index, { dtype: "int64", device: labels.device });
}
