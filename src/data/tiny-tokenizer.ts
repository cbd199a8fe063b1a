// A byte-level BPE tokenizer in Hugging Face `tokenizer.json` form, for the tiny demo model and tests.
//
// It is laid out like Qwen2's tokenizer so the same loading and chat code serves both:
// - the same pre-tokenizer (Qwen2's split regex, then GPT-2's ByteLevel byte→symbol map) and decoder;
// - ids 0–255 are the 256 byte symbols in GPT-2/Qwen2 order (so "Ġ", the space byte, is 220 as in
//   Qwen2), then the learned merges, then the ChatML special tokens;
// - unlike Qwen2 there is no NFC normalizer, so encode→decode is the identity on any text.
//
// The chat template is plain ChatML without a built-in system prompt: it renders exactly the
// messages it is given. A default system prompt (Qwen2.5-Math's "Please reason step by step…") is
// the data formatter's choice (`formatSamples({ systemPrompt })`), not the template's.

import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";

/** Qwen2's pre-tokenizer split pattern, as written in its tokenizer.json (Oniguruma syntax). */
export const QWEN2_SPLIT_REGEX =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

// The same pattern in JavaScript syntax (Node 20 has no inline `(?i:…)` groups), used to train merges.
const QWEN2_SPLIT_JS =
  /'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD]|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+/gu;

export const ENDOFTEXT = "<|endoftext|>";
export const IM_START = "<|im_start|>";
export const IM_END = "<|im_end|>";
export const CHATML_SPECIAL_TOKENS = [ENDOFTEXT, IM_START, IM_END] as const;

/** Plain ChatML, the message loop of Qwen2.5's template without tools or a default system prompt. */
export const CHATML_TEMPLATE =
  "{%- for message in messages %}" +
  "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}" +
  "{%- endfor %}" +
  "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}";

/**
 * GPT-2's byte→symbol map: printable Latin-1 bytes map to themselves, the other 68 bytes to
 * U+0100 onwards (so a space, 0x20, becomes "Ġ"). Entry order is vocabulary order: id = position.
 */
export function byteLevelAlphabet(): { byte: number; symbol: string }[] {
  const printable = (b: number) => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const entries: { byte: number; symbol: string }[] = [];
  for (let b = 0; b < 256; b++) if (printable(b)) entries.push({ byte: b, symbol: String.fromCharCode(b) });
  let next = 0;
  for (let b = 0; b < 256; b++) if (!printable(b)) entries.push({ byte: b, symbol: String.fromCharCode(256 + next++) });
  return entries;
}

/** byte value → its byte-level symbol. */
export function byteToSymbolTable(): string[] {
  const table: string[] = new Array(256);
  for (const { byte, symbol } of byteLevelAlphabet()) table[byte] = symbol;
  return table;
}

/** Splits text the way the tokenizer's pre-tokenizer does and maps each piece to byte symbols. */
export function byteLevelPieces(text: string): string[] {
  const table = byteToSymbolTable();
  const encoder = new TextEncoder();
  return (text.match(QWEN2_SPLIT_JS) ?? []).map((piece) => Array.from(encoder.encode(piece), (b) => table[b]).join(""));
}

/**
 * Learns up to `numMerges` BPE merges from a corpus (classic Sennrich et al. training on
 * pre-tokenized pieces). Ties go to the pair seen first, so the result is deterministic.
 * Stops early when no pair occurs at least twice.
 */
export function trainBpeMerges(corpus: string[], numMerges: number): [string, string][] {
  // Distinct pieces with their counts; each piece is a list of current symbols.
  const counts = new Map<string, number>();
  for (const text of corpus) for (const piece of byteLevelPieces(text)) counts.set(piece, (counts.get(piece) ?? 0) + 1);
  const words = [...counts].map(([piece, count]) => ({ symbols: Array.from(piece), count }));

  const merges: [string, string][] = [];
  while (merges.length < numMerges) {
    const pairCounts = new Map<string, { pair: [string, string]; count: number }>();
    for (const { symbols, count } of words) {
      for (let i = 0; i + 1 < symbols.length; i++) {
        const key = `${symbols[i]}\u0000${symbols[i + 1]}`;
        const entry = pairCounts.get(key);
        if (entry) entry.count += count;
        else pairCounts.set(key, { pair: [symbols[i], symbols[i + 1]], count });
      }
    }
    let best: { pair: [string, string]; count: number } | undefined;
    for (const entry of pairCounts.values()) if (!best || entry.count > best.count) best = entry;
    if (!best || best.count < 2) break;
    merges.push(best.pair);
    const [left, right] = best.pair;
    for (const word of words) {
      const merged: string[] = [];
      for (let i = 0; i < word.symbols.length; i++) {
        if (i + 1 < word.symbols.length && word.symbols[i] === left && word.symbols[i + 1] === right) {
          merged.push(left + right);
          i++;
        } else merged.push(word.symbols[i]);
      }
      word.symbols = merged;
    }
  }
  return merges;
}

export interface ByteLevelTokenizerOptions {
  /** Texts to learn merges from; without it the vocabulary is the 256 bytes alone. */
  corpus?: string[];
  /** Upper bound on learned merges (default 0: pure byte tokenizer). */
  numMerges?: number;
  /** Context length written to tokenizer_config.json (default 32768, as Qwen2.5). */
  modelMaxLength?: number;
}

export interface ByteLevelTokenizerFiles {
  /** Contents of tokenizer.json. */
  tokenizerJson: Record<string, unknown>;
  /** Contents of tokenizer_config.json. */
  tokenizerConfig: Record<string, unknown>;
}

const byteLevelStep = { type: "ByteLevel", add_prefix_space: false, trim_offsets: false, use_regex: false };

/** Builds tokenizer.json + tokenizer_config.json for a byte-level BPE tokenizer with ChatML tokens. */
export function buildByteLevelTokenizer(options: ByteLevelTokenizerOptions = {}): ByteLevelTokenizerFiles {
  const numMerges = options.numMerges ?? 0;
  if (!Number.isInteger(numMerges) || numMerges < 0)
    throw new Error(`buildByteLevelTokenizer: numMerges must be a whole number ≥ 0 (got ${numMerges})`);
  const merges = numMerges > 0 && options.corpus ? trainBpeMerges(options.corpus, numMerges) : [];

  const vocab: Record<string, number> = {};
  for (const { symbol } of byteLevelAlphabet()) vocab[symbol] = Object.keys(vocab).length;
  for (const [left, right] of merges) vocab[left + right] = Object.keys(vocab).length;

  const firstSpecialId = Object.keys(vocab).length;
  const addedTokens = CHATML_SPECIAL_TOKENS.map((content, i) => ({
    id: firstSpecialId + i,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  }));

  const tokenizerJson = {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: addedTokens,
    normalizer: null,
    pre_tokenizer: {
      type: "Sequence",
      pretokenizers: [{ type: "Split", pattern: { Regex: QWEN2_SPLIT_REGEX }, behavior: "Isolated", invert: false }, byteLevelStep],
    },
    post_processor: byteLevelStep,
    decoder: byteLevelStep,
    model: {
      type: "BPE",
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: "",
      end_of_word_suffix: "",
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      // "left right" strings: the format every tokenizers version reads (byte symbols hold no spaces).
      merges: merges.map(([left, right]) => `${left} ${right}`),
    },
  };

  const tokenizerConfig = {
    add_bos_token: false,
    add_prefix_space: false,
    added_tokens_decoder: Object.fromEntries(addedTokens.map(({ id, ...rest }) => [String(id), rest])),
    additional_special_tokens: [IM_START, IM_END],
    bos_token: null,
    chat_template: CHATML_TEMPLATE,
    clean_up_tokenization_spaces: false,
    eos_token: IM_END,
    errors: "replace",
    model_max_length: options.modelMaxLength ?? 32768,
    pad_token: ENDOFTEXT,
    split_special_tokens: false,
    tokenizer_class: "Qwen2Tokenizer",
    unk_token: null,
  };

  return { tokenizerJson, tokenizerConfig };
}

/** Writes tokenizer.json and tokenizer_config.json into `dir` (created if missing). */
export async function writeTokenizerFiles(dir: string, files: ByteLevelTokenizerFiles): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, "tokenizer.json"), `${JSON.stringify(files.tokenizerJson, null, 2)}\n`);
  await writeFile(join(dir, "tokenizer_config.json"), `${JSON.stringify(files.tokenizerConfig, null, 2)}\n`);
}
