// EVA, explained variance adaptation (Paischer et al. 2024; PEFT "eva"): A = the top right-singular
// vectors of each layer's inputs, computed by incremental PCA over calibration batches until
// they stop moving, with the rank budget r × (number of layers) redistributed across layers by
// explained variance; B = 0, so the model starts unchanged. Mirrors PEFT's get_eva_state_dict and
// its IncrementalPCA step for step, including the order of fits and the convergence test.
import * as torch from "../../torch/index.js";
import type { Tensor } from "../../torch/index.js";
import { type RandomSource, seededRandom } from "./common.js";
import { svdLowrank } from "./lowrank.js";

/** A thin SVD X = U diag(S) Vt. */
type ThinSvd = (X: Tensor) => { U: Tensor; S: Tensor; Vt: Tensor };

/**
 * PEFT's IncrementalPCA (after scikit-learn's): each batch is centred, stacked under the current
 * components (scaled by their singular values) and a mean-correction row, and decomposed again.
 * Means and variances are kept in float64; the stacked matrix is float64 after the first batch.
 */
export class IncrementalPca {
  components: Tensor | null = null;
  singularValues: Tensor | null = null;
  explainedVarianceRatio: Tensor | null = null;
  private mean: Tensor | null = null;
  private variance: Tensor | null = null;
  private seen = 0;

  constructor(
    readonly nComponents: number,
    private readonly svd: ThinSvd,
  ) {}

  partialFit(batch: Tensor): void {
    const [n, features] = batch.shape;
    if (this.nComponents > features) throw new Error(`EVA: ${this.nComponents} components need at least as many features, got ${features}`);
    if (this.nComponents > n) throw new Error(`EVA: ${this.nComponents} components need at least as many rows per batch, got ${n}`);
    const next = torch.tidy(() => {
      let X = batch.to({ dtype: batch.dtype === "float64" ? "float64" : "float32", copy: true });
      const { mean, variance, total } = this.meanAndVariance(X);
      if (!this.components) X.sub_(mean);
      else {
        const batchMean = X.mean(0);
        X.sub_(batchMean);
        const correction = this.mean!.sub(batchMean).mul(Math.sqrt((this.seen / total) * n));
        const scaled = this.singularValues!.unsqueeze(1).mul(this.components);
        X = torch.cat([scaled.to("float64"), X.to("float64"), correction.unsqueeze(0)]);
      }
      const { S, Vt } = this.svd(X);
      const k = this.nComponents;
      return {
        components: Vt.narrow(0, 0, k).contiguous(),
        singularValues: S.narrow(0, 0, k).contiguous(),
        explainedVarianceRatio: S.square().div(variance.mul(total).sum()).narrow(0, 0, k).contiguous(),
        mean,
        variance,
        total,
      };
    });
    this.dispose();
    [this.components, this.singularValues, this.explainedVarianceRatio, this.mean, this.variance] = [
      next.components,
      next.singularValues,
      next.explainedVarianceRatio,
      next.mean,
      next.variance,
    ].map((t) => torch.keep(t));
    this.seen = next.total;
  }

  dispose(): void {
    torch.dispose([this.components, this.singularValues, this.explainedVarianceRatio, this.mean, this.variance]);
  }

  /** The running column mean and variance updated with X (float64), and the new row count. */
  private meanAndVariance(X: Tensor): { mean: Tensor; variance: Tensor; total: number } {
    const n = X.shape[0];
    const total = this.seen + n;
    const newSum = X.to("float64").sum(0);
    const lastSum = this.mean ? this.mean.mul(this.seen) : torch.zeros(newSum.shape, { dtype: "float64", device: X.device });
    const deviation = X.sub(newSum.div(n));
    const unnormalized = deviation.square().sum(0).sub(deviation.sum(0).square().div(n));
    if (!this.variance) return { mean: lastSum.add(newSum).div(total), variance: unnormalized.div(total), total };
    const lastOverNew = this.seen / n;
    const variance = this.variance
      .mul(this.seen)
      .add(unnormalized)
      .add(
        lastSum
          .div(lastOverNew)
          .sub(newSum)
          .square()
          .mul(lastOverNew / total),
      )
      .div(total);
    return { mean: lastSum.add(newSum).div(total), variance, total };
  }
}

/** scikit-learn's svd_flip with the decision on Vt: the largest-magnitude entry of each row of Vt is positive. */
function flipSigns({ U, S, Vt }: { U: Tensor; S: Tensor; Vt: Tensor }): { U: Tensor; S: Tensor; Vt: Tensor } {
  const signs = Vt.gather(1, Vt.abs().argmax(1).unsqueeze(1)).sign(); // [k, 1]
  return { U: U.mul(signs.narrow(0, 0, U.shape[1]).T), S, Vt: Vt.mul(signs) };
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
   * as PEFT re-seeds with 42) or "exact".
   */
  svd?: "lowrank" | "exact";
  /** The random source of each low-rank SVD. Default seededRandom(42) afresh for every call. */
  random?: () => RandomSource;
  /** Stop with an error after this many batches without convergence. Default 1000. */
  maxBatches?: number;
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

/**
 * The EVA calibration loop as a state machine, so the caller owns the model: ask next() which
 * layers need inputs (null when all have converged), run the next calibration batch (cycling
 * through them), and hand the layers' input rows (padding and −100-label positions removed) to
 * feed(). result() then gives A and the redistributed rank of every layer.
 */
export class EvaState {
  private readonly pcas = new Map<string, IncrementalPca>();
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
      const k = this.maxComponents.get(name)!;
      this.pcas.set(name, new IncrementalPca(k, this.thinSvd(2 * k)));
      this.converged.set(name, new Array(k).fill(false));
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

  private thinSvd(q: number): ThinSvd {
    if (this.o.svd === "exact")
      return (X) => {
        const { U, S, Vh } = torch.svd(X);
        return flipSigns({ U, S, Vt: Vh });
      };
    return (X) => {
      const { U, S, V } = svdLowrank(X, q, 4, (this.o.random ?? (() => seededRandom(42)))());
      return flipSigns({ U, S, Vt: V.T });
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

  /** One batch: the input rows [n, in] of each layer next() asked for (fit each, then endBatch). */
  feed(inputs: ReadonlyMap<string, Tensor>): void {
    for (const name of this.hookLayers()) {
      if (!this.active.get(name)) continue;
      const X = inputs.get(name);
      if (!X) throw new Error(`EVA: the batch has no inputs for ${name}`);
      this.fit(name, X);
    }
    this.endBatch();
  }

  /**
   * One layer's input rows [n, in] of the current batch, for a layer next() asked for: a caller
   * that captures inputs during the forward hands each layer's rows over at once, and no batch's
   * rows of every layer need be held together.
   */
  fit(name: string, X: Tensor): void {
    const pca = this.pcas.get(name);
    if (!pca) throw new Error(`EVA: ${name} is not a fitted layer (it shares another's inputs, or is no target)`);
    if (!this.active.get(name)) return;
    if (X.shape[0] < pca.nComponents) return; // PEFT skips batches with fewer rows than components
    const previous = pca.components?.clone() ?? null;
    torch.tidy(() => pca.partialFit(X.to("float32")));
    if (!previous) return;
    this.converged.set(
      name,
      torch.tidy(() => cosineRows(pca.components!, previous).map((c) => c >= (this.o.tau ?? 0.99))),
    );
    previous.dispose();
  }

  /** Ends the current batch (after fit for each layer): the rank budget is redistributed once every layer has components. */
  endBatch(): void {
    this.batches++;
    if ([...this.pcas.values()].every((p) => p.components)) this.rankDistribution = this.distribute();
  }

  /** The rank budget Σ r given out component by component, largest explained variance first. */
  private distribute(): Map<string, number> {
    const order = [...this.hookLayers(), ...this.layers.filter((name) => this.shared.has(name))];
    const entries: { layer: string; ratio: number }[] = [];
    for (const layer of order) {
      const ratios = this.pcas.get(this.hookOf(layer))!.explainedVarianceRatio!;
      const k = this.maxComponents.get(this.hookOf(layer))!;
      for (const ratio of Array.from(ratios.narrow(0, 0, k).to("float64").data() as Float64Array)) entries.push({ layer, ratio });
    }
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
      if (!this.converged.get(hook)!.slice(0, rank).every(Boolean))
        throw new Error(`EVA: ${name} has not converged; call next() until it returns null`);
      const pca = this.pcas.get(hook)!;
      const A = torch.tidy(() => {
        let u = pca.components!.narrow(0, 0, rank);
        if (this.o.whiten) u = u.div(pca.singularValues!.narrow(0, 0, rank).sqrt().unsqueeze(1));
        return u.to("float32").contiguous();
      });
      const r = this.o.rank(name);
      const alpha = rank !== r && (this.o.adjustScalingFactors ?? true) ? this.o.alpha * (rank / r) : this.o.alpha;
      out.set(name, { A, rank, alpha });
    }
    return out;
  }

  dispose(): void {
    for (const p of this.pcas.values()) p.dispose();
  }
}

/** Cosine similarity of matching rows, as torch.nn.functional.cosine_similarity (eps 1e-8). */
function cosineRows(X: Tensor, Y: Tensor): number[] {
  const unit = (t: Tensor) => t.to("float64").div(t.to("float64").norm(2, 1, true).clamp(1e-8));
  return Array.from(unit(X).mul(unit(Y)).sum(1).data() as Float64Array);
}
