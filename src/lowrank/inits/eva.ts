// EVA, explained variance adaptation (Paischer et al. 2024; PEFT "eva"): A = the top right-singular
// vectors of each layer's inputs, computed by incremental PCA over calibration batches until
// they stop moving, with the rank budget r × (number of layers) redistributed across layers by
// explained variance; B = 0, so the model starts unchanged. Mirrors PEFT's get_eva_state_dict and
// its IncrementalPCA step for step, including the order of fits and the convergence test; the
// layers of a batch are fitted together, as one batched computation (each layer's numbers are the
// ones PEFT computes for it alone).
import * as torch from "../../torch/index.js";
import type { Tensor } from "../../torch/index.js";
import { type RandomSource, seededRandom } from "./common.js";
import { svdLowrank, svdLowrankRight } from "./lowrank.js";

/** Singular values S [..., k] and right singular vectors as rows Vt [..., k, n] of a matrix or a batch of them. */
type RightSvd = (X: Tensor) => { S: Tensor; Vt: Tensor };

/**
 * PEFT's IncrementalPCA (after scikit-learn's), for a stack of `count` PCAs of inputs of one size
 * fitted together: each batch is centred, stacked under the current components (scaled by their
 * singular values) and a mean-correction row, and decomposed again. Means and variances are kept
 * in float64; the stacked matrix is float64 after the first batch. State: components
 * [count, k, features], singular values and explained variance ratios [count, k].
 */
export class IncrementalPca {
  components: Tensor | null = null;
  singularValues: Tensor | null = null;
  explainedVarianceRatio: Tensor | null = null;
  private mean: Tensor | null = null;
  private variance: Tensor | null = null;
  private seen: number[];

  constructor(
    readonly count: number,
    readonly nComponents: number,
    private readonly svd: RightSvd,
  ) {
    this.seen = new Array(count).fill(0);
  }

  /**
   * One step of the PCAs `members` (default all) on their batches X [members, n, features]: the
   * others keep their state. Members fitted for the first time must all be (all are fitted at
   * their first step together).
   */
  partialFit(X: Tensor, members: number[] = [...this.seen.keys()]): void {
    const [L, n, features] = X.shape;
    if (X.ndim !== 3 || L !== members.length)
      throw new Error(`EVA: ${members.length} PCAs' batches must be [${members.length}, rows, features], got [${X.shape}]`);
    if (this.nComponents > features) throw new Error(`EVA: ${this.nComponents} components need at least as many features, got ${features}`);
    if (this.nComponents > n) throw new Error(`EVA: ${this.nComponents} components need at least as many rows per batch, got ${n}`);
    const first = members.every((m) => this.seen[m] === 0);
    if (!first && members.some((m) => this.seen[m] === 0)) throw new Error("EVA: PCAs fitted together must all be fitted before, or none");
    const seen = members.map((m) => this.seen[m]);
    const total = seen.map((s) => s + n);
    const perMember = (values: number[]) => torch.tensor(values, { dtype: "float64", device: X.device }).view(L, 1);
    const next = torch.tidy(() => {
      const index = torch.tensor(members, { dtype: "int64", device: X.device });
      const own = (t: Tensor) => t.indexSelect(0, index);
      let Y = X.to({ dtype: X.dtype === "float64" ? "float64" : "float32", copy: true });
      const { mean, variance } = first
        ? meanAndVariance(Y, null, perMember(seen), perMember(total))
        : meanAndVariance(Y, { mean: own(this.mean!), variance: own(this.variance!) }, perMember(seen), perMember(total));
      if (first) Y.sub_(mean.unsqueeze(1));
      else {
        const batchMean = Y.mean(1);
        Y.sub_(batchMean.unsqueeze(1));
        const factor = perMember(seen.map((s, i) => Math.sqrt((s / total[i]) * n)));
        const correction = own(this.mean!).sub(batchMean).mul(factor);
        const scaled = own(this.singularValues!).unsqueeze(2).mul(own(this.components!));
        const rows = Y.to("float64");
        const stacked = torch.cat([scaled.to("float64"), rows, correction.unsqueeze(1)], 1);
        torch.dispose([rows, Y]); // the SVD's working memory, not theirs
        Y = stacked;
      }
      const { S, Vt } = this.svd(Y);
      const k = this.nComponents;
      const ratio = S.square().div(variance.mul(perMember(total)).sum(1, true));
      return {
        components: Vt.narrow(1, 0, k),
        singularValues: S.narrow(1, 0, k),
        explainedVarianceRatio: ratio.narrow(1, 0, k),
        mean,
        variance,
      };
    });
    // The members' rows replaced, the others' kept: the new full state, each a fresh tensor.
    const all = members.length === this.count && members.every((m, i) => m === i);
    const merged = torch.tidy(() => {
      if (all) return Object.fromEntries(Object.entries(next).map(([key, t]) => [key, t.contiguous()])) as typeof next;
      const slot = [...this.seen.keys()].map((m) => (members.includes(m) ? this.count + members.indexOf(m) : m));
      const index = torch.tensor(slot, { dtype: "int64", device: X.device });
      // Before their first step, the others' rows are zeros.
      const merge = (old: Tensor | null, fresh: Tensor) =>
        torch
          .cat(
            [
              old?.to(fresh.dtype) ?? torch.zeros([this.count, ...fresh.shape.slice(1)], { dtype: fresh.dtype, device: fresh.device }),
              fresh,
            ],
            0,
          )
          .indexSelect(0, index);
      return {
        components: merge(this.components, next.components),
        singularValues: merge(this.singularValues, next.singularValues),
        explainedVarianceRatio: merge(this.explainedVarianceRatio, next.explainedVarianceRatio),
        mean: merge(this.mean, next.mean),
        variance: merge(this.variance, next.variance),
      };
    });
    torch.dispose(next);
    this.dispose();
    [this.components, this.singularValues, this.explainedVarianceRatio, this.mean, this.variance] = [
      merged.components,
      merged.singularValues,
      merged.explainedVarianceRatio,
      merged.mean,
      merged.variance,
    ].map((t) => torch.keep(t));
    for (const [i, m] of members.entries()) this.seen[m] = total[i];
  }

  /** Whether PCA `member` has had a step (its rows of the state are its own). */
  fitted(member: number): boolean {
    return this.seen[member] > 0;
  }

  dispose(): void {
    torch.dispose([this.components, this.singularValues, this.explainedVarianceRatio, this.mean, this.variance]);
  }
}

/**
 * The running column means and variances of each PCA updated with its batch X [L, n, features]
 * (float64), given the rows seen before and the new totals ([L, 1] each).
 */
function meanAndVariance(
  X: Tensor,
  last: { mean: Tensor; variance: Tensor } | null,
  seen: Tensor,
  total: Tensor,
): { mean: Tensor; variance: Tensor } {
  return torch.tidy(() => {
    const n = X.shape[1];
    const newSum = torch.tidy(() => X.to("float64").sum(1));
    const lastSum = last ? last.mean.mul(seen) : newSum.mul(0);
    const unnormalized = torch.tidy(() => {
      const deviation = X.sub(newSum.div(n).unsqueeze(1));
      const sum = deviation.sum(1);
      return deviation.mul_(deviation).sum(1).sub(sum.square().div(n));
    });
    const mean = lastSum.add(newSum).div(total);
    if (!last) return { mean, variance: unnormalized.div(total) };
    const lastOverNew = seen.div(n);
    const variance = last.variance
      .mul(seen)
      .add(unnormalized)
      .add(lastSum.div(lastOverNew).sub(newSum).square().mul(lastOverNew.div(total)))
      .div(total);
    return { mean, variance };
  });
}

/**
 * Bytes one EVA step takes on the device per layer whose batch has `rows` input rows of `features`
 * in a dtype of `inputBytes` bytes, keeping `components`: the rows and their stacked copy, a
 * float32 copy and two float64 matrices of their size at a time (the centring, then the stacked
 * matrix the SVD reads), and float64 matrices of a few times 2 × components rows (the scaled
 * components, the randomized SVD's bases). Measured on the CPU at 7B shapes (3584 features, 1000
 * rows, 32 components): 2 % over the live tensors' peak.
 */
export const evaStepBytes = (rows: number, features: number, inputBytes: number, components: number): number =>
  ((2 * inputBytes + 20) * rows + 48 * components) * features;

/** scikit-learn's svd_flip with the decision on Vt: the largest-magnitude entry of each row of Vt is positive. */
function flipSigns({ S, Vt }: { S: Tensor; Vt: Tensor }): { S: Tensor; Vt: Tensor } {
  const last = Vt.ndim - 1;
  const signs = Vt.gather(last, Vt.abs().argmax(last, true)).sign();
  return { S, Vt: Vt.mul(signs) };
}

export interface EvaOptions {
  /** The rank every layer gets without redistribution (PEFT's r, or its rank_pattern). */
  rank: (layer: string) => number;
  /** lora_alpha before EVA adjusts it. */
  alpha: number;
  /** A layer may get up to round(r·ρ) components. Default 2. */
  rho?: number;
  /** Cosine similarity between successive components above which they count as converged. Default 0.99. */
  tau?: number;
  /** Divide each component by √σ. Default false. */
  whiten?: boolean;
  /** α ·= new rank / r, so the LoRA scaling stays α / r. Default true. */
  adjustScalingFactors?: boolean;
  /**
   * The SVD of each incremental step: "lowrank" (default, as PEFT: torch.svd_lowrank with
   * q = 2 × components, 4 iterations, test matrices from a source seeded afresh for every call,
   * as PEFT re-seeds with 42; from the second step on, float64, computed by svdLowrankRight) or
   * "exact".
   */
  svd?: "lowrank" | "exact";
  /** The random source of each low-rank SVD. Default seededRandom(42) afresh for every call. */
  random?: () => RandomSource;
  /** Stop with an error after this many batches without convergence. Default 1000. */
  maxBatches?: number;
  /** Device bytes one batched step may take (evaStepBytes per layer): the layers of a batch are fitted in as few steps as fit. Default: no limit. */
  stepBytes?: number;
}

/** One layer's EVA result: A (rank × in, float32) and the adjusted lora_alpha; rank 0 means no adapter. */
export interface EvaLayer {
  A: Tensor;
  rank: number;
  alpha: number;
}

/** Python's round(): halves go to the even neighbour. */
const roundHalfEven = (x: number): number => {
  const f = Math.floor(x);
  const d = x - f;
  return d > 0.5 || (d === 0.5 && f % 2 !== 0) ? f + 1 : f;
};

/**
 * Layers whose inputs are identical (q, k, v read one tensor; gate and up another) share one PCA,
 * as in PEFT: each layer → the first layer (in the order given) with the same input values.
 */
export function sharedInputs(firstBatch: Map<string, Tensor>): Map<string, string> {
  const out = new Map<string, string>();
  const seen: [string, Tensor][] = [];
  for (const [name, x] of firstBatch) {
    const same = seen.find(([, y]) => `${y.shape}` === `${x.shape}` && torch.tidy(() => x.eq(y).logicalNot().sum().item()) === 0);
    if (same) out.set(name, same[0]);
    else seen.push([name, x]);
  }
  return out;
}

/** The PCAs of layers whose inputs have one size and that keep the same number of components, fitted together. */
interface Bank {
  pca: IncrementalPca;
  /** The fitted layers it holds, in order: layer i is PCA i. */
  layers: string[];
}

/**
 * The EVA calibration loop as a state machine, so the caller owns the model: ask next() which
 * layers need inputs (null when all have converged), run the next calibration batch (cycling
 * through them), and hand the layers' input rows (padding and −100-label positions removed) to
 * feed(). result() then gives A and the redistributed rank of every layer.
 */
export class EvaState {
  /** Each fitted layer's bank and its place there, made at the first batch (which gives the inputs' sizes). */
  private place: Map<string, { bank: Bank; index: number }> | null = null;
  private readonly converged = new Map<string, boolean[]>();
  private readonly active = new Map<string, boolean>();
  private readonly maxComponents = new Map<string, number>();
  private rankDistribution: Map<string, number>;
  private readonly budget: number;
  private batches = 0;

  /**
   * layers: every target layer, in model order. shared: layer → the layer whose inputs it shares
   * (sharedInputs of the first batch); only the latter is fitted.
   */
  constructor(
    readonly layers: string[],
    readonly shared: ReadonlyMap<string, string>,
    readonly o: EvaOptions,
  ) {
    const rho = o.rho ?? 2;
    const tau = o.tau ?? 0.99;
    if (!(rho >= 1 && rho <= 1000)) throw new Error(`EVA rho must be in [1, 1000], got ${rho}`);
    if (!(tau >= 0 && tau <= 1)) throw new Error(`EVA tau must be in [0, 1], got ${tau}`);
    if (layers.length === 0) throw new Error("EVA: no layers to initialize");
    this.budget = layers.reduce((sum, name) => sum + o.rank(name), 0);
    for (const name of layers) {
      const group = layers.filter((other) => this.hookOf(other) === this.hookOf(name));
      this.maxComponents.set(name, Math.max(...group.map((g) => roundHalfEven(o.rank(g) * rho))));
    }
    for (const name of this.hookLayers()) {
      this.converged.set(name, new Array(this.maxComponents.get(name)!).fill(false));
      this.active.set(name, true);
    }
    this.rankDistribution = new Map(this.maxComponents);
  }

  /** The layer whose PCA serves this one. */
  private hookOf(name: string): string {
    return this.shared.get(name) ?? name;
  }

  private hookLayers(): string[] {
    return this.layers.filter((name) => !this.shared.has(name));
  }

  private thinSvd(q: number): RightSvd {
    if (this.o.svd === "exact")
      return (X) => {
        const { S, Vh } = torch.svd(X);
        return flipSigns({ S, Vt: Vh });
      };
    return (X) => {
      const random = (this.o.random ?? (() => seededRandom(42)))();
      if (X.dtype === "float64") {
        const { S, V } = svdLowrankRight(X, q, 4, random);
        return flipSigns({ S, Vt: V.T });
      }
      const { S, V } = svdLowrank(X, q, 4, random);
      return flipSigns({ S, Vt: V.T });
    };
  }

  /** Layers whose inputs the next batch must provide; null once every layer has converged. */
  next(): string[] | null {
    for (const name of this.hookLayers()) {
      const rank = this.rankDistribution.get(name)!;
      const done = this.converged.get(name)!.slice(0, rank).every(Boolean);
      if (this.active.get(name) && done) this.active.set(name, false);
      else if (!this.active.get(name) && !done) this.active.set(name, true);
    }
    const wanted = this.hookLayers().filter((name) => this.active.get(name));
    if (wanted.length === 0) return null;
    if (this.batches >= (this.o.maxBatches ?? 1000))
      throw new Error(
        `EVA did not converge in ${this.batches} batches (layers still moving: ${wanted.join(", ")}): give it more varied calibration data (\`calibrationBatches\`) or a lower tau`,
      );
    return wanted;
  }

  /**
   * One batch: the input rows [n, in] of each layer next() asked for (the same n for all, as they
   * come from one batch). The layers are fitted together, in as few batched steps as `stepBytes`
   * allows; then the rank budget is redistributed once every layer has components.
   */
  feed(inputs: ReadonlyMap<string, Tensor>): void {
    const wanted = this.hookLayers().filter((name) => this.active.get(name));
    for (const name of wanted) if (!inputs.has(name)) throw new Error(`EVA: the batch has no inputs for ${name}`);
    this.place ??= this.makeBanks(inputs);
    const banks = new Set(wanted.map((name) => this.placeOf(name).bank));
    for (const bank of banks) {
      const layers = bank.layers.filter((name) => this.active.get(name));
      const [rows, features] = inputs.get(layers[0])!.shape;
      for (const name of layers)
        if (`${inputs.get(name)!.shape}` !== `${[rows, features]}`)
          throw new Error(`EVA: ${name}'s inputs are [${inputs.get(name)!.shape}], not [${rows},${features}] as ${layers[0]}'s`);
      if (rows < bank.pca.nComponents) continue; // PEFT skips batches with fewer rows than components
      const inputBytes = torch.elementSize[inputs.get(layers[0])!.dtype];
      const perStep =
        this.o.stepBytes === undefined ? layers.length : this.o.stepBytes / evaStepBytes(rows, features, inputBytes, bank.pca.nComponents);
      const size = Math.max(1, Math.min(layers.length, Math.floor(perStep)));
      for (let start = 0; start < layers.length; start += size) this.fit(bank, layers.slice(start, start + size), inputs);
    }
    this.batches++;
    if (this.hookLayers().every((name) => this.placeOf(name).bank.pca.fitted(this.placeOf(name).index)))
      this.rankDistribution = this.distribute();
  }

  private placeOf(name: string): { bank: Bank; index: number } {
    return this.place!.get(name)!;
  }

  private banks(): Set<Bank> {
    return new Set([...(this.place?.values() ?? [])].map((p) => p.bank));
  }

  /** The fitted layers in banks by input size (features of their first batch) and components. */
  private makeBanks(inputs: ReadonlyMap<string, Tensor>): Map<string, { bank: Bank; index: number }> {
    const byKey = new Map<string, string[]>();
    for (const name of this.hookLayers()) {
      const x = inputs.get(name);
      if (!x) throw new Error(`EVA: the first batch has no inputs for ${name}`);
      const key = `${x.shape[1]}/${this.maxComponents.get(name)}`;
      byKey.set(key, [...(byKey.get(key) ?? []), name]);
    }
    const place = new Map<string, { bank: Bank; index: number }>();
    for (const layers of byKey.values()) {
      const k = this.maxComponents.get(layers[0])!;
      const bank = { pca: new IncrementalPca(layers.length, k, this.thinSvd(2 * k)), layers };
      for (const [index, name] of layers.entries()) place.set(name, { bank, index });
    }
    return place;
  }

  /** One batched step of some of a bank's layers, and their convergence: every component's cosine similarity with its previous value ≥ τ. */
  private fit(bank: Bank, layers: string[], inputs: ReadonlyMap<string, Tensor>): void {
    const members = layers.map((name) => this.placeOf(name).index);
    const { pca } = bank;
    const previous = members.every((m) => pca.fitted(m))
      ? torch.tidy(() => pca.components!.indexSelect(0, torch.tensor(members, { dtype: "int64", device: pca.components!.device })))
      : null;
    try {
      const X = torch.tidy(() => torch.stack(layers.map((name) => inputs.get(name)!)));
      try {
        pca.partialFit(X, members);
      } finally {
        X.dispose();
      }
      if (!previous) return;
      const cosines = torch.tidy(() => {
        const current = pca.components!.indexSelect(0, torch.tensor(members, { dtype: "int64", device: previous.device }));
        return Array.from(cosineRows(current, previous).data() as Float64Array);
      });
      const k = pca.nComponents;
      const tau = this.o.tau ?? 0.99;
      for (const [i, name] of layers.entries())
        this.converged.set(
          name,
          cosines.slice(i * k, (i + 1) * k).map((c) => c >= tau),
        );
    } finally {
      previous?.dispose();
    }
  }

  /** The rank budget Σ r given out component by component, largest explained variance first. */
  private distribute(): Map<string, number> {
    const ratios = new Map<string, number[]>();
    for (const bank of this.banks()) {
      const all = torch.tidy(() => Array.from(bank.pca.explainedVarianceRatio!.to("float64").data() as Float64Array));
      const k = bank.pca.nComponents;
      for (const [i, name] of bank.layers.entries()) ratios.set(name, all.slice(i * k, (i + 1) * k));
    }
    const order = [...this.hookLayers(), ...this.layers.filter((name) => this.shared.has(name))];
    const entries: { layer: string; ratio: number }[] = [];
    for (const layer of order) for (const ratio of ratios.get(this.hookOf(layer))!) entries.push({ layer, ratio });
    const sorted = entries.map((e, i) => ({ ...e, i })).sort((a, b) => b.ratio - a.ratio || a.i - b.i);
    const counts = new Map(order.map((layer) => [layer, 0]));
    for (const { layer } of sorted.slice(0, this.budget)) counts.set(layer, counts.get(layer)! + 1);
    for (const layer of this.layers) {
      const hook = this.hookOf(layer);
      if (hook === layer || counts.get(hook)! >= counts.get(layer)!) continue;
      const [mine, theirs] = [counts.get(layer)!, counts.get(hook)!];
      counts.set(hook, mine);
      counts.set(layer, theirs);
    }
    return counts;
  }

  /** Every layer's A and rank after redistribution (and its α when adjustScalingFactors). */
  result(): Map<string, EvaLayer> {
    const out = new Map<string, EvaLayer>();
    for (const name of this.layers) {
      const rank = this.rankDistribution.get(name)!;
      const hook = this.hookOf(name);
      if (!this.place || !this.converged.get(hook)!.slice(0, rank).every(Boolean))
        throw new Error(`EVA: ${name} has not converged; call next() until it returns null`);
      const { bank, index } = this.place.get(hook)!;
      const A = torch.tidy(() => {
        let u = bank.pca.components!.select(0, index).narrow(0, 0, rank);
        if (this.o.whiten) u = u.div(bank.pca.singularValues!.select(0, index).narrow(0, 0, rank).sqrt().unsqueeze(1));
        return u.to("float32").contiguous();
      });
      const r = this.o.rank(name);
      const alpha = rank !== r && (this.o.adjustScalingFactors ?? true) ? this.o.alpha * (rank / r) : this.o.alpha;
      out.set(name, { A, rank, alpha });
    }
    return out;
  }

  dispose(): void {
    for (const bank of this.banks()) bank.pca.dispose();
  }
}

/** Cosine similarity of matching rows of X and Y [..., k, n], as torch.nn.functional.cosine_similarity (eps 1e-8): [..., k] float64. */
function cosineRows(X: Tensor, Y: Tensor): Tensor {
  const last = X.ndim - 1;
  const unit = (t: Tensor) => t.to("float64").div(t.to("float64").norm(2, last, true).clamp(1e-8));
  return unit(X).mul(unit(Y)).sum(last);
}
