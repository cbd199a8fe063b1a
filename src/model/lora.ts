// LoRA: y = W x + s · B A x beside a frozen linear layer, with A (r × in), B (out × r), s = α / r
// (α / √r with rsLoRA). Factors are kept in float32 whatever the base dtype, as PEFT does when
// the base is half precision and autocast is off.
import {
  type LoraAdapterConfig,
  type LoraFactors,
  type LoraWeights,
  isTargetModule,
  loraConfig,
  loraScale,
  loraScaling,
  rankFor,
  targetNames,
  targetedModules,
} from "../hf/peft.js";
// The one upward import, until train/ passes the named inits as ModuleInit functions: "pissa"
// below resolves to lowrank/inits' PiSSA.
import { pissa } from "../lowrank/inits/weight.js";
import * as torch from "../torch/index.js";
import type { Tensor } from "../torch/index.js";
import type { CausalLM } from "./qwen2.js";

export type LoraInit = "random" | "gaussian" | "pissa";

/** What an init gives one module: factors A (r × in), B (out × r), and what else it changes. */
export interface InitFactors extends LoraFactors {
  /** The new base weight (out × in), for inits that move part of W into the adapter (PiSSA: W − s·B·A). */
  residual?: Tensor;
  /** The module's scaling when the init changed its rank and alpha (EVA); default the settings' s. */
  scaling?: number;
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
}

export class LoRA {
  training = true;

  constructor(
    readonly A: Tensor,
    readonly B: Tensor,
    readonly scaling: number,
    readonly dropout = 0,
  ) {}

  get rank(): number {
    return this.A.size(0);
  }

  /**
   * s · B A x, in x's dtype. With half-precision activations the float32 factors are cast for the
   * pass and the products run in that precision, as under autocast: no float32 copy of x is kept
   * for backward, and the gradients still land in the float32 factors.
   */
  forward(x: Tensor): Tensor {
    return torch.tidy(() => {
      let h = x;
      if (this.dropout > 0 && this.training) h = torch.dropout(h, this.dropout, true);
      if (x.dtype !== this.A.dtype) return torch.linear(torch.linear(h, this.A.to(x.dtype)), this.B.mul(this.scaling).to(x.dtype));
      return torch.linear(torch.linear(h, this.A), this.B).mul(this.scaling);
    });
  }

  /** ΔW = s · B A (out × in), float32. */
  delta(): Tensor {
    return torch.tidy(() => this.B.matmul(this.A).mul(this.scaling));
  }

  /** The trainable factors (B is frozen under MiCA). */
  parameters(): Tensor[] {
    return [this.A, this.B].filter((p) => p.requiresGrad);
  }
}

/**
 * The PEFT adapter config for these settings. init_lora_weights stays true whatever our init was:
 * the saved factors are a plain LoRA, and PEFT re-runs a named init (e.g. "pissa", which rewrites
 * the base weights) when it loads one.
 */
export function adapterConfigFor(s: LoraSettings, baseModel: string): LoraAdapterConfig {
  return loraConfig({
    r: s.rank,
    loraAlpha: s.alpha,
    loraDropout: s.dropout ?? 0,
    useRslora: s.rslora ?? false,
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
 * (both from torch's global generator). pissa, or any ModuleInit: the factors it computes from the
 * module's weight, whose residual (if any) replaces the weight.
 */
export function addLora(model: CausalLM, s: LoraSettings, init: LoraInit | ModuleInit): Map<string, LoRA> {
  const config = adapterConfigFor(s, "");
  const scaling = loraScale(s.alpha, s.rank, s.rslora ?? false);
  const moduleInit: ModuleInit =
    typeof init === "function"
      ? init
      : init === "pissa"
        ? (_, weight) => pissa(weight, { rank: s.rank, scaling })
        : (_, weight) => randomFactors(init, s.rank, weight);
  const added = new Map<string, LoRA>();
  for (const [path, linear] of model.linears()) {
    if (!isTargetModule(config, path)) continue;
    checkSettings(s, linear.inFeatures, linear.outFeatures, path);
    const factors = torch.noGrad(() =>
      torch.tidy(() => {
        const f = moduleInit(path, linear.weight);
        if (!f) return null;
        checkFactors(path, f, linear.inFeatures, linear.outFeatures);
        if (f.residual) linear.weight.copy_(f.residual.to(linear.weight.dtype));
        const own = (t: Tensor) => t.to({ dtype: "float32", device: linear.weight.device, copy: true });
        return { A: own(f.A), B: own(f.B), scaling: f.scaling ?? scaling, frozenB: f.frozenB ?? false };
      }),
    );
    if (!factors) continue;
    const A = torch.keep(factors.A.requiresGrad_());
    const B = torch.keep(factors.frozenB ? factors.B : factors.B.requiresGrad_());
    linear.lora = new LoRA(A, B, factors.scaling, s.dropout ?? 0);
    added.set(path, linear.lora);
  }
  if (added.size === 0)
    throw new Error(`no module matches the LoRA targets ${JSON.stringify(s.targets)}: use names like q_proj,v_proj or all-linear`);
  return added;
}

function randomFactors(init: "random" | "gaussian", r: number, weight: Tensor): InitFactors {
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
 * use_rslora). Each of those modules must have factors of matching shapes, and no other may.
 */
export function loadLora(model: CausalLM, config: LoraAdapterConfig, weights: LoraWeights, trainable = true): Map<string, LoRA> {
  const linears = model.linears();
  for (const [path, { A, B }] of weights) {
    const linear = linears.get(path);
    if (!linear) throw new Error(`adapter module ${path} does not exist in the base model (is it the right --base-model?)`);
    const r = rankFor(config, path);
    const want = { A: [r, linear.inFeatures], B: [linear.outFeatures, r] };
    if (`${A.shape}` !== `${want.A}` || `${B.shape}` !== `${want.B}`)
      throw new Error(
        `adapter ${path}: lora_A [${A.shape}] / lora_B [${B.shape}] do not fit the base layer (want [${want.A}] / [${want.B}])`,
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
  for (const [path, { A, B }] of weights) {
    const linear = linears.get(path)!;
    const device = linear.weight.device;
    const a = torch.keep(A.to({ dtype: "float32", device, copy: true }).detach());
    const b = torch.keep(B.to({ dtype: "float32", device, copy: true }).detach());
    if (trainable) {
      a.requiresGrad_();
      b.requiresGrad_();
    }
    linear.lora = new LoRA(a, b, loraScaling(config, path), config.lora_dropout);
    added.set(path, linear.lora);
  }
  return added;
}

/** A snapshot of the factors as PEFT stores them (float32, CPU copies: training goes on in place). */
export function loraWeights(loras: Map<string, LoRA>): LoraWeights {
  const snapshot = (t: Tensor) => torch.keep(t.detach().to({ device: "cpu", copy: true }));
  const out: LoraWeights = new Map();
  for (const [path, l] of loras) out.set(path, { A: snapshot(l.A), B: snapshot(l.B) });
  return out;
}

/**
 * A PiSSA adapter trained on the residual base, turned into a plain LoRA for the original base
 * as PEFT converts it: ΔW = s·(B A − B₀ A₀) = s'·[B, −B₀]·[A; A₀] with rank 2r and α chosen so
 * that s' = s (2α, or √2·α with rsLoRA).
 */
export function pissaToLora(trained: LoraWeights, initial: LoraWeights, s: LoraSettings): { weights: LoraWeights; settings: LoraSettings } {
  const weights: LoraWeights = new Map();
  for (const [path, { A, B }] of trained) {
    const start = initial.get(path);
    if (!start) throw new Error(`pissaToLora: no initial factors for ${path}`);
    weights.set(
      path,
      torch.tidy(() => ({ A: torch.cat([A, start.A], 0), B: torch.cat([B, start.B.neg()], 1) })),
    );
  }
  return { weights, settings: { ...s, rank: 2 * s.rank, alpha: s.rslora ? Math.SQRT2 * s.alpha : 2 * s.alpha } };
}

export function loraParameters(loras: Map<string, LoRA>): Tensor[] {
  return [...loras.values()].flatMap((l) => l.parameters());
}

export function setLoraTraining(loras: Map<string, LoRA>, on: boolean): void {
  for (const l of loras.values()) l.training = on;
}

/** Folds every adapter into its base weight (W ← W + s·B A) and removes it. */
export function mergeLora(model: CausalLM): number {
  let merged = 0;
  torch.noGrad(() => {
    for (const linear of model.linears().values()) {
      if (!linear.lora) continue;
      const lora = linear.lora;
      torch.tidy(() => linear.weight.copy_(linear.weight.to("float32").add(lora.delta()).to(linear.weight.dtype)));
      linear.lora = null;
      merged++;
    }
  });
  return merged;
}

/** Removes every adapter from the model and frees its factors (the base weights stay as they are). */
export function detachLora(model: CausalLM): void {
  for (const linear of model.linears().values()) {
    if (!linear.lora) continue;
    torch.dispose(linear.lora.parameters());
    linear.lora = null;
  }
}
