// AdamW with the exact update of torch.optim.AdamW (single-tensor path, foreach=False,
// amsgrad=False, maximize=False): the same libtorch ops in the same order, so float32 results
// agree with PyTorch to rounding; on CUDA, PyTorch's fused kernel (fused=True) instead. State is
// kept per parameter, as PyTorch does, so a parameter that has no gradient at some step keeps its
// own (smaller) step count.
import * as torch from "../torch/index.js";
import type { Tensor } from "../torch/index.js";

export interface AdamWOptions {
  lr?: number;
  betas?: [number, number];
  eps?: number;
  weightDecay?: number;
  /** Use the fused CUDA kernel: default when every parameter is float32 on CUDA and the build has it. */
  fused?: boolean;
}

export interface AdamWHyper {
  lr: number;
  betas: [number, number];
  eps: number;
  weightDecay: number;
}

/** Per-parameter state; null for a parameter that has never had a gradient. */
export interface AdamWParamState {
  step: number;
  expAvg: Tensor;
  expAvgSq: Tensor;
}

/**
 * A snapshot of the optimizer. stateDict() returns copies that the caller owns (dispose them);
 * loadStateDict() copies from its argument, which the caller still owns afterwards.
 */
export interface AdamWStateDict {
  hyper: AdamWHyper;
  state: (AdamWParamState | null)[];
}

export class AdamW {
  readonly params: readonly Tensor[];
  /** Each parameter's device, read once (a tensor's device never changes). */
  private readonly devices: readonly string[];
  private hyper: AdamWHyper;
  private state: (AdamWParamState | null)[];

  constructor(params: Tensor[], options: AdamWOptions = {}) {
    const hyper: AdamWHyper = {
      lr: options.lr ?? 1e-3,
      betas: options.betas ?? [0.9, 0.999],
      eps: options.eps ?? 1e-8,
      weightDecay: options.weightDecay ?? 0.01,
    };
    validateHyper(hyper);
    params.forEach((p, i) => {
      if (!p.requiresGrad) throw new Error(`AdamW: parameter ${i} does not require gradients`);
    });
    if (new Set(params).size !== params.length) throw new Error("AdamW: a parameter appears more than once");
    this.params = [...params];
    this.devices = params.map((p) => p.device);
    this.hyper = hyper;
    this.state = params.map(() => null);
    if (options.fused && !this.fusedPossible())
      throw new Error("AdamW: fused needs float32 parameters on CUDA and a libtorch ≥ 2.5 CUDA build");
    this.fusedChoice = options.fused;
  }

  get lr(): number {
    return this.hyper.lr;
  }

  setLr(lr: number): void {
    if (!(lr >= 0) || !Number.isFinite(lr)) throw new Error(`AdamW: invalid learning rate ${lr}`);
    this.hyper.lr = lr;
  }

  /** Steps taken by parameter i (0 if it never had a gradient). */
  stepCount(i = 0): number {
    return this.state[i]?.step ?? 0;
  }

  /**
   * One update of every parameter that has a gradient; the others are left untouched. On CUDA
   * (libtorch ≥ 2.5) all of them go through PyTorch's fused AdamW kernel at once.
   */
  step(): void {
    if (this.fused) {
      this.fusedStep();
      return;
    }
    const {
      lr,
      betas: [beta1, beta2],
      eps,
      weightDecay,
    } = this.hyper;
    torch.noGrad(() => {
      for (const [i, param] of this.params.entries())
        torch.tidy(() => {
          const grad = param.grad;
          if (grad === null) return;
          const s = this.stateOf(i);
          s.step += 1;
          if (weightDecay !== 0) param.mul_(1 - lr * weightDecay);
          s.expAvg.lerp_(grad, 1 - beta1);
          s.expAvgSq.mul_(beta2).addcmul_(grad, grad, 1 - beta2);
          const biasCorrection1 = 1 - beta1 ** s.step;
          const biasCorrection2 = 1 - beta2 ** s.step;
          const stepSize = lr / biasCorrection1;
          const denom = s.expAvgSq.sqrt().div(Math.sqrt(biasCorrection2)).add_(eps);
          param.addcdiv_(s.expAvg, denom, -stepSize);
        });
    });
  }

  private stateOf(i: number): AdamWParamState {
    const s = this.state[i] ?? newState(this.params[i]);
    this.state[i] = s;
    return s;
  }

  /**
   * One step of each optimizer, as step() each: those that use the fused kernel with the same
   * hyperparameters (concurrent arms at one learning rate) share its calls, so their number does
   * not grow with the optimizers.
   */
  static stepAll(optimizers: readonly AdamW[]): void {
    const groups = new Map<string, AdamW[]>();
    for (const o of optimizers) {
      if (!o.fused) {
        o.step();
        continue;
      }
      const key = `${JSON.stringify(o.hyper)} ${o.devices[0]}`; // one kernel call is one device's
      groups.set(key, [...(groups.get(key) ?? []), o]);
    }
    for (const group of groups.values()) AdamW.fusedSteps(group);
  }

  private fusedStep(): void {
    AdamW.fusedSteps([this]);
  }

  // torch.optim.AdamW(fused=True) over the parameters of optimizers with the same hyperparameters:
  // the step counts go to the kernel as float32 device scalars, one per distinct count (all
  // parameters share one in a LoRA run), written without a host sync.
  private static fusedSteps(optimizers: readonly AdamW[]): void {
    const { lr, betas, eps, weightDecay } = optimizers[0].hyper;
    torch.noGrad(() =>
      torch.tidy(() => {
        const a: torch.FusedAdamWArgs = { params: [], grads: [], expAvgs: [], expAvgSqs: [], steps: [], lr, betas, weightDecay, eps };
        const stepTensors = new Map<string, Tensor>();
        for (const o of optimizers)
          o.params.forEach((param, i) => {
            const grad = param.grad;
            if (grad === null) return;
            const s = o.stateOf(i);
            s.step += 1;
            const device = o.devices[i];
            const key = `${device} ${s.step}`;
            let step = stepTensors.get(key);
            if (!step) {
              step = torch.full([], s.step, { dtype: "float32", device });
              stepTensors.set(key, step);
            }
            a.params.push(param);
            a.grads.push(grad);
            a.expAvgs.push(s.expAvg);
            a.expAvgSqs.push(s.expAvgSq);
            a.steps.push(step);
          });
        if (a.params.length > 0) torch.fusedAdamW_(a);
      }),
    );
  }

  private get fused(): boolean {
    this.fusedChoice ??= this.fusedPossible();
    return this.fusedChoice;
  }
  private fusedChoice: boolean | undefined;
  private fusedPossible(): boolean {
    return this.params.every((p, i) => this.devices[i].startsWith("cuda") && p.dtype === "float32") && torch.fastKernelsAvailable();
  }

  /** Drops every gradient (set_to_none, PyTorch's default). */
  zeroGrad(): void {
    for (const p of this.params) p.grad = null;
  }

  stateDict(): AdamWStateDict {
    return torch.noGrad(() => ({
      hyper: { ...this.hyper, betas: [this.hyper.betas[0], this.hyper.betas[1]] },
      state: this.state.map((s) => (s ? { step: s.step, expAvg: s.expAvg.clone(), expAvgSq: s.expAvgSq.clone() } : null)),
    }));
  }

  /** Restores hyperparameters (lr included, as PyTorch does) and moments, on each parameter's device and dtype. */
  loadStateDict(dict: AdamWStateDict): void {
    validateHyper(dict.hyper);
    if (dict.state.length !== this.params.length)
      throw new Error(`AdamW.loadStateDict: state has ${dict.state.length} parameters, the optimizer ${this.params.length}`);
    dict.state.forEach((s, i) => {
      if (s === null) return;
      const p = this.params[i];
      if (!Number.isInteger(s.step) || s.step < 0) throw new Error(`AdamW.loadStateDict: parameter ${i} has invalid step ${s.step}`);
      for (const [name, t] of [
        ["expAvg", s.expAvg],
        ["expAvgSq", s.expAvgSq],
      ] as const)
        if (String(t.shape) !== String(p.shape))
          throw new Error(`AdamW.loadStateDict: parameter ${i} ${name} has shape [${t.shape}], the parameter [${p.shape}]`);
    });
    // Copy first, then free the old state, so a failed copy leaves the optimizer as it was.
    const copied = torch.noGrad(() =>
      dict.state.map((s, i) => {
        if (s === null) return null;
        const p = this.params[i];
        const copyLike = (t: Tensor) => torch.keep(t.to({ dtype: p.dtype, device: p.device, copy: true }));
        return { step: s.step, expAvg: copyLike(s.expAvg), expAvgSq: copyLike(s.expAvgSq) };
      }),
    );
    this.disposeState();
    this.hyper = { ...dict.hyper, betas: [dict.hyper.betas[0], dict.hyper.betas[1]] };
    this.state = copied;
  }

  /** Frees the moment tensors; the optimizer starts from scratch afterwards. */
  dispose(): void {
    this.disposeState();
    this.state = this.params.map(() => null);
  }

  private disposeState(): void {
    for (const s of this.state) if (s) torch.dispose([s.expAvg, s.expAvgSq]);
  }
}

function newState(p: Tensor): AdamWParamState {
  const zeros = () => torch.keep(torch.zeros(p.shape, { dtype: p.dtype, device: p.device }));
  return { step: 0, expAvg: zeros(), expAvgSq: zeros() };
}

function validateHyper(h: AdamWHyper): void {
  const [beta1, beta2] = h.betas;
  if (!(h.lr >= 0) || !Number.isFinite(h.lr)) throw new Error(`AdamW: invalid learning rate ${h.lr}`);
  if (!(h.eps >= 0)) throw new Error(`AdamW: invalid eps ${h.eps}`);
  if (!(beta1 >= 0 && beta1 < 1)) throw new Error(`AdamW: invalid beta1 ${beta1}`);
  if (!(beta2 >= 0 && beta2 < 1)) throw new Error(`AdamW: invalid beta2 ${beta2}`);
  if (!(h.weightDecay >= 0)) throw new Error(`AdamW: invalid weight decay ${h.weightDecay}`);
}
