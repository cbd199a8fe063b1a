// One definition per setting. A schema lists a command's settings, each with its kind (what a
// valid value is), help text, default, other spellings and whether it decides a run's numbers;
// from it come the command-line flags (cli/), the keys an experiment or config file may use
// (with the Hugging Face / PEFT / LLaMA-Factory spellings as aliases), validation with one clear
// message, the defaults, a run's identity (the fingerprint that resume and compare check) and the
// summary of the settings a run used.
import { createRequire } from "node:module";
import type YAML from "yaml";

/** The yaml package, loaded by the first YAML file read: it is most of a command's start-up time otherwise. */
let yamlPackage: typeof YAML | undefined;
const loadYaml = (): typeof YAML => (yamlPackage ??= createRequire(import.meta.url)("yaml") as typeof YAML);

/** What a valid value of a setting is, and how to read it from a file value or a flag's text. */
export interface Kind<T> {
  /** Words for messages: "an integer ≥ 1". */
  readonly expected: string;
  /** The placeholder in --help: "<n>". Switches (booleans) have none. */
  readonly placeholder: string | null;
  /** A value from a config file (JSON / YAML), or undefined when it is not valid. */
  fromValue(v: unknown): T | undefined;
  /** A flag's text, or undefined when it is not valid. */
  fromText(s: string): T | undefined;
  /** How a value reads in help, messages and summaries. */
  show(v: T): string;
}

/** Another name a config file may use for a setting, with an optional mapping of its value. */
export interface Alias {
  name: string;
  /** The setting's value for the alias's value; undefined when the alias's value is not valid. */
  map?: (v: unknown) => unknown;
  /** What the alias's value must be, for messages (default: the setting's kind). */
  expected?: string;
}

export interface Setting<T> {
  kind: Kind<T>;
  help: string;
  /** undefined: the setting is optional and has no default. */
  default?: NoInfer<T>;
  /** The flag's name without "--" (default: the key in kebab-case); null: config files only. */
  flag?: string | null;
  /** Other config-file names (the key itself and its snake_case form are always accepted). */
  aliases?: (string | Alias)[];
  /**
   * Part of a run's identity: "training" when the trained weights depend on it (a resume must use
   * the same value), "evaluation" when only the held-out numbers do; runs are comparable when both
   * agree. Unset for settings that change neither (paths, progress output, how often to save).
   */
  identity?: "training" | "evaluation";
}

export type Schema = Record<string, Setting<unknown>>;

/** A well-known key (Hugging Face TrainingArguments, PEFT LoraConfig, LLaMA-Factory) svdlora deliberately has no setting for. */
export interface NoSetting {
  /** Why, in one line: what a config file giving the key is told, and what docs/config.md lists. */
  why: string;
  /** Values that ask for what svdlora does anyway: accepted, and ignored. */
  same?: readonly unknown[];
}
type ValueOf<X> = X extends Setting<infer T> ? T : never;
/** The values of a schema's settings: those with a default are always there, the others optional. */
export type Values<S extends Schema> = { [K in keyof S as S[K] extends { default: unknown } ? K : never]: ValueOf<S[K]> } & {
  [K in keyof S as S[K] extends { default: unknown } ? never : K]?: ValueOf<S[K]>;
};

/** A setting, typed so that whether it has a default shows in Values. */
export function setting<T>(s: Setting<T> & { default: NoInfer<T> }): Setting<T> & { default: T };
export function setting<T>(s: Setting<T>): Setting<T>;
export function setting<T>(s: Setting<T>): Setting<T> {
  return s;
}

/** A bad setting value: the key, what was expected and what was given. Its message is in library terms. */
export class SettingError extends Error {
  override name = "SettingError";
  constructor(
    readonly key: string,
    readonly expected: string,
    readonly got: unknown,
    /** Where the value came from (a config file), when not from code. */
    readonly source?: string,
    /** The name the value was given under, when not the key (a snake_case key or an alias). */
    readonly givenAs?: string,
  ) {
    super(`${source ? `${source}: ` : ""}${givenAs ?? key} must be ${expected}, got ${showValue(got)}`);
  }
}

/** A value as users wrote it, on one line: .inf / .nan / null read as such. */
export function showValue(v: unknown): string {
  if (v === undefined) return "nothing";
  if (typeof v === "number" && !Number.isFinite(v)) return String(v);
  const text = JSON.stringify(v) ?? String(v);
  return text.length > 80 ? `${text.slice(0, 77)}…` : text;
}

// ---- kinds -------------------------------------------------------------------------------------

const isFiniteNumber = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v);
const NUMBER_TEXT = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;
const numberFromText = (s: string): number | undefined => (NUMBER_TEXT.test(s.trim()) ? Number(s) : undefined);

function kind<T>(k: Omit<Kind<T>, "show"> & { show?: (v: T) => string }): Kind<T> {
  return { show: (v) => String(v), ...k };
}

/** A whole number (a safe integer: beyond 2^53 JavaScript would round it) in [min, max]. */
export function int(o: { min?: number; max?: number } = {}): Kind<number> {
  const { min = Number.MIN_SAFE_INTEGER, max = Number.MAX_SAFE_INTEGER } = o;
  const ok = (v: unknown): v is number => typeof v === "number" && Number.isSafeInteger(v) && v >= min && v <= max;
  const range =
    o.min !== undefined && o.max !== undefined
      ? ` in [${min}, ${max}]`
      : o.min !== undefined
        ? ` ≥ ${min}`
        : o.max !== undefined
          ? ` ≤ ${max}`
          : "";
  return kind({
    expected: `an integer${range}`,
    placeholder: "<n>",
    fromValue: (v) => (ok(v) ? v : undefined),
    fromText: (s) => {
      const n = /^[+-]?\d+$/.test(s.trim()) ? Number(s) : undefined;
      return ok(n) ? n : undefined;
    },
  });
}

/** A finite number; with `above`, strictly greater; with `below`, strictly less. */
export function num(o: { min?: number; above?: number; max?: number; below?: number; placeholder?: string } = {}): Kind<number> {
  const ok = (v: unknown): v is number =>
    isFiniteNumber(v) &&
    (o.min === undefined || v >= o.min) &&
    (o.above === undefined || v > o.above) &&
    (o.max === undefined || v <= o.max) &&
    (o.below === undefined || v < o.below);
  const low = o.min !== undefined ? `[${o.min}` : o.above !== undefined ? `(${o.above}` : null;
  const high = o.max !== undefined ? `${o.max}]` : o.below !== undefined ? `${o.below})` : null;
  const expected =
    low && high
      ? `a number in ${low}, ${high}`
      : low
        ? `a number ${o.min !== undefined ? "≥" : ">"} ${o.min ?? o.above}`
        : high
          ? `a number ${o.max !== undefined ? "≤" : "<"} ${o.max ?? o.below}`
          : "a number";
  return kind({
    expected,
    placeholder: o.placeholder ?? "<x>",
    fromValue: (v) => (ok(v) ? v : undefined),
    fromText: (s) => {
      const n = numberFromText(s);
      return ok(n) ? n : undefined;
    },
  });
}

/** A non-empty string. */
export function text(placeholder = "<text>"): Kind<string> {
  const ok = (v: unknown): v is string => typeof v === "string" && v.trim() !== "";
  return kind({
    expected: "a non-empty string",
    placeholder,
    fromValue: (v) => (ok(v) ? v : undefined),
    fromText: (s) => (ok(s) ? s : undefined),
  });
}

/** A string or null (null: none, e.g. no system prompt). On the command line, --no-<flag> gives null. */
export function textOrNull(placeholder = "<text>"): Kind<string | null> {
  return kind({
    expected: "a string or null",
    placeholder,
    fromValue: (v) => (v === null || typeof v === "string" ? v : undefined),
    fromText: (s) => s,
    show: (v) => (v === null ? "none" : JSON.stringify(v)),
  });
}

/** true or false: a switch on the command line (--x, and --no-x where the default is true). */
export function bool(): Kind<boolean> {
  return kind({
    expected: "true or false",
    placeholder: null,
    fromValue: (v) => (typeof v === "boolean" ? v : undefined),
    fromText: (s) => (s === "true" ? true : s === "false" ? false : undefined),
  });
}

/** One of a fixed list of words. */
export function oneOf<T extends string>(choices: readonly T[], placeholder = "<name>"): Kind<T> {
  const ok = (v: unknown): v is T => typeof v === "string" && (choices as readonly string[]).includes(v);
  return kind({
    expected: `one of ${choices.join(", ")}`,
    placeholder,
    fromValue: (v) => (ok(v) ? v : undefined),
    fromText: (s) => (ok(s.trim()) ? (s.trim() as T) : undefined),
  });
}

/** A list: an array in files, comma-separated on the command line (or in a file string); "none" is empty when allowed. */
export function list<T>(item: Kind<T>, o: { min?: number; placeholder?: string } = {}): Kind<T[]> {
  const min = o.min ?? 1;
  const all = (xs: (T | undefined)[]): T[] | undefined => (xs.length >= min && xs.every((x) => x !== undefined) ? (xs as T[]) : undefined);
  const split = (s: string) =>
    s.trim() === "none" && min === 0
      ? []
      : s
          .split(",")
          .map((x) => x.trim())
          .filter(Boolean);
  const items = item.expected.startsWith("one of ") ? `${item.expected.slice("one of ".length)}` : `${item.expected.replace(/^an? /, "")}s`;
  return kind({
    expected: `${min === 0 ? "none or " : ""}a comma-separated list of ${items}`,
    placeholder: o.placeholder ?? "<list>",
    fromValue: (v) =>
      Array.isArray(v)
        ? all(v.map((x) => item.fromValue(x)))
        : typeof v === "string"
          ? all(split(v).map((x) => item.fromText(x)))
          : undefined,
    fromText: (s) => all(split(s).map((x) => item.fromText(x))),
    show: (v) => (v.length === 0 ? "none" : v.map((x) => item.show(x)).join(",")),
  });
}

/** Like `k`, or null (in files: null; on the command line: "none"). */
export function orNull<T>(k: Kind<T>): Kind<T | null> {
  return kind({
    expected: `${k.expected} or null`,
    placeholder: k.placeholder,
    fromValue: (v) => (v === null ? null : k.fromValue(v)),
    fromText: (s) => (s.trim() === "none" ? null : k.fromText(s)),
    show: (v) => (v === null ? "none" : k.show(v)),
  });
}

// ---- using a schema ----------------------------------------------------------------------------

export const kebabCase = (key: string) => key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
export const snakeCase = (key: string) => key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

/** The flag of a setting without "--", or null when it has none. */
export const flagName = (key: string, s: Setting<unknown>): string | null => (s.flag === undefined ? kebabCase(key) : s.flag);

/** Every setting's default (settings without one are left out). */
export function defaults<S extends Schema>(schema: S): Partial<Values<S>> {
  const out: Record<string, unknown> = {};
  for (const [key, s] of Object.entries(schema)) if (s.default !== undefined) out[key] = s.default;
  return out as Partial<Values<S>>;
}

/** A subset of a schema (a command's settings). */
export function pick<S extends Schema, K extends keyof S>(schema: S, keys: readonly K[]): Pick<S, K> {
  return Object.fromEntries(keys.map((k) => [k, schema[k]])) as Pick<S, K>;
}

/** Checks values given in code; throws SettingError for the first bad one (unknown keys are an error too). */
export function checkValues<S extends Schema>(schema: S, values: Partial<Record<keyof S, unknown>>): void {
  for (const [key, v] of Object.entries(values)) {
    const s = schema[key];
    if (!s) throw new SettingError(key, `one of the known settings (${Object.keys(schema).join(", ")})`, v);
    if (v === undefined) continue;
    if (s.kind.fromValue(v) === undefined) throw new SettingError(key, s.kind.expected, v);
  }
}

/** Names a config file may use for each setting: key, snake_case key, aliases. */
export function configNames(schema: Schema): Map<string, { key: string; alias?: Alias }> {
  const names = new Map<string, { key: string; alias?: Alias }>();
  for (const [key, s] of Object.entries(schema)) {
    names.set(key, { key });
    names.set(snakeCase(key), { key });
    for (const a of s.aliases ?? []) {
      const alias = typeof a === "string" ? { name: a } : a;
      names.set(alias.name, { key, alias });
    }
  }
  return names;
}

/** Levenshtein distance, for "did you mean". */
function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = row[j];
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1));
      diagonal = above;
    }
  }
  return row[b.length];
}

/** The known name closest to `name`, when it is close enough to be a typo. */
export function closest(name: string, known: Iterable<string>): string | null {
  let best: string | null = null;
  let bestDistance = Number.POSITIVE_INFINITY;
  const lower = name.toLowerCase();
  for (const k of known) {
    const d = editDistance(lower, k.toLowerCase());
    if (d < bestDistance) [best, bestDistance] = [k, d];
  }
  return best !== null && bestDistance <= Math.max(2, Math.floor(name.length / 4)) ? best : null;
}

/**
 * Reads the settings of a parsed config file (a plain mapping): every name must be a setting's
 * key, its snake_case form or an alias; values are checked. A key svdlora deliberately has no
 * setting for (`noSetting`) is refused with its reason, unless its value asks for what svdlora
 * does anyway. Errors name `source` and the name as written. Returns the values by key.
 */
export function readSettings<S extends Schema>(
  schema: S,
  mapping: unknown,
  source: string,
  noSetting: Readonly<Record<string, NoSetting>> = {},
): Partial<Values<S>> {
  if (typeof mapping !== "object" || mapping === null || Array.isArray(mapping))
    throw new Error(`${source}: expected a mapping of settings (name: value)`);
  const names = configNames(schema);
  const out: Record<string, unknown> = {};
  const givenAs = new Map<string, string>();
  const unsupported: string[] = [];
  for (const name of Object.keys(mapping)) {
    const value = (mapping as Record<string, unknown>)[name];
    const known = names.get(name); // a Map: "__proto__" or "toString" are plain unknown names
    const without = !known && Object.hasOwn(noSetting, name) ? noSetting[name] : undefined;
    if (without) {
      if (!without.same?.some((v) => JSON.stringify(v) === JSON.stringify(value))) unsupported.push(`${name} (${without.why})`);
      continue;
    }
    if (!known) {
      const guess = closest(
        name,
        [...names.keys()].filter((n) => n === snakeCase(n)),
      );
      throw new Error(
        `${source}: unknown setting ${JSON.stringify(name)}${guess ? ` (did you mean ${guess}?)` : ""}; the settings are listed in docs/config.md`,
      );
    }
    const { key, alias } = known;
    if (givenAs.has(key)) throw new Error(`${source}: ${name} and ${givenAs.get(key)} set the same setting; keep one`);
    givenAs.set(key, name);
    const s = schema[key];
    const mapped = alias?.map ? alias.map(value) : value;
    const v = mapped === undefined ? undefined : s.kind.fromValue(mapped);
    if (v === undefined) throw new SettingError(key, alias?.expected ?? s.kind.expected, value, source, name === key ? undefined : name);
    out[key] = v;
  }
  if (unsupported.length > 0)
    throw new Error(
      `${source}: svdlora has no setting for ${unsupported.join("; ")}: remove ${unsupported.length > 1 ? "these keys" : "the key"} (docs/config.md lists what maps to what)`,
    );
  return out as Partial<Values<S>>;
}

/** The settings that decide a run's numbers (training ones, or with `evaluation` also those of its held-out numbers). */
export function identityOf<S extends Schema>(
  schema: S,
  values: Partial<Values<S>>,
  o: { evaluation?: boolean } = {},
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, s] of Object.entries(schema)) {
    const v = (values as Record<string, unknown>)[key];
    if (v !== undefined && (s.identity === "training" || (o.evaluation && s.identity === "evaluation"))) out[key] = v;
  }
  return out;
}

/** The identity settings that differ between two runs: key → [a, b]. */
export function differences(
  a: Record<string, unknown>,
  b: Record<string, unknown>,
  ignore: readonly string[] = [],
): Map<string, [unknown, unknown]> {
  const out = new Map<string, [unknown, unknown]>();
  for (const key of new Set([...Object.keys(a), ...Object.keys(b)])) {
    if (ignore.includes(key)) continue;
    if (JSON.stringify(a[key]) !== JSON.stringify(b[key])) out.set(key, [a[key], b[key]]);
  }
  return out;
}

/** [name, value] rows of the settings given, in schema order, for summaries and reports. */
export function describe<S extends Schema>(schema: S, values: Partial<Values<S>>): [string, string][] {
  const rows: [string, string][] = [];
  for (const [key, s] of Object.entries(schema)) {
    const v = (values as Record<string, unknown>)[key];
    if (v !== undefined) rows.push([snakeCase(key), s.kind.show(v)]);
  }
  return rows;
}

/** A config file's text as a mapping: YAML (a superset of JSON) for .yaml/.yml, JSON otherwise. */
export function parseConfigText(text: string, file: string): unknown {
  const yaml = /\.ya?ml$/i.test(file);
  try {
    return yaml ? loadYaml().parse(text) : JSON.parse(text);
  } catch (e) {
    throw new Error(`${file}: not valid ${yaml ? "YAML" : "JSON"}: ${(e as Error).message.split("\n")[0].replace(/:\s*$/, "")}`);
  }
}
