// Samples → token ids with a loss mask → padded or packed batches.
//
// Label convention (Hugging Face's): labels[i] = ids[i] where the token counts in the loss and
// -100 elsewhere. The model shifts: the loss at position i-1 predicts labels[i] from the prefix
// ids[0..i-1]. So the first reply token is predicted from the last prompt token, and -100 marks
// prompt tokens, padding and (when packing) each sample's first token.
import type { ChatMessage, Encoded, Sample } from "./types.js";

/** Label value ignored by the loss (PyTorch's cross_entropy ignore_index). */
export const IGNORE_INDEX = -100;

/** Qwen2.5-Math-Instruct's system prompt, the one its chat template adds when none is given. */
export const QWEN25_MATH_SYSTEM_PROMPT = "Please reason step by step, and put your final answer within \\boxed{}.";

/** What the formatter needs from a tokenizer (hf/tokenizer.ts's HfTokenizer is one). */
export interface ChatTokenizer {
  encode(text: string, options?: { addSpecialTokens?: boolean }): number[];
  decode(ids: readonly number[], options?: { skipSpecialTokens?: boolean }): string;
  /** Throws ChatTemplateLimitError when the template goes past its time or size limits. */
  applyChatTemplate(messages: readonly ChatMessage[], options?: { addGenerationPrompt?: boolean }): string;
  idToToken(id: number): string | undefined;
  /** Ids that close an assistant turn (EOS, <|im_end|>, <|eot_id|>…). */
  readonly stopTokenIds: readonly number[];
  /** The most characters of text one token stands for (its longest vocabulary entry). */
  readonly maxTokenChars: number;
}

/** A chat template went past a time or size limit: the whole data set stops here (no turn is skipped for it). */
export class ChatTemplateLimitError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ChatTemplateLimitError";
  }
}

export interface FormatOptions {
  /** Prepended as a system message to samples that have none. Default: none (the template decides). */
  systemPrompt?: string;
  /**
   * Longest sequence kept; longer ones are cut at the end and counted as truncated. A sample with
   * more characters than maxLength × the tokenizer's maxTokenChars cannot fit at all: formatSamples
   * drops it before rendering or tokenizing it (counted as droppedTooLong).
   */
  maxLength?: number;
  /** Keep samples left without any reply token (e.g. truncated inside the prompt). Default false. */
  keepEmpty?: boolean;
}

export interface FormatStats {
  samples: number;
  /** Samples returned (samples − droppedEmpty − droppedTooLong). */
  kept: number;
  /** Samples cut to maxLength. */
  truncated: number;
  /** Samples dropped because no reply token was left to learn from. */
  droppedEmpty: number;
  /** Samples dropped unread because their text alone is longer than maxLength tokens could be. */
  droppedTooLong: number;
  /** Samples whose prompt was not a token prefix of the conversation (mask placed by character offsets). */
  offsetFallbacks: number;
  /** Assistant turns not trained on because the template renders history differently from the last turn. */
  skippedTurns: number;
  /** Tokens and loss tokens over the kept samples, after truncation. */
  tokens: number;
  lossTokens: number;
  /** Longest sample before truncation, in tokens. */
  longest: number;
}

function withSystemPrompt(messages: readonly ChatMessage[], systemPrompt?: string): ChatMessage[] {
  if (systemPrompt === undefined || messages[0]?.role === "system") return [...messages];
  return [{ role: "system", content: systemPrompt }, ...messages];
}

function commonPrefixLength(a: string, b: string): number {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return i;
}

/** Character spans [start, end) of the assistant replies in the rendered conversation `full`. */
function replySpans(tokenizer: ChatTokenizer, messages: ChatMessage[], full: string): { spans: [number, number][]; skipped: number } {
  const closers = tokenizer.stopTokenIds.map((id) => tokenizer.idToToken(id)).filter((t): t is string => !!t);
  const spans: [number, number][] = [];
  let skipped = 0;
  messages.forEach((message, k) => {
    if (message.role !== "assistant") return;
    let prompt: string, through: string;
    try {
      prompt = tokenizer.applyChatTemplate(messages.slice(0, k), { addGenerationPrompt: true });
      through = tokenizer.applyChatTemplate(messages.slice(0, k + 1), { addGenerationPrompt: false });
    } catch (error) {
      if (error instanceof ChatTemplateLimitError) throw error;
      skipped++; // e.g. a template that cannot render a conversation opening with the assistant
      return;
    }
    if (!full.startsWith(through)) {
      skipped++;
      return;
    }
    // Normally the generation prompt is a prefix of the rendered turn; if not, the reply starts where they part.
    const start = through.startsWith(prompt) ? prompt.length : commonPrefixLength(prompt, through);
    // The reply ends with its closing token (<|im_end|>); what follows (a newline) is not the model's to say.
    const turn = through.slice(start);
    let end = turn.length;
    let closerAt = -1;
    for (const closer of closers) {
      const at = turn.lastIndexOf(closer);
      if (at >= 0 && at + closer.length > closerAt) closerAt = at + closer.length;
    }
    if (closerAt >= 0) end = closerAt;
    spans.push([start, start + end]);
  });
  return { spans, skipped };
}

/** Finds the token index at character position `at` of `text` (tokenized as `ids`). */
function tokenBoundary(
  tokenizer: ChatTokenizer,
  text: string,
  ids: number[],
  at: number,
  side: "start" | "end",
): { index: number; exact: boolean } {
  const prefix = tokenizer.encode(text.slice(0, at), { addSpecialTokens: false });
  if (prefix.length <= ids.length && prefix.every((id, i) => id === ids[i])) return { index: prefix.length, exact: true };
  // A token straddles the boundary (e.g. "\n\n" merged across it). Locate it by the length of the
  // decoded prefix; a straddling token counts as part of the reply on both sides.
  const decodedLength = (n: number) => tokenizer.decode(ids.slice(0, n)).length;
  const firstWhere = (ok: (n: number) => boolean) => {
    let lo = 0,
      hi = ids.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (ok(mid)) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  };
  const index = side === "start" ? Math.max(0, firstWhere((n) => decodedLength(n) > at) - 1) : firstWhere((n) => decodedLength(n) >= at);
  return { index, exact: false };
}

export interface FormattedSample {
  encoded: Encoded;
  /** Tokens before truncation. */
  fullLength: number;
  offsetFallback: boolean;
  skippedTurns: number;
}

/**
 * Renders one sample with the chat template, tokenizes it and marks the assistant replies
 * (each through its closing <|im_end|>/EOS token) as the tokens that count in the loss.
 */
export function formatSample(sample: Sample, tokenizer: ChatTokenizer, options: FormatOptions = {}): FormattedSample {
  const messages = withSystemPrompt(sample.messages, options.systemPrompt);
  if (!messages.some((m) => m.role === "assistant")) throw new Error("formatSample: the sample has no assistant message to learn from");
  const full = tokenizer.applyChatTemplate(messages, { addGenerationPrompt: false });
  const { spans, skipped } = replySpans(tokenizer, messages, full);

  let ids = tokenizer.encode(full, { addSpecialTokens: false });
  let lossMask = new Array<boolean>(ids.length).fill(false);
  let offsetFallback = false;
  for (const [start, end] of spans) {
    const from = tokenBoundary(tokenizer, full, ids, start, "start");
    const to = tokenBoundary(tokenizer, full, ids, end, "end");
    offsetFallback ||= !from.exact || !to.exact;
    for (let i = from.index; i < to.index; i++) lossMask[i] = true;
  }

  const fullLength = ids.length;
  const truncated = options.maxLength !== undefined && ids.length > options.maxLength;
  if (truncated) {
    ids = ids.slice(0, options.maxLength);
    lossMask = lossMask.slice(0, options.maxLength);
  }
  return { encoded: { ids, lossMask, truncated }, fullLength, offsetFallback, skippedTurns: skipped };
}

/** Formats a data set; drops (and counts) samples left with no reply token unless keepEmpty. */
export function formatSamples(
  samples: readonly Sample[],
  tokenizer: ChatTokenizer,
  options: FormatOptions = {},
): { encoded: Encoded[]; stats: FormatStats } {
  if (options.maxLength !== undefined && !(Number.isInteger(options.maxLength) && options.maxLength > 0)) {
    throw new Error(`formatSamples: maxLength must be a positive whole number (got ${options.maxLength})`);
  }
  const stats: FormatStats = {
    samples: samples.length,
    kept: 0,
    truncated: 0,
    droppedEmpty: 0,
    droppedTooLong: 0,
    offsetFallbacks: 0,
    skippedTurns: 0,
    tokens: 0,
    lossTokens: 0,
    longest: 0,
  };
  const encoded: Encoded[] = [];
  samples.forEach((sample, i) => {
    if (cannotFit(sample, tokenizer, options)) {
      stats.droppedTooLong++;
      return;
    }
    let result: FormattedSample;
    try {
      result = formatSample(sample, tokenizer, options);
    } catch (e) {
      if (e instanceof ChatTemplateLimitError) throw new ChatTemplateLimitError(`sample ${i}: ${e.message}`);
      throw new Error(`sample ${i}: ${(e as Error).message}`);
    }
    const { encoded: enc } = result;
    stats.longest = Math.max(stats.longest, result.fullLength);
    if (enc.truncated) stats.truncated++;
    if (result.offsetFallback) stats.offsetFallbacks++;
    stats.skippedTurns += result.skippedTurns;
    const lossTokens = enc.lossMask.filter(Boolean).length;
    if (lossTokens === 0 && !options.keepEmpty) {
      stats.droppedEmpty++;
      return;
    }
    stats.kept++;
    stats.tokens += enc.ids.length;
    stats.lossTokens += lossTokens;
    encoded.push(enc);
  });
  return { encoded, stats };
}

/**
 * Whether a sample's messages (the system prompt included) have more characters than maxLength
 * tokens can stand for: then it cannot fit, and need not be rendered or tokenized to know it.
 */
export function cannotFit(sample: Sample, tokenizer: Pick<ChatTokenizer, "maxTokenChars">, options: FormatOptions): boolean {
  if (options.maxLength === undefined) return false;
  const chars = withSystemPrompt(sample.messages, options.systemPrompt).reduce((n, m) => n + m.content.length, 0);
  return chars > options.maxLength * tokenizer.maxTokenChars;
}

/** The sample as a prompt for generation: without its final assistant reply. */
export function promptOf(sample: Sample): Sample {
  return sample.messages.at(-1)?.role === "assistant" ? { ...sample, messages: sample.messages.slice(0, -1) } : sample;
}

/** Token ids of a prompt ready for generation: the sample without its final assistant reply. */
export function encodePrompt(sample: Sample, tokenizer: ChatTokenizer, options: Pick<FormatOptions, "systemPrompt"> = {}): number[] {
  const prompt = withSystemPrompt(promptOf(sample).messages, options.systemPrompt);
  return tokenizer.encode(tokenizer.applyChatTemplate(prompt, { addGenerationPrompt: true }), { addSpecialTokens: false });
}

/** labels[i] = ids[i] where the token counts in the loss, IGNORE_INDEX elsewhere. */
export function labelsOf(encoded: Encoded): number[] {
  return encoded.ids.map((id, i) => (encoded.lossMask[i] ? id : IGNORE_INDEX));
}

export interface PaddedBatch {
  /** [B, L] token ids, right-padded with padId. */
  inputIds: number[][];
  /** [B, L] labels, IGNORE_INDEX at prompt and padding positions. */
  labels: number[][];
  /** [B, L] 1 for real tokens, 0 for padding. */
  attentionMask: number[][];
}

/**
 * Pads a batch on the right to its longest sample (rounded up to `padToMultipleOf`).
 * Plain arrays: make tensors with `tensor(batch.inputIds, { dtype: "int64" })`.
 */
export function padBatch(batch: readonly Encoded[], padId: number, options: { padToMultipleOf?: number } = {}): PaddedBatch {
  if (batch.length === 0) throw new Error("padBatch: empty batch");
  const multiple = options.padToMultipleOf ?? 1;
  const longest = Math.max(...batch.map((e) => e.ids.length));
  const length = Math.ceil(longest / multiple) * multiple;
  const pad = <T>(row: T[], value: T) => row.concat(new Array<T>(length - row.length).fill(value));
  return {
    inputIds: batch.map((e) => pad([...e.ids], padId)),
    labels: batch.map((e) => pad(labelsOf(e), IGNORE_INDEX)),
    attentionMask: batch.map((e) => pad(new Array<number>(e.ids.length).fill(1), 0)),
  };
}

export interface PackedBatch {
  /** [1, T] the samples' ids one after another, no padding. */
  inputIds: number[][];
  /** [1, T] labels; also IGNORE_INDEX at each sample's first token, which must not be predicted from the previous sample. */
  labels: number[][];
  /** [1, T] positions restarting at 0 for each sample (rotary embeddings see each sample alone). */
  positionIds: number[][];
  /** [n+1] cumulative sample lengths, 0 first, T last (flash-attention varlen's cu_seqlens). */
  cuSeqlens: number[];
  maxSeqlen: number;
  /** Where each sample lies in the pack, and its index in the input list. */
  sampleBoundaries: { sampleIndex: number; start: number; end: number }[];
}

/**
 * Packs samples, in order, into sequences of at most `maxTokens` tokens. Attention must stay
 * within a sample: use `cuSeqlens` (varlen kernels) or `blockCausalMask(cuSeqlens)`.
 */
export function packBatches(samples: readonly Encoded[], maxTokens: number): PackedBatch[] {
  if (!(Number.isInteger(maxTokens) && maxTokens > 0))
    throw new Error(`packBatches: maxTokens must be a positive whole number (got ${maxTokens})`);
  const groups: number[][] = [];
  let current: number[] = [];
  let used = 0;
  samples.forEach((sample, i) => {
    const n = sample.ids.length;
    if (n === 0) throw new Error(`packBatches: sample ${i} is empty`);
    if (n > maxTokens)
      throw new Error(`packBatches: sample ${i} has ${n} tokens, more than maxTokens = ${maxTokens} (format with maxLength ≤ maxTokens)`);
    if (used + n > maxTokens) {
      groups.push(current);
      current = [];
      used = 0;
    }
    current.push(i);
    used += n;
  });
  if (current.length > 0) groups.push(current);

  return groups.map((group) => {
    const ids: number[] = [],
      labels: number[] = [],
      positions: number[] = [];
    const cuSeqlens = [0];
    const sampleBoundaries: PackedBatch["sampleBoundaries"] = [];
    for (const sampleIndex of group) {
      const sample = samples[sampleIndex];
      const start = ids.length;
      const sampleLabels = labelsOf(sample);
      sampleLabels[0] = IGNORE_INDEX;
      ids.push(...sample.ids);
      labels.push(...sampleLabels);
      for (let p = 0; p < sample.ids.length; p++) positions.push(p);
      cuSeqlens.push(ids.length);
      sampleBoundaries.push({ sampleIndex, start, end: ids.length });
    }
    const maxSeqlen = Math.max(...sampleBoundaries.map((b) => b.end - b.start));
    return { inputIds: [ids], labels: [labels], positionIds: [positions], cuSeqlens, maxSeqlen, sampleBoundaries };
  });
}

/**
 * The [T, T] attention mask of a packed sequence, row-major, 1 = query i may attend key j:
 * causal within each sample, nothing across samples. Make a tensor with
 * `fromBytes(mask, [T, T], "bool")` (True = attend, as SDPA's boolean attn_mask).
 */
export function blockCausalMask(cuSeqlens: readonly number[]): Uint8Array {
  if (cuSeqlens.length < 2 || cuSeqlens[0] !== 0)
    throw new Error("blockCausalMask: cuSeqlens must start at 0 and hold at least one sample");
  const total = cuSeqlens[cuSeqlens.length - 1];
  const mask = new Uint8Array(total * total);
  for (let s = 0; s + 1 < cuSeqlens.length; s++) {
    const start = cuSeqlens[s],
      end = cuSeqlens[s + 1];
    if (end < start) throw new Error("blockCausalMask: cuSeqlens must not decrease");
    for (let i = start; i < end; i++) mask.fill(1, i * total + start, i * total + i + 1);
  }
  return mask;
}
