// Hugging Face tokenizers: tokenizer.json (through @huggingface/tokenizers) plus the chat template
// (through @huggingface/jinja), read from a model directory the way transformers reads them.
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { Template } from "@huggingface/jinja";
import { Tokenizer } from "@huggingface/tokenizers";
import { CHATML_TEMPLATE } from "../data/tiny-tokenizer.js";
import type { ChatMessage } from "../data/types.js";

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
  /** The Jinja source of the chat template, if any. */
  readonly chatTemplate?: string;

  private readonly inner: Tokenizer;
  private readonly config: Record<string, unknown>;
  private readonly template?: Template;

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
    const model = json.model as { type?: unknown } | undefined;
    if (!model || typeof model !== "object" || typeof model.type !== "string") {
      throw new Error(`${source}: tokenizer.json has no "model" with a "type" (is it a Hugging Face tokenizers file?)`);
    }
    // The library insists these keys exist; files written by older tokenizers may omit them.
    for (const key of ["normalizer", "pre_tokenizer", "post_processor", "decoder"]) json[key] ??= null;
    json.added_tokens = mergeAddedTokens(json.added_tokens, tokenizerConfig.added_tokens_decoder);

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
    for (const id of this.inner.get_vocab(true).values()) maxId = Math.max(maxId, id);
    this.vocabSize = maxId + 1;

    this.chatTemplate = chatTemplate ?? pickChatTemplate(this.config.chat_template, source);
    if (this.chatTemplate !== undefined) {
      try {
        this.template = new Template(this.chatTemplate);
      } catch (e) {
        throw new Error(`${source}: the chat template does not parse: ${(e as Error).message}`);
      }
    }
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
    try {
      return this.template.render(variables);
    } catch (e) {
      throw new Error(`chat template failed to render: ${(e as Error).message}`);
    }
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
function mergeAddedTokens(fromJson: unknown, fromConfig: unknown): unknown[] {
  const tokens = Array.isArray(fromJson) ? [...fromJson] : [];
  if (fromConfig && typeof fromConfig === "object") {
    const known = new Set(tokens.map((t) => (t as { id?: number }).id));
    for (const [id, token] of Object.entries(fromConfig as Record<string, Record<string, unknown>>)) {
      if (!known.has(Number(id)) && typeof token?.content === "string") tokens.push({ ...token, id: Number(id) });
    }
  }
  return tokens;
}

async function readJson(path: string, what: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (e) {
    throw new Error(`cannot read ${what} ${path}: ${(e as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new Error(`${path} is not valid JSON: ${(e as Error).message}`);
  }
}

/**
 * Loads the tokenizer of a Hugging Face model directory: tokenizer.json (required),
 * tokenizer_config.json (special tokens, chat template) and chat_template.jinja, which takes
 * precedence over tokenizer_config's chat_template as in transformers.
 * A model without a chat template fails here, unless `chatMLFallback` is set (then ChatML, with a warning).
 */
export async function loadTokenizer(modelDir: string, options: LoadTokenizerOptions = {}): Promise<HfTokenizer> {
  const tokenizerPath = join(modelDir, "tokenizer.json");
  if (!existsSync(tokenizerPath)) {
    throw new Error(`no tokenizer.json in ${modelDir} (only Hugging Face "fast" tokenizer files are supported)`);
  }
  const json = await readJson(tokenizerPath, "tokenizer file");
  const configPath = join(modelDir, "tokenizer_config.json");
  const config = existsSync(configPath) ? await readJson(configPath, "tokenizer config") : {};
  if (!config || typeof config !== "object" || Array.isArray(config)) throw new Error(`${configPath} must hold a JSON object`);
  const templatePath = join(modelDir, "chat_template.jinja");
  const template = existsSync(templatePath) ? await readFile(templatePath, "utf8") : undefined;

  const tokenizer = new HfTokenizer(json, config as Record<string, unknown>, template, modelDir);
  if (tokenizer.hasChatTemplate) return tokenizer;
  if (!options.chatMLFallback) {
    throw new Error(
      `${modelDir} has no chat template (tokenizer_config.json chat_template or chat_template.jinja); pass chatMLFallback to use plain ChatML`,
    );
  }
  (options.warn ?? console.warn)(`warning: ${modelDir} has no chat template; using plain ChatML (<|im_start|>role\\n…<|im_end|>)`);
  return new HfTokenizer(json, config as Record<string, unknown>, CHATML_TEMPLATE, modelDir);
}
