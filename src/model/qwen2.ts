// A Qwen2 / Llama decoder, top to bottom: embeddings → N × (RMSNorm → attention with RoPE and
// grouped-query heads → RMSNorm → SwiGLU MLP) → RMSNorm → lm_head. Weight names are the Hugging
// Face keys, so a checkpoint loads without a conversion table.
import type { ModelConfig } from "../hf/config.js";
import * as torch from "../torch/index.js";
import type { DType, Tensor } from "../torch/index.js";
import { type ArmAdapter, type ArmGenerators, type ArmRoute, type ArmSegment, wholeBatch } from "./arms.js";
import { Linear } from "./linear.js";

/** Where a weight comes from: a checkpoint reader, random init, … (HF key → tensor). */
export type WeightSource = (name: string, shape: number[]) => Tensor;

/**
 * Weights by Hugging Face key, as candle's VarBuilder: `pp("self_attn")` descends one level of
 * the name, `get` takes a weight from the source and records it under its full key, so each key
 * is written once, where the layer that owns it is built.
 */
class Weights {
  constructor(
    private readonly source: WeightSource,
    readonly registry: { weights: Map<string, Tensor>; linears: Map<string, Linear> },
    private readonly prefix = "",
  ) {}

  pp(name: string): Weights {
    return new Weights(this.source, this.registry, this.key(name));
  }

  get(name: string, shape: number[]): Tensor {
    const key = this.key(name);
    const t = this.source(key, shape);
    this.registry.weights.set(key, t);
    return t;
  }

  /** The projection `name` ([out, in], with a bias when asked), registered under its module path. */
  linear(name: string, inF: number, outF: number, bias: boolean): Linear {
    const w = this.pp(name);
    const linear = new Linear(w.get("weight", [outF, inF]), bias ? w.get("bias", [outF]) : null);
    this.registry.linears.set(w.prefix, linear);
    return linear;
  }

  private key(name: string): string {
    return this.prefix ? `${this.prefix}.${name}` : name;
  }
}

export interface ForwardOptions {
  /** [B, T] or [1, T]; default 0…T−1 (after the cached tokens). Packed batches restart positions at each sample. */
  positionIds?: Tensor;
  /** Boolean [B|1, 1, T, T], true = may attend; default causal. Packed batches pass a block-causal mask. */
  mask?: Tensor;
  /** Keys and values of earlier tokens, one entry per layer, extended in place (generation). */
  cache?: LayerCache[];
  /**
   * Several samples packed into ids [1, T]: int32 sequence starts [n + 1] (T last) and the longest
   * sample. Attention then runs inside each sample with packed flash attention (CUDA), without a mask.
   */
  packed?: { cuSeqlens: Tensor; maxSeqlen: number };
  /** For a model carrying concurrent arms (attachArms): each arm's rows of ids [1, N], in order and covering them all. */
  arms?: ArmSegment[];
}

/** What each layer needs besides its input: rotary tables for the positions, how to attend, and which rows are which arm's. */
export interface LayerContext {
  cos: Tensor;
  sin: Tensor;
  mask?: Tensor;
  packed?: ForwardOptions["packed"];
  arms?: ArmRoute;
}

/** A layer's keys and values [B, Hkv, S, D] so far; owned by the cache (dispose with disposeCache). */
export interface LayerCache {
  k?: Tensor;
  v?: Tensor;
}

export const newCache = (layers: number): LayerCache[] => Array.from({ length: layers }, () => ({}));
export const disposeCache = (cache: LayerCache[]) => torch.dispose(cache.map((c) => [c.k, c.v]));

// RMSNorm in float32 as transformers does, cast back before the weight (one fused autograd node).
const rmsNorm = (x: Tensor, weight: Tensor, eps: number): Tensor => torch.rmsNorm(x, weight, eps);

/** cos and sin tables [B|1, T, headDim] for rotary embeddings at the given positions. */
function rotaryTables(positions: Tensor, headDim: number, theta: number, dtype: DType): [Tensor, Tensor] {
  return torch.tidy(() => {
    const exponents = torch.arange(0, headDim, 2, { dtype: "int64", device: positions.device }).to("float32").div(headDim);
    const invFreq = torch
      .full([headDim / 2], theta, { device: positions.device })
      .pow(exponents)
      .reciprocal();
    const freqs = positions.to("float32").unsqueeze(-1).mul(invFreq); // [B, T, D/2]
    const emb = torch.cat([freqs, freqs], -1);
    return [emb.cos().to(dtype), emb.sin().to(dtype)];
  });
}

/** Non-interleaved RoPE: x·cos + rotate_half(x)·sin, with cos and sin broadcastable to x. */
const applyRotary = (x: Tensor, cos: Tensor, sin: Tensor): Tensor => torch.rope(x, cos, sin);

class Attention {
  readonly qProj: Linear;
  readonly kProj: Linear;
  readonly vProj: Linear;
  readonly oProj: Linear;

  constructor(
    private readonly c: ModelConfig,
    w: Weights,
  ) {
    const q = c.numAttentionHeads * c.headDim;
    const kv = c.numKeyValueHeads * c.headDim;
    this.qProj = w.linear("q_proj", c.hiddenSize, q, c.qkvBias);
    this.kProj = w.linear("k_proj", c.hiddenSize, kv, c.qkvBias);
    this.vProj = w.linear("v_proj", c.hiddenSize, kv, c.qkvBias);
    this.oProj = w.linear("o_proj", q, c.hiddenSize, c.oProjBias);
  }

  forward(x: Tensor, ctx: LayerContext, cache?: LayerCache): Tensor {
    return torch.tidy(() => {
      const [B, T] = x.shape;
      const { numAttentionHeads: H, numKeyValueHeads: Hkv, headDim: D } = this.c;
      const route = ctx.arms;
      if (ctx.packed) {
        // Packed samples: tokens × heads × dim, as the flash kernel takes them; cos/sin [T, 1, D].
        const [cos, sin] = [ctx.cos.view(T, 1, D), ctx.sin.view(T, 1, D)];
        const q = applyRotary(this.qProj.forward(x, route).view(T, H, D), cos, sin);
        const k = applyRotary(this.kProj.forward(x, route).view(T, Hkv, D), cos, sin);
        const v = this.vProj.forward(x, route).view(T, Hkv, D);
        const y = torch.flashAttentionVarlen(q, k, v, ctx.packed.cuSeqlens, ctx.packed.maxSeqlen);
        return this.oProj.forward(y.view(B, T, H * D), route);
      }
      if (route && !ownLayout(route.segments, B)) return this.perArm(x, ctx, route);
      const [cos, sin] = [ctx.cos.unsqueeze(1), ctx.sin.unsqueeze(1)]; // [B|1, 1, T, D]
      const q = applyRotary(this.qProj.forward(x, route).view(B, T, H, D).transpose(1, 2), cos, sin);
      let k = applyRotary(this.kProj.forward(x, route).view(B, T, Hkv, D).transpose(1, 2), cos, sin);
      let v = this.vProj.forward(x, route).view(B, T, Hkv, D).transpose(1, 2);
      const past = cache?.k !== undefined;
      if (cache) {
        if (past) [k, v] = [torch.cat([cache.k!, k], 2), torch.cat([cache.v!, v], 2)];
        torch.dispose([cache.k, cache.v]);
        [cache.k, cache.v] = [torch.keep(k), torch.keep(v)];
      }
      // One new token after cached ones may see all of them; otherwise causal (or the given mask).
      const mask = ctx.mask;
      const attend = mask ? { mask } : past && T === 1 ? {} : { causal: true };
      if (past && T > 1 && !mask) throw new Error("attention: several new tokens after a cache need an explicit mask");
      const y = torch.scaledDotProductAttention(q, k, v, attend);
      return this.oProj.forward(y.transpose(1, 2).reshape(B, T, H * D), route);
    });
  }

  /**
   * Several arms' samples side by side in one row (x [1, N]): the projections take every row at
   * once, attention runs for each arm in its own layout ([batch, rows / batch], causal or its mask),
   * in the same memory layout as that arm alone would use.
   */
  private perArm(x: Tensor, ctx: LayerContext, route: ArmRoute): Tensor {
    const N = x.size(1);
    const { numAttentionHeads: H, numKeyValueHeads: Hkv, headDim: D } = this.c;
    const [cos, sin] = [ctx.cos.view(1, N, 1, D), ctx.sin.view(1, N, 1, D)];
    const q = applyRotary(this.qProj.forward(x, route).view(1, N, H, D), cos, sin);
    const k = applyRotary(this.kProj.forward(x, route).view(1, N, Hkv, D), cos, sin);
    const v = this.vProj.forward(x, route).view(1, N, Hkv, D);
    const ys = route.segments.map((seg) => {
      const b = seg.batch;
      const t = seg.rows / b;
      const own = (z: Tensor, heads: number) => z.narrow(1, seg.start, seg.rows).view(b, t, heads, D).transpose(1, 2);
      const y = torch.scaledDotProductAttention(own(q, H), own(k, Hkv), own(v, Hkv), seg.mask ? { mask: seg.mask } : { causal: true });
      return y.transpose(1, 2).reshape(1, seg.rows, H * D);
    });
    return this.oProj.forward(ys.length === 1 ? ys[0] : torch.cat(ys, 1), route);
  }
}

/** Whether the arms' segments are x's own layout ([B, T] all one arm's, causal): then attention needs no split. */
const ownLayout = (segments: readonly ArmSegment[], B: number) => segments.length === 1 && segments[0].batch === B && !segments[0].mask;

class Mlp {
  readonly gateProj: Linear;
  readonly upProj: Linear;
  readonly downProj: Linear;

  constructor(c: ModelConfig, w: Weights) {
    this.gateProj = w.linear("gate_proj", c.hiddenSize, c.intermediateSize, c.mlpBias);
    this.upProj = w.linear("up_proj", c.hiddenSize, c.intermediateSize, c.mlpBias);
    this.downProj = w.linear("down_proj", c.intermediateSize, c.hiddenSize, c.mlpBias);
  }

  forward(x: Tensor, route?: ArmRoute): Tensor {
    return torch.tidy(() => this.downProj.forward(torch.swiglu(this.gateProj.forward(x, route), this.upProj.forward(x, route)), route));
  }
}

class DecoderLayer {
  readonly inputNorm: Tensor;
  readonly selfAttn: Attention;
  readonly postAttentionNorm: Tensor;
  readonly mlp: Mlp;

  constructor(
    private readonly c: ModelConfig,
    w: Weights,
  ) {
    this.inputNorm = w.get("input_layernorm.weight", [c.hiddenSize]);
    this.selfAttn = new Attention(c, w.pp("self_attn"));
    this.postAttentionNorm = w.get("post_attention_layernorm.weight", [c.hiddenSize]);
    this.mlp = new Mlp(c, w.pp("mlp"));
  }

  forward(x: Tensor, ctx: LayerContext, cache?: LayerCache): Tensor {
    return torch.tidy(() => {
      const h = x.add(this.selfAttn.forward(rmsNorm(x, this.inputNorm, this.c.rmsNormEps), ctx, cache));
      return h.add(this.mlp.forward(rmsNorm(h, this.postAttentionNorm, this.c.rmsNormEps), ctx.arms));
    });
  }
}

/** The decoder layer a weight or module belongs to, from its Hugging Face name (…layers.<i>.…); undefined outside the layers. */
export function decoderLayerOf(name: string): number | undefined {
  const m = /(?:^|\.)layers\.(\d+)\./.exec(name);
  return m ? Number(m[1]) : undefined;
}

export class CausalLM {
  readonly embedTokens: Tensor;
  readonly layers: DecoderLayer[];
  readonly norm: Tensor;
  readonly lmHead: Tensor;

  private readonly registry = { weights: new Map<string, Tensor>(), linears: new Map<string, Linear>() };
  /** Concurrent arms' generators, once attachArms gave the model arms. */
  private armGenerators: ArmGenerators | null = null;

  constructor(
    readonly config: ModelConfig,
    source: WeightSource,
  ) {
    const c = config;
    if (c.ropeScaling)
      throw new Error(`rope scaling ${JSON.stringify(c.ropeScaling)} is not supported yet: only plain RoPE (rope_type "default")`);
    if (c.hiddenAct !== "silu") throw new Error(`hidden_act "${c.hiddenAct}" is not supported: Qwen2/Llama use silu`);
    const w = new Weights(source, this.registry);
    const m = w.pp("model");
    this.embedTokens = m.get("embed_tokens.weight", [c.vocabSize, c.hiddenSize]);
    this.layers = Array.from({ length: c.numHiddenLayers }, (_, i) => new DecoderLayer(c, m.pp(`layers.${i}`)));
    this.norm = m.get("norm.weight", [c.hiddenSize]);
    this.lmHead = c.tieWordEmbeddings ? this.embedTokens : w.get("lm_head.weight", [c.vocabSize, c.hiddenSize]);
  }

  get dtype(): DType {
    return this.embedTokens.dtype;
  }
  get device(): string {
    return this.embedTokens.device;
  }

  /** Every projection, by its Hugging Face module path (LoRA targets these). */
  linears(): Map<string, Linear> {
    return new Map(this.registry.linears);
  }

  /** Every weight by its Hugging Face key (what a checkpoint holds; a tied lm_head is not repeated). */
  namedWeights(): Map<string, Tensor> {
    return new Map(this.registry.weights);
  }

  /** Training or evaluation mode: LoRA dropout is on only while training. */
  setTraining(on: boolean): void {
    for (const linear of this.registry.linears.values()) {
      if (linear.lora) linear.lora.training = on;
      for (const a of linear.arms ?? []) if (a) a.lora.training = on;
    }
  }

  /** How many concurrent arms the model carries (0: none; it trains alone or not at all). */
  get armCount(): number {
    return this.armGenerators?.count ?? 0;
  }

  /** The arms' generators (null without arms). */
  get generators(): ArmGenerators | null {
    return this.armGenerators;
  }

  /**
   * Gives the model concurrent arms: arms[k] maps module paths to arm k's adapters, and
   * generators holds each arm's random state. Replaces arms attached before; a model with a
   * plain adapter (addLora, loadLora) cannot take arms. Returns the number of arms.
   */
  attachArms(arms: readonly Map<string, ArmAdapter>[], generators: ArmGenerators): number {
    if (generators.count !== arms.length) throw new Error(`attachArms: ${arms.length} arms but ${generators.count} generators`);
    const linears = this.registry.linears;
    for (const [path, linear] of linears) if (linear.lora) throw new Error(`attachArms: ${path} already has an adapter of its own`);
    arms.forEach((m, k) => {
      const stray = [...m.keys()].find((path) => !linears.has(path));
      if (stray !== undefined) throw new Error(`attachArms: arm ${k} has an adapter for ${stray}, which the model does not have`);
    });
    for (const [path, linear] of linears) {
      const own = arms.map((m) => m.get(path) ?? null);
      linear.arms = own.some((a) => a) ? own : null;
    }
    this.armGenerators?.dispose();
    this.armGenerators = generators;
    return arms.length;
  }

  /** Removes the arms (their adapters stay their owners'); the model is the plain base again. */
  detachArms(): void {
    for (const linear of this.registry.linears.values()) linear.arms = null;
    this.armGenerators?.dispose();
    this.armGenerators = null;
  }

  /** Token embeddings [B, T, hidden]: the first layer's input. */
  embed(ids: Tensor): Tensor {
    return torch.embedding(this.embedTokens, ids);
  }

  /** Rotary tables and attention layout shared by every layer for this input. */
  layerContext(ids: Tensor, o: ForwardOptions = {}): LayerContext {
    return torch.tidy(() => {
      if (o.packed && o.mask) throw new Error("forward: pass either a mask or packed sequence starts, not both");
      if (o.packed && (o.cache || ids.size(0) !== 1)) throw new Error("forward: packed samples need ids [1, T] and no cache");
      const T = ids.size(1);
      const start = o.cache?.[0]?.k?.size(2) ?? 0;
      const positions = o.positionIds ?? torch.arange(start, start + T, 1, { device: ids.device }).unsqueeze(0);
      const [cos, sin] = rotaryTables(positions, this.config.headDim, this.config.ropeTheta, this.dtype);
      if (!this.armGenerators) {
        if (o.arms) throw new Error("forward: arms given but the model carries none (attachArms)");
        return { cos, sin, mask: o.mask, packed: o.packed };
      }
      const segments = o.arms;
      if (!segments) throw new Error(`forward: the model carries ${this.armCount} arms: say whose rows are whose (arms)`);
      const covered = segments.reduce((n, s) => (s.start === n ? n + s.rows : Number.NaN), 0);
      if (covered !== ids.numel()) throw new Error(`forward: the arms' segments must cover the ${ids.numel()} rows in order`);
      return { cos, sin, mask: o.mask, packed: o.packed, arms: { segments, generators: this.armGenerators } };
    });
  }

  /** The final RMSNorm, applied to the last layer's output. */
  finalNorm(h: Tensor): Tensor {
    return rmsNorm(h, this.norm, this.config.rmsNormEps);
  }

  /** Final hidden states [B, T, hidden] for token ids [B, T] (before the final norm with finalNorm: false). */
  hidden(ids: Tensor, o: ForwardOptions = {}, { finalNorm = true } = {}): Tensor {
    return torch.tidy(() => {
      const ctx = this.layerContext(ids, o);
      let h = this.embed(ids);
      for (const [i, layer] of this.layers.entries()) h = layer.forward(h, ctx, o.cache?.[i]);
      return finalNorm ? this.finalNorm(h) : h;
    });
  }

  /** Logits [B, T, vocab] in the model's dtype. */
  forward(ids: Tensor, o: ForwardOptions = {}): Tensor {
    return torch.tidy(() => torch.linear(this.hidden(ids, o), this.lmHead));
  }

  /**
   * Mean next-token cross-entropy as transformers computes it: labels [B, T] are the ids
   * themselves with −100 where nothing is predicted; position t predicts labels[t + 1].
   */
  loss(ids: Tensor, labels: Tensor, o: ForwardOptions = {}): Tensor {
    return torch.tidy(() => {
      const T = ids.size(1);
      const h = this.hidden(ids, o).narrow(1, 0, T - 1);
      const logits = torch.linear(h, this.lmHead).to("float32");
      const targets = labels.narrow(1, 1, T - 1);
      return torch.crossEntropy(logits.reshape(-1, this.config.vocabSize), targets.reshape(-1), { ignoreIndex: -100 });
    });
  }

  /** Greedy decoding with a key/value cache; returns the new token ids (stop token excluded). With arms, arm's adapter answers. */
  generate(prompt: number[], o: { maxNewTokens: number; stopTokenIds: readonly number[]; arm?: number }): number[] {
    return this.generateBatch([prompt], { ...o, padId: 0 })[0];
  }

  /**
   * Greedy decoding of several prompts at once: left-padded to one length, padding masked out of
   * attention, positions counted from each prompt's first token, one key/value cache for all. A
   * row that has produced a stop token is done (its later tokens are ignored); the batch stops when
   * every row is done or has maxNewTokens. Returns each prompt's new token ids (stop excluded),
   * the same as generating it alone. With arms, arm's adapter answers.
   */
  generateBatch(
    prompts: readonly number[][],
    o: { maxNewTokens: number; stopTokenIds: readonly number[]; padId: number; arm?: number },
  ): number[][] {
    const B = prompts.length;
    const P = Math.max(...prompts.map((p) => p.length));
    const cache = newCache(this.layers.length);
    const out: number[][] = prompts.map(() => []);
    const done = prompts.map(() => false);
    // real[b][j]: whether key position j of row b is a real token (false: left padding).
    const real = prompts.map((p) => Array.from({ length: P }, (_, j) => j >= P - p.length));
    const device = this.device;
    try {
      torch.noGrad(() => {
        // The prompts: causal attention over real tokens; a padding row attends to itself only (no empty softmax).
        const mask = new Uint8Array(B * P * P);
        for (let b = 0; b < B; b++)
          for (let i = 0; i < P; i++)
            for (let j = 0; j <= i; j++) mask[(b * P + i) * P + j] = real[b][i] ? (real[b][j] ? 1 : 0) : i === j ? 1 : 0;
        let ids = prompts.map((p) => [...new Array(P - p.length).fill(o.padId), ...p]);
        let positions = prompts.map((p) => Array.from({ length: P }, (_, j) => Math.max(0, j - (P - p.length))));
        let attend = torch.fromBytes(mask, [B, 1, P, P], "bool", device);
        for (let t = 0; t < o.maxNewTokens && done.some((d) => !d); t++) {
          const next = torch.tidy(() => {
            const input = torch.tensor(ids, { dtype: "int64", device });
            const h = this.hidden(input, {
              cache,
              arms: o.arm === undefined ? undefined : wholeBatch(o.arm, input),
              mask: attend,
              positionIds: torch.tensor(positions, { dtype: "int64", device }),
            });
            return torch
              .linear(h.select(1, h.size(1) - 1), this.lmHead)
              .argmax(-1)
              .toArray() as number[];
          });
          attend.dispose();
          next.forEach((id, b) => {
            if (done[b]) return;
            if (o.stopTokenIds.includes(id)) done[b] = true;
            else out[b].push(id);
            if (out[b].length >= o.maxNewTokens) done[b] = true;
          });
          // The next step: one new token per row, which may see every real key so far and itself.
          for (const row of real) row.push(true);
          const S = real[0].length;
          const step = new Uint8Array(B * S);
          for (let b = 0; b < B; b++) for (let j = 0; j < S; j++) step[b * S + j] = real[b][j] ? 1 : 0;
          attend = torch.fromBytes(step, [B, 1, 1, S], "bool", device);
          ids = next.map((id) => [id]);
          positions = positions.map((p) => [p[p.length - 1] + 1]);
        }
        attend.dispose();
      });
    } finally {
      disposeCache(cache);
    }
    return out;
  }
}
