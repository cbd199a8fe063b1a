// Loading a data set file (JSON array or JSONL) in any of the usual shapes, as Samples.
// Every problem with the input is reported once, naming the file and the line or item.
import { displayPath, readInputFile } from "../util/files.js";
import { extractBoxed, parseAnswer } from "./answer.js";
import type { ChatMessage, Sample } from "./types.js";

export const ACCEPTED_SHAPES =
  '{question, answer}, {instruction, input?, output}, {prompt, completion}, {messages: [{role, content}, …]} with roles "system", "user", "assistant", ' +
  'or ShareGPT {conversations: [{from, value}, …], system?} with "from" "system", "human" (or "user"), "gpt" (or "assistant")';

/** A data set that cannot be used; the message names the file and, where it applies, the line or item. */
export class DatasetError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "DatasetError";
  }
}

/** Reads and normalizes a data set file. Throws DatasetError on any problem with it. */
export function loadDataset(path: string): Sample[] {
  const source = displayPath(path);
  let bytes: Buffer;
  try {
    bytes = readInputFile(path, "data set file"); // a folder, FIFO or device is refused, not waited on
  } catch (e) {
    throw new DatasetError((e as Error).message);
  }
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new DatasetError(`${source}: not valid UTF-8 text (at ${firstInvalidUtf8(bytes)}); save the file as UTF-8`);
  }
  return parseDataset(text, source);
}

/** Normalizes the text of a data set; `source` names it in errors. JSON array if it starts with "[", else JSONL. */
export function parseDataset(text: string, source: string): Sample[] {
  const body = text.replace(/^\uFEFF/, ""); // a byte-order mark is not content
  if (body.trim() === "") throw new DatasetError(`${source}: the file is empty`);
  const items = body.trimStart().startsWith("[") ? parseJsonArray(body, source) : parseJsonLines(body, source);
  if (items.length === 0) throw new DatasetError(`${source}: the data set has no items`);
  return items.map(({ value, where }) => toSample(value, `${source}: ${where}`));
}

interface RawItem {
  value: unknown;
  where: string;
}

function parseJsonArray(text: string, source: string): RawItem[] {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    throw new DatasetError(`${source}: malformed JSON${jsonErrorLocation(text, e as Error)}: ${(e as Error).message}`);
  }
  if (!Array.isArray(data)) throw new DatasetError(`${source}: expected a JSON array of items`);
  return data.map((value, i) => ({ value, where: `item ${i + 1}` }));
}

function parseJsonLines(text: string, source: string): RawItem[] {
  const items: RawItem[] = [];
  text.split(/\r?\n/).forEach((line, i) => {
    if (line.trim() === "") return; // blank lines, e.g. a trailing newline, carry nothing
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (e) {
      const hint =
        i === 0 && line.trim().startsWith("{") && !line.trim().endsWith("}")
          ? " (JSONL needs one whole object per line; a JSON file must be an array)"
          : "";
      throw new DatasetError(`${source}: line ${i + 1}: malformed JSON: ${(e as Error).message}${hint}`);
    }
    items.push({ value, where: `line ${i + 1}` });
  });
  return items;
}

/** " at line L, column C" from a JSON.parse error's "position N", when it has one. */
function jsonErrorLocation(text: string, e: Error): string {
  const m = /position (\d+)/.exec(e.message);
  if (!m) return "";
  const before = text.slice(0, Number(m[1]));
  const line = before.split("\n").length;
  return ` at line ${line}, column ${before.length - before.lastIndexOf("\n")}`;
}

/** "line L, byte B" of the first byte that makes the text invalid UTF-8. */
function firstInvalidUtf8(bytes: Uint8Array): string {
  const validPrefix = (n: number) => {
    try {
      new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(0, n), { stream: true }); // a cut-off character is not yet an error
      return true;
    } catch {
      return false;
    }
  };
  let lo = 0,
    hi = bytes.length; // bisect for the longest valid prefix
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (validPrefix(mid)) lo = mid;
    else hi = mid - 1;
  }
  const line = bytes.subarray(0, lo).filter((b) => b === 0x0a).length + 1;
  return `line ${line}, byte ${lo}`;
}

// ---- shapes ----

type Item = Record<string, unknown>;

function typeName(v: unknown): string {
  return v === null ? "null" : Array.isArray(v) ? "array" : typeof v;
}

/** A required, non-empty string field. */
function text(item: Item, field: string, where: string): string {
  const v = Object.hasOwn(item, field) ? item[field] : undefined;
  if (typeof v !== "string") throw new DatasetError(`${where}: field "${field}" must be a string, got ${typeName(v)}`);
  if (v.trim() === "") throw new DatasetError(`${where}: field "${field}" is empty`);
  return v;
}

const SHAPES: { name: string; keys: string[]; convert: (item: Item, where: string) => ChatMessage[] }[] = [
  {
    name: "{question, answer}",
    keys: ["question", "answer"],
    convert: (item, where) => [
      { role: "user", content: text(item, "question", where) },
      { role: "assistant", content: text(item, "answer", where) },
    ],
  },
  {
    name: "{instruction, input?, output}",
    keys: ["instruction", "output"],
    convert: (item, where) => {
      const instruction = text(item, "instruction", where);
      const input = Object.hasOwn(item, "input") ? item.input : undefined;
      // Alpaca-style files write a missing input as "" (or null): not an error.
      if (input !== undefined && input !== null && typeof input !== "string")
        throw new DatasetError(`${where}: field "input" must be a string, got ${typeName(input)}`);
      const user = typeof input === "string" && input.trim() !== "" ? `${instruction}\n\n${input}` : instruction;
      return [
        { role: "user", content: user },
        { role: "assistant", content: text(item, "output", where) },
      ];
    },
  },
  {
    name: "{prompt, completion}",
    keys: ["prompt", "completion"],
    convert: (item, where) => [
      { role: "user", content: text(item, "prompt", where) },
      { role: "assistant", content: text(item, "completion", where) },
    ],
  },
  { name: "{messages}", keys: ["messages"], convert: (item, where) => chat(item, where, MESSAGES) },
  { name: "ShareGPT {conversations}", keys: ["conversations"], convert: (item, where) => chat(item, where, SHAREGPT) },
];

type Role = ChatMessage["role"];

/** How a chat shape spells its turns: the list's field, each turn's role and text fields, and its role names. */
interface ChatSpelling {
  list: string;
  role: string;
  content: string;
  roles: Record<string, Role>;
}

const MESSAGES: ChatSpelling = {
  list: "messages",
  role: "role",
  content: "content",
  roles: { system: "system", user: "user", assistant: "assistant" },
};
/** ShareGPT, as LLaMA-Factory reads it: {from, value} turns, an optional top-level "system". */
const SHAREGPT: ChatSpelling = {
  list: "conversations",
  role: "from",
  content: "value",
  roles: { system: "system", human: "user", user: "user", gpt: "assistant", assistant: "assistant" },
};

const quoteList = (words: string[]) =>
  `${words
    .slice(0, -1)
    .map((w) => `"${w}"`)
    .join(", ")} or "${words.at(-1)}"`;

function chat(item: Item, where: string, o: ChatSpelling): ChatMessage[] {
  const value = item[o.list];
  if (!Array.isArray(value)) throw new DatasetError(`${where}: field "${o.list}" must be an array, got ${typeName(value)}`);
  if (value.length === 0) throw new DatasetError(`${where}: field "${o.list}" is empty`);
  const out = value.map((m: unknown, i): ChatMessage => {
    const at = `${where}: ${o.list}[${i}]`;
    if (typeof m !== "object" || m === null || Array.isArray(m))
      throw new DatasetError(`${at} must be an object {${o.role}, ${o.content}}, got ${typeName(m)}`);
    const role = Object.hasOwn(m, o.role) ? (m as Item)[o.role] : undefined;
    const other = o === SHAREGPT ? MESSAGES : SHAREGPT;
    if (role === undefined && Object.hasOwn(m, other.role))
      throw new DatasetError(
        `${at}: a {${other.role}, ${other.content}} turn: put those in "${other.list}", or write {${o.role}, ${o.content}} here`,
      );
    if (typeof role !== "string" || !Object.hasOwn(o.roles, role))
      throw new DatasetError(`${at}: "${o.role}" must be ${quoteList(Object.keys(o.roles))}, got ${JSON.stringify(role) ?? "nothing"}`);
    return { role: o.roles[role], content: text(m as Item, o.content, at) };
  });
  // ShareGPT files may give the system prompt beside the turns.
  if (o === SHAREGPT && Object.hasOwn(item, "system") && item.system !== null && item.system !== "")
    out.unshift({ role: "system", content: text(item, "system", where) });
  if (!out.some((m) => m.role === "user")) throw new DatasetError(`${where}: "${o.list}" has no user message`);
  if (!out.some((m) => m.role === "assistant")) throw new DatasetError(`${where}: "${o.list}" has no assistant message to learn from`);
  return out;
}

/** Converts one raw item to a Sample; `where` names it in errors. */
export function toSample(value: unknown, where: string): Sample {
  if (typeof value !== "object" || value === null || Array.isArray(value))
    throw new DatasetError(`${where}: each item must be a JSON object, got ${typeName(value)}. Accepted shapes: ${ACCEPTED_SHAPES}`);
  const item = value as Item;
  const has = (k: string) => Object.hasOwn(item, k);
  const matches = SHAPES.filter((s) => s.keys.every(has));
  if (matches.length === 0) {
    const keys = Object.keys(item);
    // One shape partly there ({question} alone): say which field is missing.
    const partial = SHAPES.filter((s) => s.keys.some(has));
    const missing =
      partial.length === 1
        ? `: missing ${partial[0]!.keys
            .filter((k) => !has(k))
            .map((k) => `"${k}"`)
            .join(", ")} for ${partial[0]!.name}`
        : "";
    throw new DatasetError(
      `${where}: matches no known shape (its keys: ${keys.length ? keys.join(", ") : "none"})${missing}. Accepted shapes: ${ACCEPTED_SHAPES}`,
    );
  }
  if (matches.length > 1)
    throw new DatasetError(`${where}: ambiguous, it has the fields of ${matches.map((s) => s.name).join(" and ")}; keep one shape`);
  const msgs = matches[0]!.convert(item, where);
  const answer = finalAnswer(msgs.filter((m) => m.role === "assistant").at(-1)!.content);
  return answer === undefined ? { messages: msgs } : { messages: msgs, answer };
}

/** The boxed answer of a reply, or the whole reply when it is just a number ("3/8"). */
function finalAnswer(reply: string): string | undefined {
  const boxed = extractBoxed(reply);
  if (boxed !== null && boxed !== "") return boxed;
  return parseAnswer(reply) !== null ? reply.trim() : undefined;
}
