// Hugging Face tokenizers: tokenizer.json (through @huggingface/tokenizers) plus the chat template
// (through @huggingface/jinja), read from a model directory the way transformers reads them.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { Tokenizer } from "@huggingface/tokenizers";
import { CHATML_TEMPLATE } from "../data/tiny-tokenizer.js";
import type { ChatMessage } from "../data/types.js";
import { displayPath, readInputText } from "../util/files.js";
import { ChatTemplate } from "./chat-template.js";
import { checkRegex } from "./regex.js";

export interface EncodeOptions {
  /** Add the tokenizer's own special tokens (e.g. Llama 3's BOS). Default true, as transformers.
   *  Pass false for text rendered by a chat template: the template already wrote them. */
  addSpecialTokens?: boolean;
}

export interface DecodeOptions {
  /** Drop special tokens (<|im_end|>, BOS…) from the text. Default false. */
  skipSpecialTokens?: boolean;
}

export interface ChatTemplateOptions {
  /** End with the opening of an assistant turn, ready for generation. Default false. */
  addGenerationPrompt?: boolean;
  /** Further template variables (e.g. `enable_thinking` for Qwen3). */
  variables?: Record<string, unknown>;
}

export interface LoadTokenizerOptions {
  /** When the model has no chat template, use plain ChatML instead of failing (with a warning). */
  chatMLFallback?: boolean;
  /** Where warnings go (default console.warn). */
  warn?: (message: string) => void;
}

/** A special token with its id; absent when the model does not define it. */
export interface SpecialToken {
  content: string;
  id: number;
}

// Tokens that close an assistant turn in the common chat formats (ChatML, Llama 3, Phi, Gemma).
const END_OF_TURN_TOKENS = ["<|im_end|>", "<|eot_id|>", "<|eom_id|>", "<|end|>", "<end_of_turn>", "<|endoftext|>"];

/** A tokenizer config value that names a token: a string, or an AddedToken dict in older files. */
function tokenContent(value: unknown): string | undefined {
  if (typeof value === "string") return value;
  if (value && typeof value === "object" && typeof (value as { content?: unknown }).content === "string") {
    return (value as { content: string }).content;
  }
  return undefined;
}

function pickChatTemplate(value: unknown, source: string): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === "string") return value;
  // Older configs hold a list of named templates; transformers uses the one named "default".
  if (Array.isArray(value)) {
    const named = value.find((t) => t && typeof t === "object" && t.name === "default");
    if (named && typeof named.template === "string") return named.template;
    throw new Error(`${source}: chat_template is a list without a "default" entry (names: ${value.map((t) => t?.name).join(", ")})`);
  }
  throw new Error(`${source}: chat_template must be a string or a list of {name, template}`);
}

export class HfTokenizer {
  readonly bos?: SpecialToken;
  readonly eos?: SpecialToken;
  readonly pad?: SpecialToken;
  readonly unk?: SpecialToken;
  /** Ids of every token marked special (never split by the pre-tokenizer, dropped by skipSpecialTokens). */
  readonly specialTokenIds: ReadonlySet<number>;
  /** Ids that end generation or an assistant turn: EOS plus the end-of-turn tokens this vocabulary has. */
  readonly stopTokenIds: readonly number[];
  /** One past the largest id (the embedding table needs at least this many rows). */
  readonly vocabSize: number;
  /** The most characters one token stands for: its longest vocabulary entry (byte-level symbols are one byte each). */
  readonly maxTokenChars: number;
  /** The Jinja source of the chat template, if any. */
  readonly chatTemplate?: string;

  private readonly inner: Tokenizer;
  private readonly config: Record<string, unknown>;
  private readonly template?: ChatTemplate;

  /**
   * @param tokenizerJson contents of tokenizer.json
   * @param tokenizerConfig contents of tokenizer_config.json ({} when absent)
   * @param chatTemplate a template that overrides tokenizer_config's (chat_template.jinja)
   * @param source names the files in error messages
   */
  constructor(tokenizerJson: unknown, tokenizerConfig: Record<string, unknown> = {}, chatTemplate?: string, source = "tokenizer") {
    if (!tokenizerJson || typeof tokenizerJson !== "object" || Array.isArray(tokenizerJson)) {
      throw new Error(`${source}: tokenizer.json must hold a JSON object`);
    }
    const json = { ...(tokenizerJson as Record<string, unknown>) };
    checkTokenizerJson(json, `${source}/tokenizer.json`);
    // The library insists these keys exist; files written by older tokenizers may omit them.
    for (const key of ["normalizer", "pre_tokenizer", "post_processor", "decoder"]) json[key] ??= null;
    json.added_tokens = mergeAddedTokens(json.added_tokens, tokenizerConfig.added_tokens_decoder, `${source}/tokenizer_config.json`);

    this.config = normalizeConfig(tokenizerConfig);
    try {
      this.inner = new Tokenizer(json, this.config);
    } catch (e) {
      throw new Error(`${source}: cannot build the tokenizer: ${(e as Error).message}`);
    }

    const lookup = (name: string): SpecialToken | undefined => {
      const content = tokenContent(this.config[name]);
      if (content === undefined) return undefined;
      const id = this.inner.token_to_id(content);
      if (id === undefined) throw new Error(`${source}: ${name} "${content}" is not in the vocabulary`);
      return { content, id };
    };
    this.bos = lookup("bos_token");
    this.eos = lookup("eos_token");
    this.pad = lookup("pad_token");
    this.unk = lookup("unk_token");

    const special = new Set<number>();
    for (const [id, token] of this.inner.get_added_tokens_decoder()) if (token.special) special.add(id);
    for (const t of [this.bos, this.eos, this.pad, this.unk]) if (t) special.add(t.id);
    this.specialTokenIds = special;

    const stops = new Set<number>();
    if (this.eos) stops.add(this.eos.id);
    for (const content of END_OF_TURN_TOKENS) {
      const id = this.inner.token_to_id(content);
      if (id !== undefined && special.has(id)) stops.add(id);
    }
    this.stopTokenIds = [...stops];

    let maxId = -1;
    let maxChars = 1;
    for (const [token, id] of this.inner.get_vocab(true)) {
      maxId = Math.max(maxId, id);
      maxChars = Math.max(maxChars, token.length);
    }
    this.vocabSize = maxId + 1;
    this.maxTokenChars = maxChars;

    this.chatTemplate = chatTemplate ?? pickChatTemplate(this.config.chat_template, source);
    if (this.chatTemplate !== undefined) this.template = new ChatTemplate(this.chatTemplate, source);
  }

  get hasChatTemplate(): boolean {
    return this.template !== undefined;
  }

  encode(text: string, options: EncodeOptions = {}): number[] {
    return this.inner.encode(text, { add_special_tokens: options.addSpecialTokens ?? true }).ids;
  }

  decode(ids: readonly number[], options: DecodeOptions = {}): string {
    if (ids.length === 0) return "";
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize || this.inner.id_to_token(id) === undefined) {
        throw new Error(`decode: token id ${id} is not in the vocabulary (size ${this.vocabSize})`);
      }
    }
    return this.inner.decode([...ids], { skip_special_tokens: options.skipSpecialTokens ?? false });
  }

  tokenToId(token: string): number | undefined {
    return this.inner.token_to_id(token);
  }

  idToToken(id: number): string | undefined {
    return this.inner.id_to_token(id);
  }

  /**
   * Renders a conversation with the model's chat template, passing the variables transformers
   * passes: messages, add_generation_prompt, the special tokens (bos_token, eos_token, …);
   * `tools` and `documents` stay undefined.
   */
  applyChatTemplate(messages: readonly ChatMessage[], options: ChatTemplateOptions = {}): string {
    if (!this.template) throw new Error("applyChatTemplate: this tokenizer has no chat template");
    const variables: Record<string, unknown> = {
      messages: messages.map((m) => ({ role: m.role, content: m.content })),
      add_generation_prompt: options.addGenerationPrompt ?? false,
    };
    for (const name of ["bos_token", "eos_token", "unk_token", "pad_token"]) {
      const content = tokenContent(this.config[name]);
      if (content !== undefined) variables[name] = content;
    }
    if (Array.isArray(this.config.additional_special_tokens)) variables.additional_special_tokens = this.config.additional_special_tokens;
    Object.assign(variables, options.variables);
    return this.template.render(variables);
  }
}

// Special tokens in tokenizer_config may be AddedToken dicts; the library wants plain strings.
// clean_up_tokenization_spaces defaults to false as in current transformers (true would rewrite " ." to ".").
function normalizeConfig(config: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...config };
  for (const name of ["bos_token", "eos_token", "unk_token", "pad_token", "sep_token", "cls_token", "mask_token"]) {
    if (name in out) out[name] = tokenContent(out[name]) ?? null;
  }
  if (Array.isArray(out.additional_special_tokens)) {
    out.additional_special_tokens = out.additional_special_tokens.map(tokenContent).filter((t) => t !== undefined);
  }
  out.clean_up_tokenization_spaces = out.clean_up_tokenization_spaces ?? false;
  return out;
}

// transformers also registers tokens listed only in tokenizer_config's added_tokens_decoder.
function mergeAddedTokens(fromJson: unknown, fromConfig: unknown, source: string): unknown[] {
  const tokens = Array.isArray(fromJson) ? [...fromJson] : [];
  if (fromConfig === undefined || fromConfig === null) return tokens;
  if (typeof fromConfig !== "object" || Array.isArray(fromConfig))
    throw new Error(`${source}: "added_tokens_decoder" must map token ids to tokens`);
  const known = new Set(tokens.map((t) => (t as { id?: number }).id));
  for (const [key, token] of Object.entries(fromConfig as Record<string, unknown>)) {
    const id = Number(key);
    if (!/^\d+$/.test(key) || !isTokenId(id))
      throw new Error(`${source}: "added_tokens_decoder" has the key ${JSON.stringify(key)}, not a token id`);
    const content = (token as { content?: unknown } | null)?.content;
    if (typeof content !== "string" || content === "") throw new Error(`${source}: "added_tokens_decoder" ${key} has no "content" string`);
    if (!known.has(id)) tokens.push({ ...(token as object), id });
  }
  return tokens;
}

const isTokenId = (v: unknown): v is number => typeof v === "number" && Number.isSafeInteger(v) && v >= 0 && v < 2 ** 31;
const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/**
 * What the Rust tokenizers library checks when it loads tokenizer.json, and what JavaScript needs
 * on top: a model with a vocabulary that is not empty, token ids that are ids, BPE merges whose
 * parts and result are in the vocabulary, added tokens with an id and content, and split and
 * replace patterns whose matching cost is bounded (regex.ts). `source` names the file.
 */
export function checkTokenizerJson(json: Record<string, unknown>, source: string): void {
  const fail = (problem: string): never => {
    throw new Error(`${source}: ${problem}`);
  };
  const model = json.model;
  if (!isPlainObject(model) || typeof model.type !== "string") fail(`no "model" with a "type" (is it a Hugging Face tokenizers file?)`);
  const m = model as Record<string, unknown>;
  const vocabIds = (): Record<string, unknown> => {
    if (!isPlainObject(m.vocab)) return fail(`"model.vocab" must map tokens to ids`);
    const entries = Object.entries(m.vocab);
    if (entries.length === 0) fail("the vocabulary (model.vocab) is empty");
    for (const [token, id] of entries)
      if (!isTokenId(id)) fail(`model.vocab ${JSON.stringify(token)} has the id ${JSON.stringify(id)}, not a token id`);
    return m.vocab;
  };
  switch (m.type) {
    case "BPE": {
      const vocab = vocabIds();
      const merges = m.merges ?? [];
      if (!Array.isArray(merges)) fail(`"model.merges" must be a list`);
      const prefix = typeof m.continuing_subword_prefix === "string" ? m.continuing_subword_prefix : "";
      (merges as unknown[]).forEach((merge, i) => {
        const pair = typeof merge === "string" ? merge.split(" ") : merge;
        if (!Array.isArray(pair) || pair.length !== 2 || !pair.every((p) => typeof p === "string" && p !== ""))
          fail(`model.merges[${i}] is ${JSON.stringify(merge)}, not a pair of tokens`);
        const [a, b] = pair as [string, string];
        for (const token of [a, b, a + b.slice(prefix.length)]) {
          if (!Object.hasOwn(vocab, token))
            fail(`model.merges[${i}] ${JSON.stringify(merge)}: ${JSON.stringify(token)} is not in the vocabulary (damaged merges?)`);
        }
      });
      break;
    }
    case "WordPiece":
    case "WordLevel":
      vocabIds();
      break;
    case "Unigram": {
      const vocab = m.vocab;
      if (!Array.isArray(vocab) || vocab.length === 0)
        fail(`"model.vocab" of a Unigram model must be a list of [piece, score] that is not empty`);
      (vocab as unknown[]).forEach((entry, i) => {
        if (!Array.isArray(entry) || typeof entry[0] !== "string" || typeof entry[1] !== "number" || !Number.isFinite(entry[1]))
          fail(`model.vocab[${i}] is ${JSON.stringify(entry)}, not a [piece, finite score] pair`);
      });
      break;
    }
    default:
      fail(`model type ${JSON.stringify(m.type)} is not supported (BPE, WordPiece, WordLevel or Unigram)`);
  }
  const added = json.added_tokens ?? [];
  if (!Array.isArray(added)) fail(`"added_tokens" must be a list`);
  (added as unknown[]).forEach((token, i) => {
    const t = token as { id?: unknown; content?: unknown } | null;
    if (!isPlainObject(t) || !isTokenId(t.id) || typeof t.content !== "string" || t.content === "")
      fail(`added_tokens[${i}] must have an "id" and a "content", got ${JSON.stringify(token)}`);
  });
  checkPatterns(json, source, "");
}

/** Every {"Regex": pattern} in the file (splits, replaces) must pass regex.ts's check. */
function checkPatterns(value: unknown, source: string, at: string): void {
  if (Array.isArray(value)) {
    value.forEach((v, i) => {
      checkPatterns(v, source, `${at}[${i}]`);
    });
  } else if (isPlainObject(value)) {
    for (const [key, v] of Object.entries(value)) {
      if (key === "vocab" || key === "merges") continue;
      if (key === "Regex" && typeof v === "string") {
        const { problem } = checkRegex(v, "tokenizer");
        if (problem !== undefined) throw new Error(`${source}: the pattern ${JSON.stringify(v)} at ${at.slice(1)} is refused: ${problem}`);
      } else checkPatterns(v, source, `${at}.${key}`);
    }
  }
}

/** A JSON file of a tokenizer, read within a size limit (FIFOs and folders refused); `what` names it. */
function readJson(path: string, what: string, maxBytes: number): unknown {
  const text = readInputText(path, what, maxBytes);
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new Error(`${displayPath(path)} is not valid JSON: ${(e as Error).message.replace(/\s+/g, " ").slice(0, 200)}`);
  }
}

/** Size limits of the tokenizer files: far above real ones (Gemma's tokenizer.json is 33 MB). */
const MAX_TOKENIZER_BYTES = 1 << 30;
const MAX_TOKENIZER_CONFIG_BYTES = 64 << 20;

/**
 * Loads the tokenizer of a Hugging Face model directory: tokenizer.json (required),
 * tokenizer_config.json (special tokens, chat template) and chat_template.jinja, which takes
 * precedence over tokenizer_config's chat_template as in transformers.
 * A model without a chat template fails here, unless `chatMLFallback` is set (then ChatML, with a warning).
 */
export async function loadTokenizer(modelDir: string, options: LoadTokenizerOptions = {}): Promise<HfTokenizer> {
  const where = displayPath(modelDir);
  const tokenizerPath = join(modelDir, "tokenizer.json");
  if (!existsSync(tokenizerPath)) {
    throw new Error(`no tokenizer.json in ${where} (only Hugging Face "fast" tokenizer files are supported)`);
  }
  const json = readJson(tokenizerPath, "tokenizer file", MAX_TOKENIZER_BYTES);
  const configPath = join(modelDir, "tokenizer_config.json");
  const config = existsSync(configPath) ? readJson(configPath, "tokenizer config", MAX_TOKENIZER_CONFIG_BYTES) : {};
  if (!isPlainObject(config)) throw new Error(`${displayPath(configPath)} must hold a JSON object`);
  const templatePath = join(modelDir, "chat_template.jinja");
  const template = existsSync(templatePath) ? readInputText(templatePath, "chat template", MAX_TOKENIZER_CONFIG_BYTES) : undefined;

  const tokenizer = new HfTokenizer(json, config, template, where);
  checkFitsModel(tokenizer, modelDir);
  if (tokenizer.hasChatTemplate) return tokenizer;
  if (!options.chatMLFallback) {
    throw new Error(
      `${modelDir} has no chat template (tokenizer_config.json chat_template or chat_template.jinja); pass chatMLFallback to use plain ChatML`,
    );
  }
  (options.warn ?? console.warn)(`warning: ${where} has no chat template; using plain ChatML (<|im_start|>role\\n…<|im_end|>)`);
  return new HfTokenizer(json, config, CHATML_TEMPLATE, where);
}

/**
 * The model in the same folder needs an embedding row for every token id: a config.json whose
 * vocab_size is smaller than the tokenizer's ids is refused here, naming both files (libtorch
 * would fail mid-run with "index out of range"). A config.json that does not parse is left to the
 * model loader to report.
 */
function checkFitsModel(tokenizer: HfTokenizer, modelDir: string): void {
  const configPath = join(modelDir, "config.json");
  if (!existsSync(configPath)) return;
  let vocabSize: unknown;
  try {
    vocabSize = (JSON.parse(readInputText(configPath, "model config", MAX_TOKENIZER_CONFIG_BYTES)) as { vocab_size?: unknown })?.vocab_size;
  } catch {
    return;
  }
  if (typeof vocabSize === "number" && tokenizer.vocabSize > vocabSize) {
    throw new Error(
      `${displayPath(join(modelDir, "tokenizer.json"))} has token ids up to ${tokenizer.vocabSize - 1}, but ${displayPath(configPath)} has vocab_size ${vocabSize}: the model has no embedding for them (is the tokenizer from another model?)`,
    );
  }
}
