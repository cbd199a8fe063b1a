// One training pass of a CausalLM over a batch — forward, loss, backward — shaped for memory:
// - the loss over the vocabulary runs in row chunks and writes its gradient by hand, so no
//   [tokens × vocab] logits or graph ever exist (152k columns on Qwen2.5);
// - layers whose activations do not fit the memory budget are run without a graph and recomputed
//   during backward (what PyTorch users know as gradient checkpointing), one layer at a time, so it
//   costs nothing where memory allows.
// Every trainable tensor gets its gradient: LoRA factors, and in a full fine-tune every weight —
// the embeddings through autograd, the output layer (lm_head) by hand beside the loss's.
// Backward walks segments from the last: a run of kept layers is one segment (one autograd pass),
// each recomputed layer another; every segment's input is a leaf whose gradient feeds the next.
import { wholeBatch } from "../model/arms.js";
import { type CausalLM, type LayerContext, decoderLayerOf } from "../model/qwen2.js";
import * as torch from "../torch/index.js";
import type { Tensor } from "../torch/index.js";
import type { ArmShare, Batch } from "./batches.js";

/**
 * Which layers keep their activations for backward rather than being recomputed: all ("none" is
 * recomputed), none ("all" are), the first n, or as many as fit in budgetBytes of GPU memory
 * (measured as the step runs; the CPU keeps them all). gradientBytes[i]: bytes of the gradients
 * that backward will allocate in decoder layer i, and [layers] in the head (final norm, lm_head),
 * which the memory in use does not show when the layers are chosen (trainable base weights, see
 * countingGradients; a LoRA adapter's are negligible).
 */
export type RecomputePolicy = "none" | "all" | { keepLayers: number } | { budgetBytes: number; gradientBytes?: readonly number[] };

export interface BackpropOptions {
  /** Multiplies the gradients (1 / micro-batches under accumulation); for a concurrent batch, one per arm share or one for all. */
  gradScale?: number | readonly number[];
  recompute?: RecomputePolicy;
  /** Target rows whose logits are computed at once; default about 64M logits (441 rows of Qwen2.5's 152k vocab). */
  lossChunk?: number;
  /** Called during backward each time it is done with layers `first` and above (their gradients
   * from this batch are complete), e.g. to start summing them across processes… */
  onLayersDone?: (first: number) => void;
  /** …which happens where a segment starts: at every recomputed layer, and at these layers too. */
  segmentStarts?: ReadonlySet<number>;
  /** A concurrent batch's arms through the loss head in shared chunks (armsTogether); default: off the CPU. */
  armsTogether?: boolean;
}

export interface BackpropResult {
  /**
   * Mean cross-entropy over the batch's targets: a float32 device scalar (reading it syncs); for a
   * concurrent batch, each arm share's own mean, [shares].
   */
  loss: Tensor;
  /** Layers recomputed during backward. */
  recomputed: number;
}

// Retained bytes of a kept layer per token, measured on the GPU, by model.
const layerBytesPerToken = new WeakMap<CausalLM, number>();

// Layers that backward handles in one pass. input is the first one's input (a leaf, except the
// embeddings); output is null for a recomputed layer until it runs again.
interface Segment {
  first: number;
  input: Tensor;
  output: Tensor | null;
  rngState: Tensor[] | null;
}

/**
 * Mean next-token cross-entropy of the batch, with the gradients of every trainable tensor
 * accumulated; for a concurrent batch (armsBatch), each arm's mean over its own targets, each arm's
 * gradient scaled by its own gradScale.
 */
export function lossAndBackward(model: CausalLM, batch: Batch, o: BackpropOptions = {}): BackpropResult {
  if (batch.targets === 0) throw new Error("lossAndBackward: the batch has no target tokens");
  checkShares(batch);
  return torch.tidy(() => {
    const ctx = model.layerContext(batch.ids, batch.options);
    const keep = keepPolicy(model, batch, o);
    const rng = dropoutRng(model);
    const segments: Segment[] = [];
    try {
      // The embeddings' graph is kept only when they are trained (a full fine-tune).
      let h = model.embedTokens.requiresGrad ? model.embed(batch.ids) : torch.noGrad(() => model.embed(batch.ids));
      model.layers.forEach((layer, i) => {
        const open = segments[segments.length - 1];
        if (keep(i)) {
          if (open?.output && !o.segmentStarts?.has(i)) {
            h = open.output = layer.forward(h, ctx);
          } else {
            const input = i === 0 ? h : h.detach().requiresGrad_();
            h = layer.forward(input, ctx);
            segments.push({ first: i, input, output: h, rngState: null });
          }
        } else {
          const input = i === 0 ? h : h.detach().requiresGrad_();
          const rngState = rng?.save() ?? null;
          h = torch.noGrad(() => layer.forward(input, ctx));
          segments.push({ first: i, input, output: null, rngState });
        }
      });

      // The loss head; when the last layers kept their graph, its backward runs on through them.
      const top = segments[segments.length - 1];
      const headInput = top.output ? top.output : h.detach().requiresGrad_();
      const loss = headLossAndBackward(model, headInput, batch, o.gradScale ?? 1, lossChunk(model, o), o.armsTogether);
      // Gradients flow on to the segment below, if any (the first segment's input is the embedding output: nothing below).
      let grad: Tensor | null = top.output ? (top.first > 0 ? top.input.grad : null) : headInput.grad;
      if (top.output) {
        segments.pop();
        top.input.dispose();
        top.output.dispose();
        o.onLayersDone?.(top.first);
      } else headInput.dispose();
      let recomputed = 0;
      while (grad) {
        const seg = segments.pop()!;
        let out = seg.output;
        if (!out) {
          out = recompute(model, seg.first, seg.input, ctx, rng, seg.rngState);
          recomputed++;
        }
        torch.backward([out], [grad]);
        torch.dispose([out, grad, ...(seg.rngState ?? [])]);
        grad = seg.first > 0 ? seg.input.grad : null;
        seg.input.dispose(); // frees its gradient with it
        o.onLayersDone?.(seg.first);
      }
      return { loss, recomputed };
    } finally {
      // Saved generator states are kept out of this scope: those of segments a failed step never reached go here.
      for (const seg of segments) torch.dispose(seg.rngState ?? []);
    }
  });
}

function recompute(model: CausalLM, i: number, input: Tensor, ctx: LayerContext, rng: DropoutRng | null, state: Tensor[] | null): Tensor {
  if (!rng || !state) return model.layers[i].forward(input, ctx);
  const now = rng.save();
  rng.restore(state); // the same dropout masks as the first pass
  try {
    return model.layers[i].forward(input, ctx);
  } finally {
    rng.restore(now);
    torch.dispose(now);
  }
}

function checkShares(batch: Batch): void {
  const empty = batch.arms?.find((a) => a.targets === 0);
  if (empty) throw new Error(`lossAndBackward: arm ${empty.arm}'s samples in the batch have no target tokens`);
}

const scaleOf = (gradScale: BackpropOptions["gradScale"], i: number): number =>
  typeof gradScale === "number" ? gradScale : (gradScale?.[i] ?? 1);

/** Each arm's mean of the per-row losses [targets] (its rows are contiguous): differences of their running sum, in float64. */
function armMeans(rowLosses: Tensor, arms: readonly ArmShare[]): Tensor {
  const running = torch.cat([torch.zeros([1], { dtype: "float64", device: rowLosses.device }), rowLosses.to("float64").cumsum(0)], 0);
  const bounds = torch.hostVector(
    arms.flatMap((a) => [a.targetStart, a.targetStart + a.targets]),
    "int64",
    rowLosses.device,
  );
  const pairs = running.indexSelect(0, bounds).view(arms.length, 2);
  const targets = torch.hostVector(
    arms.map((a) => a.targets),
    "float64",
    rowLosses.device,
  );
  return pairs.select(1, 1).sub(pairs.select(1, 0)).div(targets).to("float32");
}

/**
 * The final norm and the cross-entropy over the target rows, chunk by chunk without a graph:
 * d loss / d logits = softmax − onehot, so the gradient of a row of hidden states is
 * (softmax · W − W[target]) / n. Only the norm and the row selection are left to autograd.
 */
function headLossAndBackward(
  model: CausalLM,
  last: Tensor,
  batch: Batch,
  gradScale: BackpropOptions["gradScale"],
  chunk: number,
  together = last.device !== "cpu",
): Tensor {
  return torch.tidy(() => {
    const rows = targetRows(model, last, batch);
    if (!batch.arms) {
      const { sum, grad } = chunkedCrossEntropy(rows, batch.targetIds, model.lmHead, chunk, scaleOf(gradScale, 0) / batch.targets);
      torch.backward([rows], [grad!]);
      return torch.noGrad(() => sum.div(batch.targets));
    }
    if (together && batch.arms.length > 1) {
      // Every arm's rows in the same chunks: each row's gradient carries its arm's scale over its
      // arm's targets, and each arm's loss is the sum over its own rows.
      const arms = batch.arms;
      const scale = torch.hostVector(
        arms.flatMap((a, i) => new Array<number>(a.targets).fill(scaleOf(gradScale, i) / a.targets)),
        "float32",
        rows.device,
      );
      const { sum, grad } = chunkedCrossEntropy(rows, batch.targetIds, model.lmHead, chunk, scale);
      torch.backward([rows], [grad!]);
      return torch.noGrad(() => armMeans(sum, arms));
    }
    // Each arm's loss is the mean over its own targets, and its gradient carries its own scale.
    const parts = batch.arms.map((a, i) =>
      chunkedCrossEntropy(
        rows.narrow(0, a.targetStart, a.targets),
        batch.targetIds.narrow(0, a.targetStart, a.targets),
        model.lmHead,
        chunk,
        scaleOf(gradScale, i) / a.targets,
      ),
    );
    const grads = parts.map((p) => p.grad!);
    torch.backward([rows], [grads.length === 1 ? grads[0] : torch.cat(grads, 0)]);
    return torch.noGrad(() => torch.stack(parts.map((p, i) => p.sum.div(batch.arms![i].targets))));
  });
}

/** Mean next-token cross-entropy of a batch without gradients, its logits a chunk of rows at a time; for a concurrent batch, each arm's ([shares]). */
export function evaluationLoss(model: CausalLM, batch: Batch, lossChunkRows?: number, armsTogether?: boolean): Tensor {
  if (batch.targets === 0) throw new Error("evaluationLoss: the batch has no target tokens");
  checkShares(batch);
  return torch.noGrad(() =>
    torch.tidy(() => {
      const last = model.hidden(batch.ids, batch.options, { finalNorm: false });
      const rows = targetRows(model, last, batch);
      const chunk = lossChunk(model, { lossChunk: lossChunkRows });
      if (!batch.arms) return chunkedCrossEntropy(rows, batch.targetIds, model.lmHead, chunk, null).sum.div(batch.targets);
      if ((armsTogether ?? rows.device !== "cpu") && batch.arms.length > 1)
        return armMeans(chunkedCrossEntropy(rows, batch.targetIds, model.lmHead, chunk, null, true).sum, batch.arms);
      return torch.stack(
        batch.arms.map((a) =>
          chunkedCrossEntropy(
            rows.narrow(0, a.targetStart, a.targets),
            batch.targetIds.narrow(0, a.targetStart, a.targets),
            model.lmHead,
            chunk,
            null,
          ).sum.div(a.targets),
        ),
      );
    }),
  );
}

// The final-normed hidden states of the positions that predict a target: [targets, hidden].
function targetRows(model: CausalLM, last: Tensor, batch: Batch): Tensor {
  const [, T, hidden] = last.shape;
  return model
    .finalNorm(last)
    .narrow(1, 0, T - 1)
    .reshape(-1, hidden)
    .indexSelect(0, batch.targetIndex);
}

/**
 * The summed cross-entropy of rows [n, hidden] through the output layer W against ids, chunk rows
 * at a time, so at most two [chunk × vocab] float32 buffers exist; with gradScale (a number, or
 * one per row [n]), also gradScale × its gradient with respect to the rows (in the rows' dtype),
 * and when W itself is trained, gradScale × its gradient added to W.grad: d = softmax − onehot per
 * row, so d rows = d·W and dW = dᵀ·rows. With a scale per row, or perRow, sum is each row's
 * cross-entropy [n] instead of their sum.
 */
function chunkedCrossEntropy(
  rows: Tensor,
  ids: Tensor,
  W: Tensor,
  chunk: number,
  gradScale: number | Tensor | null,
  perRow = gradScale instanceof torch.Tensor,
): { sum: Tensor; grad: Tensor | null } {
  const trainW = gradScale !== null && W.requiresGrad;
  return torch.noGrad(() =>
    torch.tidy(() => {
      const n = rows.size(0);
      const sums: Tensor[] = [];
      const grads: Tensor[] = [];
      for (let start = 0; start < n; start += chunk) {
        const c = Math.min(chunk, n - start);
        // What the chunk returns moves to the enclosing scope; the rest is freed at once.
        const [sum, grad] = torch.tidy(() => {
          const x = rows.narrow(0, start, c);
          const target = ids.narrow(0, start, c);
          const half = torch.linear(x, W);
          const logits = half.to("float32");
          if (half !== logits) half.dispose();
          const lse = logits.logsumexp(-1);
          const each = lse.sub(logits.gather(1, target.unsqueeze(1)).squeeze(1));
          const sum = perRow ? each : each.sum();
          if (gradScale === null) return [sum, null];
          const scale = typeof gradScale === "number" ? gradScale : gradScale.narrow(0, start, c).unsqueeze(1);
          const probs = logits.softmax(-1);
          logits.dispose();
          if (trainW) {
            const vocab = torch.arange(0, W.size(0), 1, { dtype: "int64", device: W.device });
            const d = probs.sub(vocab.unsqueeze(0).eq(target.unsqueeze(1)).to("float32")).mul(scale);
            probs.dispose();
            accumulateGrad(W, d.T.matmul(x.to("float32")).to(W.dtype));
            return [sum, d.to(W.dtype).matmul(W).to(rows.dtype)];
          }
          const softmaxW = probs.to(W.dtype).matmul(W);
          probs.dispose();
          return [sum, softmaxW.to("float32").sub(torch.embedding(W, target).to("float32")).mul(scale).to(rows.dtype)];
        });
        sums.push(sum);
        if (grad) grads.push(grad);
      }
      const sum = perRow ? (sums.length === 1 ? sums[0] : torch.cat(sums, 0)) : torch.stack(sums).sum();
      const grad = gradScale === null ? null : grads.length === 1 ? grads[0] : torch.cat(grads, 0);
      return { sum, grad };
    }),
  );
}

/** W.grad += g, as autograd accumulates (the first contribution becomes the gradient). */
function accumulateGrad(W: Tensor, g: Tensor): void {
  const existing = W.grad;
  if (existing) existing.add_(g);
  else W.grad = g;
}

const lossChunk = (model: CausalLM, o: BackpropOptions) => o.lossChunk ?? Math.max(1, Math.floor(2 ** 26 / model.config.vocabSize));

function keepPolicy(model: CausalLM, batch: Batch, o: BackpropOptions): (i: number) => boolean {
  const p = o.recompute ?? "none";
  if (p === "none") return () => true;
  if (p === "all") return () => false;
  if ("keepLayers" in p) return (i) => i < p.keepLayers;
  if (!model.device.startsWith("cuda")) return () => true;
  // Greedy: keep layers while the measured cost of one more, plus what backward and the loss
  // head need on top, fits the budget; recompute the rest.
  const device = torch.cuda.index(model.device);
  const tokens = batch.ids.numel();
  const hidden = model.config.hiddenSize;
  const chunkRows = Math.min(lossChunk(model, o), batch.targets);
  const headBytes = chunkRows * model.config.vocabSize * 12 + batch.targets * hidden * 8;
  const above = gradientsAbove(p.gradientBytes ?? [], model.layers.length);
  let before = 0;
  let lastKept = -1;
  return (i) => {
    const allocated = torch.cuda.memory(device).allocated;
    if (lastKept === i - 1 && i > 0) {
      const measured = (allocated - before) / tokens;
      layerBytesPerToken.set(model, Math.max(measured, layerBytesPerToken.get(model) ?? 0));
    }
    const perToken = layerBytesPerToken.get(model);
    const layer = (perToken ?? 0) * tokens;
    const fits = perToken === undefined ? i === 0 : allocated + 3 * layer + headBytes + above[i] <= p.budgetBytes;
    before = allocated;
    if (fits) lastKept = i;
    return fits;
  };
}

/**
 * above[i]: the gradient bytes of the layers after i and of the head, all allocated by the time
 * backward reaches the layers kept up to i (the head and the layers after them run backward
 * first); a kept layer's own gradients come as its activations are freed.
 */
export function gradientsAbove(gradientBytes: readonly number[], layers: number): number[] {
  const above = new Array<number>(layers).fill(0);
  for (let i = layers - 1; i >= 0; i--) above[i] = (above[i + 1] ?? 0) + (gradientBytes[i + 1] ?? 0);
  return above;
}

/**
 * A memory-budget policy that also counts the gradients backward will allocate for `weights`
 * (trainable base weights, by Hugging Face name): each decoder layer's, and the head's (the final
 * norm, lm_head, and a tied embedding); an untied embedding's gradient comes after every layer's
 * backward and is left out. Other policies are returned as they are.
 */
export function countingGradients(p: RecomputePolicy, model: CausalLM, weights: Iterable<readonly [string, Tensor]>): RecomputePolicy {
  if (typeof p !== "object" || !("budgetBytes" in p)) return p;
  const head = model.layers.length;
  const gradientBytes = new Array<number>(head + 1).fill(0);
  for (const [name, w] of weights) {
    const layer = decoderLayerOf(name) ?? (/embed_tokens/.test(name) && !model.config.tieWordEmbeddings ? undefined : head);
    if (layer !== undefined) gradientBytes[layer] += w.numel() * torch.elementSize[w.dtype];
  }
  return { ...p, gradientBytes };
}

/**
 * Bytes one layer keeps for backward per token, on a GPU: the first layer run with a graph on a
 * row of `tokens` made-up hidden states, with the model's adapters as they are (every row the
 * first arm's on a model carrying arms); the memory held afterwards over the tokens. Updates the
 * figure the memory budget's recomputation uses.
 */
export function measureLayerBytesPerToken(model: CausalLM, tokens = 1024): number {
  if (!model.device.startsWith("cuda")) throw new Error("measureLayerBytesPerToken: a GPU model only (the CPU has no budget)");
  const device = torch.cuda.index(model.device);
  return torch.tidy(() => {
    const ids = torch.zeros([1, tokens], { dtype: "int64", device: model.device });
    const ctx = model.layerContext(ids, { arms: model.armCount > 0 ? wholeBatch(0, ids) : undefined });
    const input = torch.zeros([1, tokens, model.config.hiddenSize], { dtype: model.dtype, device: model.device }).requiresGrad_();
    const before = torch.cuda.memory(device).allocated;
    const out = model.layers[0].forward(input, ctx);
    const perToken = (torch.cuda.memory(device).allocated - before) / tokens;
    out.dispose();
    layerBytesPerToken.set(model, Math.max(perToken, layerBytesPerToken.get(model) ?? 0));
    return perToken;
  });
}

interface DropoutRng {
  save(): Tensor[];
  restore(state: readonly Tensor[]): void;
}

// LoRA dropout draws random masks: a recomputed layer must draw the same ones. Concurrent arms
// draw from generators of their own.
function dropoutRng(model: CausalLM): DropoutRng | null {
  const linears = [...model.linears().values()];
  const arms = model.generators;
  if (arms) {
    const active = linears.some((l) => l.arms?.some((a) => a?.lora.training && a.lora.dropout > 0));
    return active ? { save: () => arms.snapshot(), restore: (s) => arms.restore(s) } : null;
  }
  const active = linears.some((l) => l.lora?.training && l.lora.dropout > 0);
  if (!active) return null;
  const device = model.device.startsWith("cuda") ? torch.cuda.index(model.device) : undefined;
  return { save: () => [torch.keep(torch.getRngState(device))], restore: (s) => torch.setRngState(s[0], device) };
}
