// LoRA: y = W x + s · B A x beside a frozen linear layer, with A (r × in), B (out × r), s = α / r
// (α / √r with rsLoRA). Factors are kept in float32 whatever the base dtype, as PEFT does when
// the base is half precision and autocast is off. With DoRA a trained magnitude m (one per output)
// rescales each row of W + s·B·A to length m.
import {
  type LoraAdapterConfig,
  type LoraFactors,
  type LoraWeights,
  alphaFor,
  isTargetModule,
  loraConfig,
  loraScale,
  rankFor,
  targetNames,
  targetedModules,
} from "../hf/peft.js";
import * as torch from "../torch/index.js";
import type { Tensor } from "../torch/index.js";
import type { ArmAdapter } from "./arms.js";
import type { Linear } from "./linear.js";
import type { CausalLM } from "./qwen2.js";

/** The inits addLora makes itself; every other init is a ModuleInit (lowrank/inits). */
export type LoraInit = "random" | "gaussian";

/** What an init gives one module: factors A (r × in), B (out × r), and what else it changes. */
export interface InitFactors extends LoraFactors {
  /** The new base weight (out × in), for inits that move part of W into the adapter (PiSSA: W − s·B·A). */
  residual?: Tensor;
  /** The module's lora_alpha when the init changed its rank (EVA: α · new rank / r); default the settings' α. */
  alpha?: number;
  /** B stays fixed and only A trains (MiCA). */
  frozenB?: boolean;
}

/**
 * An init computed per targeted module from its path and base weight (out × in); null leaves that
 * module without an adapter (EVA can give a layer rank 0). Called under noGrad inside tidy.
 */
export type ModuleInit = (path: string, weight: Tensor) => InitFactors | null;

export interface LoraSettings {
  rank: number;
  alpha: number;
  dropout?: number;
  rslora?: boolean;
  /** Module names (PEFT's target_modules, e.g. ["q_proj", "v_proj"]) or "all-linear". */
  targets: string[] | "all-linear";
  /** DoRA (PEFT's use_dora): a trained magnitude per output row. */
  dora?: boolean;
}

/**
 * What an init took out of the base weight (W ← W − s·B₀·A₀): B₀ and A₀ as CPU float32 copies, and
 * how exactly the base as stored plus s·B₀·A₀ gives W back, ‖W − (W' + s·B₀·A₀)‖_F / ‖W‖_F
 * (rounding of W' to the model's dtype; LoftQ's quantization error, which its factors only approximate).
 */
export interface BaseRewrite extends LoraFactors {
  error: number;
}

export class LoRA {
  training = true;
  readonly A: Tensor;
  readonly B: Tensor;
  readonly alpha: number;
  readonly rslora: boolean;
  readonly scaling: number;
  readonly dropout: number;
  /** DoRA's magnitude vector m [out] (float32), or null for plain LoRA. */
  readonly magnitude: Tensor | null;
  /** Set when the init rewrote the base weight (see BaseRewrite). */
  readonly rewrite: BaseRewrite | null;

  constructor(o: {
    A: Tensor;
    B: Tensor;
    alpha: number;
    rslora?: boolean;
    dropout?: number;
    magnitude?: Tensor | null;
    rewrite?: BaseRewrite | null;
  }) {
    this.A = o.A;
    this.B = o.B;
    this.alpha = o.alpha;
    this.rslora = o.rslora ?? false;
    this.scaling = loraScale(o.alpha, o.A.size(0), this.rslora);
    this.dropout = o.dropout ?? 0;
    this.magnitude = o.magnitude ?? null;
    this.rewrite = o.rewrite ?? null;
  }

  get rank(): number {
    return this.A.size(0);
  }

  /**
   * s · B A x, in x's dtype. With half-precision activations the float32 factors are cast for the
   * pass and the products run in that precision, as under autocast: no float32 copy of x is kept
   * for backward, and the gradients still land in the float32 factors.
   */
  forward(x: Tensor): Tensor {
    return torch.tidy(() => this.lowRank(this.dropout > 0 && this.training ? torch.dropout(x, this.dropout, true) : x));
  }

  private lowRank(h: Tensor): Tensor {
    if (h.dtype !== this.A.dtype) return torch.linear(torch.linear(h, this.A.to(h.dtype)), this.B.mul(this.scaling).to(h.dtype));
    return torch.linear(torch.linear(h, this.A), this.B).mul(this.scaling);
  }

  /**
   * The layer's output with DoRA, as PEFT computes it: with n = ‖W + s·B·A‖ per output row (B·A
   * detached and n itself not differentiated, DoRA §4.3) and g = m / n,
   *   y = x Wᵀ + b + (g − 1)·(x' Wᵀ) + g·s·B A x'    (x' = dropout(x) while training, else x),
   * which is g ⊙ (W + s·B·A) x + b without dropout.
   */
  doraForward(x: Tensor, weight: Tensor, bias: Tensor | null): Tensor {
    const m = this.magnitude;
    if (!m) throw new Error("doraForward: this adapter has no magnitude vector");
    return torch.tidy(() => {
      const result = torch.linear(x, weight, bias);
      const dropped = this.dropout > 0 && this.training ? torch.dropout(x, this.dropout, true) : x;
      const base = dropped !== x ? torch.linear(dropped, weight) : bias ? result.sub(bias) : result;
      const g = m.div(this.weightNorm(weight)).to(x.dtype);
      return result.add(g.sub(1).mul(base)).add(g.mul(this.lowRank(dropped)));
    });
  }

  /** ‖W + s·B·A‖ of each output row, float32, without a graph (DoRA's column norm in the paper's layout). */
  weightNorm(weight: Tensor): Tensor {
    return torch.noGrad(() => torch.tidy(() => weight.to("float32").add(this.delta()).norm(2, 1)));
  }

  /** ΔW = s · B A (out × in), float32. */
  delta(): Tensor {
    return torch.tidy(() => this.B.matmul(this.A).mul(this.scaling));
  }

  /** The weight this adapter and W merge into (float32): W + s·B·A, with DoRA m ⊙ (W + s·B·A) / ‖W + s·B·A‖. */
  merged(weight: Tensor): Tensor {
    return torch.noGrad(() =>
      torch.tidy(() => {
        const sum = weight.to("float32").add(this.delta());
        return this.magnitude ? sum.mul(this.magnitude.div(sum.norm(2, 1)).unsqueeze(1)) : sum;
      }),
    );
  }

  /** The trainable tensors (B is frozen under MiCA; DoRA adds m). */
  parameters(): Tensor[] {
    return [this.A, this.B, ...(this.magnitude ? [this.magnitude] : [])].filter((p) => p.requiresGrad);
  }

  /** Frees the factors, m and the rewrite record. */
  dispose(): void {
    torch.dispose([this.A, this.B, this.magnitude, this.rewrite?.A, this.rewrite?.B]);
  }
}

/**
 * The PEFT adapter config for these settings. init_lora_weights stays true whatever our init was:
 * the saved factors are a plain LoRA (or DoRA), and PEFT re-runs a named init (e.g. "pissa", which
 * rewrites the base weights) when it loads one.
 */
export function adapterConfigFor(s: LoraSettings, baseModel: string): LoraAdapterConfig {
  return loraConfig({
    r: s.rank,
    loraAlpha: s.alpha,
    loraDropout: s.dropout ?? 0,
    useRslora: s.rslora ?? false,
    useDora: s.dora ?? false,
    targetModules: targetNames(s.targets),
    baseModel,
  });
}

function checkSettings(s: LoraSettings, inF: number, outF: number, path: string): void {
  if (!Number.isInteger(s.rank) || s.rank < 1) throw new Error(`LoRA rank must be a positive integer, got ${s.rank}`);
  if (s.rank > Math.min(inF, outF))
    throw new Error(
      `LoRA rank ${s.rank} is larger than ${path} allows (min(in ${inF}, out ${outF}) = ${Math.min(inF, outF)}): use a smaller --lora-rank`,
    );
  if (!(s.alpha > 0)) throw new Error(`LoRA alpha must be > 0, got ${s.alpha}`);
  if (s.dropout !== undefined && !(s.dropout >= 0 && s.dropout < 1)) throw new Error(`LoRA dropout must be in [0, 1), got ${s.dropout}`);
}

/**
 * Adds LoRA factors to the targeted projections and returns them by module path.
 * random: A ~ U(±1/√in) (PEFT's Kaiming-uniform with a = √5), B = 0. gaussian: A ~ N(0, 1/r), B = 0
 * (both from torch's global generator). A ModuleInit: the factors it computes from the module's
 * weight; its residual (if any) replaces the weight, and what it took out is recorded
 * (LoRA.rewrite). With DoRA, m starts as ‖W + s·B·A‖ per row (of the weight after the init), as in PEFT.
 */
export function addLora(model: CausalLM, s: LoraSettings, init: LoraInit | ModuleInit): Map<string, LoRA> {
  const made = initModules(model, s, init, (linear, f) => {
    const rewrite = f.residual ? rewriteBase(linear, f.residual, new LoRA({ A: f.A, B: f.B, alpha: f.alpha, rslora: s.rslora })) : null;
    return { rewrite, magnitudeOf: linear.weight };
  });
  const all = model.linears();
  for (const [path, lora] of made) all.get(path)!.lora = lora;
  return made;
}

/**
 * An arm's adapters for concurrent training (arms.ts), computed as addLora computes them but
 * leaving the model as it is. Where the init would replace W by its residual W − s·B₀·A₀ (PiSSA,
 * OLoRA, MiLoRA, …: every init whose residual is that), the arm gets a frozen correction −s·B₀·A₀
 * instead (copies of the initial factors), so arms share W; its LoRA records the rewrite as addLora
 * does, so it is saved for the original base the same way, with no conversion error (the arm's
 * model is W − s·B₀·A₀ + s·B·A exactly as saved). An init whose residual is something else (LoftQ)
 * or DoRA cannot be an arm.
 */
export function armAdapters(model: CausalLM, s: LoraSettings, init: LoraInit | ModuleInit): Map<string, ArmAdapter> {
  if (s.dora) throw new Error("armAdapters: a DoRA adapter cannot be a concurrent arm (its magnitude needs the arm's own W)");
  const adapters = new Map<string, ArmAdapter>();
  const corrections = new Map<string, LoRA>();
  let loras: Map<string, LoRA>;
  try {
    loras = initModules(model, s, init, (_, f, path) => {
      if (!f.residual) return { rewrite: null, magnitudeOf: null };
      const frozen = (t: Tensor) => torch.keep(t.detach().to({ dtype: "float32", copy: true }));
      const correction = new LoRA({ A: frozen(f.A), B: frozen(f.B), alpha: -f.alpha, rslora: s.rslora });
      corrections.set(path, correction);
      const cpu = (t: Tensor) => torch.keep(t.to({ dtype: "float32", device: "cpu", copy: true }));
      return { rewrite: { A: cpu(f.A), B: cpu(f.B), error: 0 }, magnitudeOf: null };
    });
  } catch (e) {
    for (const c of corrections.values()) c.dispose();
    throw e;
  }
  for (const [path, lora] of loras) adapters.set(path, { lora, correction: corrections.get(path) ?? null });
  return adapters;
}

/**
 * Each targeted module's new LoRA (kept, float32, trainable), by path: the init's factors, with
 * what `finish` says about the module (the base rewrite it recorded, and the weight DoRA's
 * magnitude starts from). Modules the init leaves without an adapter (EVA's rank 0) are left out.
 */
function initModules(
  model: CausalLM,
  s: LoraSettings,
  init: LoraInit | ModuleInit,
  finish: (
    linear: Linear,
    f: { A: Tensor; B: Tensor; alpha: number; residual: Tensor | null },
    path: string,
  ) => { rewrite: BaseRewrite | null; magnitudeOf: Tensor | null },
): Map<string, LoRA> {
  const moduleInit: ModuleInit = typeof init === "function" ? init : (_, weight) => randomFactors(init, s.rank, weight);
  const made = new Map<string, LoRA>();
  const all = model.linears();
  try {
    for (const path of targetPaths(model, s)) {
      const linear = all.get(path)!;
      checkSettings(s, linear.inFeatures, linear.outFeatures, path);
      const out = torch.noGrad(() =>
        torch.tidy(() => {
          const f = moduleInit(path, linear.weight);
          if (!f) return null;
          checkFactors(path, f, linear.inFeatures, linear.outFeatures);
          const own = (t: Tensor) => torch.keep(t.to({ dtype: "float32", device: linear.weight.device, copy: true }));
          const [A, B, alpha] = [own(f.A), own(f.B), f.alpha ?? s.alpha];
          const { rewrite, magnitudeOf } = finish(linear, { A, B, alpha, residual: f.residual ?? null }, path);
          const magnitude = s.dora && magnitudeOf ? torch.keep(new LoRA({ A, B, alpha, rslora: s.rslora }).weightNorm(magnitudeOf)) : null;
          return {
            lora: new LoRA({ A, B, alpha, rslora: s.rslora, dropout: s.dropout, magnitude, rewrite }),
            frozenB: f.frozenB ?? false,
          };
        }),
      );
      if (!out) continue;
      const { lora, frozenB } = out;
      lora.A.requiresGrad_();
      if (!frozenB) lora.B.requiresGrad_();
      lora.magnitude?.requiresGrad_();
      made.set(path, lora);
    }
  } catch (e) {
    // An init that fails part-way (EVA without a module's result, …) leaves none of its adapters behind.
    for (const lora of made.values()) lora.dispose();
    throw e;
  }
  if (made.size === 0)
    throw new Error(`no module matches the LoRA targets ${JSON.stringify(s.targets)}: use names like q_proj,v_proj or all-linear`);
  return made;
}

/** Replaces the layer's weight by the init's residual W′ and records what left it (see BaseRewrite). */
function rewriteBase(linear: Linear, residual: Tensor, lora: LoRA): BaseRewrite {
  return torch.tidy(() => {
    const original = linear.weight.to({ dtype: "float32", copy: true });
    linear.weight.copy_(residual.to(linear.weight.dtype));
    const rebuilt = linear.weight.to("float32").add(lora.delta());
    const cpu = (t: Tensor) => torch.keep(t.to({ device: "cpu", copy: true }));
    return { A: cpu(lora.A), B: cpu(lora.B), error: original.sub(rebuilt).norm().item() / original.norm().item() };
  });
}

/** The paths of the projections these settings target, in model order. */
export function targetPaths(model: CausalLM, s: LoraSettings): string[] {
  const config = adapterConfigFor(s, "");
  return [...model.linears().keys()].filter((path) => isTargetModule(config, path));
}

/** The same adapters with DoRA's magnitude added, m = ‖W + s·B·A‖ per row as PEFT starts it (replaces each layer's adapter). */
export function withMagnitudes(model: CausalLM, loras: Map<string, LoRA>): Map<string, LoRA> {
  const linears = model.linears();
  const out = new Map<string, LoRA>();
  for (const [path, l] of loras) {
    const linear = linears.get(path)!;
    const magnitude = torch.keep(l.weightNorm(linear.weight)).requiresGrad_();
    const { A, B, alpha, rslora, dropout, rewrite } = l;
    linear.lora = new LoRA({ A, B, alpha, rslora, dropout, magnitude, rewrite });
    out.set(path, linear.lora);
  }
  return out;
}

function randomFactors(init: LoraInit, r: number, weight: Tensor): InitFactors {
  const [outF, inF] = weight.shape;
  const A = torch.empty([r, inF], { device: weight.device });
  if (init === "gaussian") A.normal_(0, 1 / r);
  else A.uniform_(-1 / Math.sqrt(inF), 1 / Math.sqrt(inF));
  return { A, B: torch.zeros([outF, r], { device: weight.device }) };
}

function checkFactors(path: string, f: InitFactors, inF: number, outF: number): void {
  const r = f.A.shape[0];
  const shapes = (A: number[], B: number[], W?: number[]) => `A [${A}], B [${B}]${W ? `, residual [${W}]` : ""}`;
  const want = shapes([r, inF], [outF, r], f.residual && [outF, inF]);
  const got = shapes(f.A.shape, f.B.shape, f.residual?.shape);
  if (want !== got) throw new Error(`${path}: the init gave ${got}, want ${want}`);
}

/**
 * Attaches an adapter's factors (PEFT layout) to the model, as trainable copies, on exactly the
 * modules PEFT adapts with this config (target_modules, exclude_modules, layers_to_transform,
 * layers_pattern) and with PEFT's per-module rank and scale (rank_pattern, alpha_pattern,
 * use_rslora); with use_dora, each module's magnitude vector too. Each of those modules must have
 * factors of matching shapes, and no other may.
 */
export function loadLora(model: CausalLM, config: LoraAdapterConfig, weights: LoraWeights, trainable = true): Map<string, LoRA> {
  const loras = loraFromAdapter(model, config, weights, trainable);
  const all = model.linears();
  for (const [path, lora] of loras) all.get(path)!.lora = lora;
  return loras;
}

/** The LoRAs loadLora would attach, checked as it checks them, without attaching them (an arm's, for concurrent training). */
export function loraFromAdapter(model: CausalLM, config: LoraAdapterConfig, weights: LoraWeights, trainable = true): Map<string, LoRA> {
  const linears = model.linears();
  for (const [path, { A, B, magnitude }] of weights) {
    const linear = linears.get(path);
    if (!linear) throw new Error(`adapter module ${path} does not exist in the base model (is it the right --base-model?)`);
    const r = rankFor(config, path);
    const want = { A: [r, linear.inFeatures], B: [linear.outFeatures, r] };
    if (`${A.shape}` !== `${want.A}` || `${B.shape}` !== `${want.B}`)
      throw new Error(
        `adapter ${path}: lora_A [${A.shape}] / lora_B [${B.shape}] do not fit the base layer (want [${want.A}] / [${want.B}])`,
      );
    if (config.use_dora !== Boolean(magnitude))
      throw new Error(
        `adapter ${path}: ${config.use_dora ? "use_dora is true but the module has no lora_magnitude_vector" : "has a lora_magnitude_vector but use_dora is false"}`,
      );
    if (magnitude && `${magnitude.shape}` !== `${linear.outFeatures}`)
      throw new Error(
        `adapter ${path}: lora_magnitude_vector [${magnitude.shape}] does not fit the base layer (want [${linear.outFeatures}])`,
      );
  }
  const targeted = targetedModules(config, model.config.numHiddenLayers);
  const stray = [...weights.keys()].find((path) => !targeted.includes(path));
  if (stray !== undefined)
    throw new Error(
      `adapter has factors for ${stray}, which its config does not target (PEFT would ignore them): the config and weights do not belong together`,
    );
  const missing = targeted.filter((path) => !weights.has(path));
  if (missing.length > 0) {
    const more = missing.length > 1 ? ` (and ${missing.length - 1} more)` : "";
    throw new Error(
      `adapter config targets ${missing[0]}${more}, but the adapter has no factors for it (PEFT would give it fresh ones): is it the right --base-model?`,
    );
  }
  const added = new Map<string, LoRA>();
  for (const [path, { A, B, magnitude }] of weights) {
    const linear = linears.get(path)!;
    const device = linear.weight.device;
    const own = (t: Tensor) => {
      // A copy made without a graph: one handle, no detached view beside it to keep its storage alive.
      const copy = torch.keep(torch.noGrad(() => t.to({ dtype: "float32", device, copy: true })));
      return trainable ? copy.requiresGrad_() : copy;
    };
    added.set(
      path,
      new LoRA({
        A: own(A),
        B: own(B),
        alpha: alphaFor(config, path),
        rslora: config.use_rslora,
        dropout: config.lora_dropout,
        magnitude: magnitude ? own(magnitude) : null,
      }),
    );
  }
  return added;
}

/** A snapshot of the factors (and DoRA magnitudes) as PEFT stores them (float32, CPU copies: training goes on in place). */
export function loraWeights(loras: Map<string, LoRA>): LoraWeights {
  const snapshot = (t: Tensor) => torch.keep(torch.noGrad(() => t.to({ device: "cpu", copy: true })));
  const out: LoraWeights = new Map();
  for (const [path, l] of loras)
    out.set(path, { A: snapshot(l.A), B: snapshot(l.B), ...(l.magnitude ? { magnitude: snapshot(l.magnitude) } : {}) });
  return out;
}

/**
 * The adapter to save, for the original base model, and its config. A module whose init rewrote
 * its base weight (W' = W − s·B₀·A₀) is saved as PEFT converts PiSSA: on the original W the
 * trained model is W' + s·B·A = W + s·(B·A − B₀·A₀) = W + s'·[B, −B₀]·[A; A₀], a LoRA of rank 2r
 * with α' = 2α (√2·α with rsLoRA) so that s' = s; DoRA's m is unchanged, as its norm is of the same
 * matrix. Ranks and alphas that differ from the config's r and lora_alpha (EVA's redistribution)
 * go into rank_pattern / alpha_pattern under the module's path, and targeted modules left without
 * an adapter (EVA's rank 0) into exclude_modules, as PEFT records an EVA adapter.
 */
export function adapterToSave(
  model: CausalLM,
  loras: Map<string, LoRA>,
  s: LoraSettings,
  baseModel: string,
): { config: LoraAdapterConfig; weights: LoraWeights } {
  const factor = (l: LoRA) => (l.rewrite ? { rank: 2, alpha: s.rslora ? Math.SQRT2 : 2 } : { rank: 1, alpha: 1 });
  const converted = [...loras.values()].some((l) => l.rewrite);
  const base = { rank: (converted ? 2 : 1) * s.rank, alpha: (converted ? (s.rslora ? Math.SQRT2 : 2) : 1) * s.alpha };
  const config = adapterConfigFor({ ...s, ...base, dora: [...loras.values()].some((l) => l.magnitude) }, baseModel);
  const weights: LoraWeights = new Map();
  for (const [path, l] of loras) {
    const f = factor(l);
    const [rank, alpha] = [f.rank * l.rank, f.alpha * l.alpha];
    if (rank !== base.rank) config.rank_pattern[path] = rank;
    if (alpha !== base.alpha) config.alpha_pattern[path] = alpha;
    const cpu = (t: Tensor) => torch.noGrad(() => t.to({ device: "cpu", copy: true }));
    const { A, B } = l.rewrite
      ? torch.tidy(() => ({ A: torch.cat([cpu(l.A), l.rewrite!.A], 0), B: torch.cat([cpu(l.B), l.rewrite!.B.neg()], 1) }))
      : { A: cpu(l.A), B: cpu(l.B) };
    weights.set(path, { A: torch.keep(A), B: torch.keep(B), ...(l.magnitude ? { magnitude: torch.keep(cpu(l.magnitude)) } : {}) });
  }
  const bare = [...model.linears().keys()].filter((path) => isTargetModule(config, path) && !loras.has(path));
  if (bare.length > 0) config.exclude_modules = bare;
  return { config, weights };
}

export function loraParameters(loras: Map<string, LoRA>): Tensor[] {
  return [...loras.values()].flatMap((l) => l.parameters());
}

export function setLoraTraining(loras: Map<string, LoRA>, on: boolean): void {
  for (const l of loras.values()) l.training = on;
}

/** Folds every adapter into its base weight (W ← W + s·B A, or DoRA's rescaled sum) and removes it. */
export function mergeLora(model: CausalLM): number {
  let merged = 0;
  torch.noGrad(() => {
    for (const linear of model.linears().values()) {
      if (!linear.lora) continue;
      const lora = linear.lora;
      torch.tidy(() => linear.weight.copy_(lora.merged(linear.weight).to(linear.weight.dtype)));
      linear.lora = null;
      merged++;
    }
  });
  return merged;
}

/** Removes every adapter from the model and frees it: factors trained or frozen, m, the rewrite record (the base weights stay as they are). */
export function detachLora(model: CausalLM): void {
  for (const linear of model.linears().values()) {
    linear.lora?.dispose();
    linear.lora = null;
  }
}
