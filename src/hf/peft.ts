// PEFT LoRA adapters on disk: adapter_config.json + adapter_model.safetensors with keys
// base_model.model.<module>.lora_A.weight (r × in), …lora_B.weight (out × r) and, for DoRA
// (use_dora), …lora_magnitude_vector (out), exactly what PEFT's save_pretrained writes and
// from_pretrained reads, so adapters travel both ways.
import * as fs from "node:fs";
import { loraScale } from "../util/lora-scale.js";
import * as path from "node:path";
import type { Tensor } from "../torch/index.js";
import { replaceDirectoryAtomic, writeFileAtomic } from "../util/atomic.js";
import { displayPath, readInputText, showValue } from "../util/files.js";
import { compileFileRegex, regexWork } from "./regex.js";
import { PROJECTIONS } from "./projections.js";
export { PROJECTIONS, targetNames } from "./projections.js";
import { SafetensorsFile, saveSafetensors } from "./safetensors.js";

export const ADAPTER_CONFIG = "adapter_config.json";
export const ADAPTER_WEIGHTS = "adapter_model.safetensors";

/** adapter_config.json as PEFT writes it; unknown fields are kept so they survive a round trip. */
export interface LoraAdapterConfig {
  peft_type: "LORA";
  task_type: string | null;
  r: number;
  lora_alpha: number;
  lora_dropout: number;
  /** Module names (matched as the module path or its last components), "all-linear", or one regex over the full path. */
  target_modules: string[] | string;
  /** Modules left out although target_modules matches them: names as in target_modules, or one regex. */
  exclude_modules: string[] | string | null;
  bias: "none";
  use_rslora: boolean;
  fan_in_fan_out: boolean;
  base_model_name_or_path: string | null;
  revision: string | null;
  init_lora_weights: boolean | string;
  modules_to_save: string[] | null;
  inference_mode: boolean;
  /** Only these decoder layers (by index) get a LoRA. */
  layers_to_transform: number[] | number | null;
  /** The module-list name(s) before the layer index (regexes), e.g. "layers". */
  layers_pattern: string | string[] | null;
  /** Per-module rank / alpha overrides: regex → value (PEFT matches `(.*\.)?(regex)$`, first key first). */
  rank_pattern: Record<string, number>;
  alpha_pattern: Record<string, number>;
  use_dora: boolean;
  [field: string]: unknown;
}

/** One adapted linear layer: A (r × in) and B (out × r); ΔW = scaling · B A. DoRA adds the magnitude m (out). */
export interface LoraFactors {
  A: Tensor;
  B: Tensor;
  magnitude?: Tensor;
}

/** Module path (e.g. "model.layers.0.self_attn.q_proj") → its factors. */
export type LoraWeights = Map<string, LoraFactors>;

export interface LoraConfigOptions {
  r: number;
  loraAlpha: number;
  targetModules: string[] | string;
  baseModel: string | null;
  loraDropout?: number;
  useRslora?: boolean;
  useDora?: boolean;
  /** true (PEFT's Kaiming init, B = 0), false or "gaussian": the inits PEFT re-runs harmlessly before loading the factors. */
  initLoraWeights?: boolean | "gaussian";
  revision?: string | null;
}

/**
 * A complete config with the fields PEFT has written since 0.9 (newer PEFT fills in the rest;
 * fields newer than that are left out because older PEFT versions reject unknown ones).
 */
export function loraConfig(o: LoraConfigOptions): LoraAdapterConfig {
  return {
    alpha_pattern: {},
    auto_mapping: null,
    base_model_name_or_path: o.baseModel,
    bias: "none",
    exclude_modules: null,
    fan_in_fan_out: false,
    inference_mode: true,
    init_lora_weights: o.initLoraWeights ?? true,
    layers_pattern: null,
    layers_to_transform: null,
    loftq_config: {},
    lora_alpha: o.loraAlpha,
    lora_dropout: o.loraDropout ?? 0,
    megatron_config: null,
    megatron_core: "megatron.core",
    modules_to_save: null,
    peft_type: "LORA",
    r: o.r,
    rank_pattern: {},
    revision: o.revision ?? null,
    target_modules: o.targetModules,
    task_type: "CAUSAL_LM",
    use_dora: o.useDora ?? false,
    use_rslora: o.useRslora ?? false,
  };
}

/** The module path of a decoder projection, e.g. model.layers.3.mlp.down_proj: all svdlora adapts. */
const PROJECTION_PATH = /^model\.layers\.(0|[1-9]\d{0,5})\.(self_attn\.[qkvo]_proj|mlp\.(gate|up|down)_proj)$/;
export const isProjectionPath = (modulePath: string): boolean => PROJECTION_PATH.test(modulePath);

/**
 * Every module name transformers gives a Qwen2 / Llama causal LM (named_modules(), the root left
 * out): the names PEFT matches target_modules against.
 */
export function decoderModuleNames(numLayers: number): string[] {
  const names = ["model", "model.embed_tokens", "model.layers"];
  for (let i = 0; i < numLayers; i++) {
    const layer = `model.layers.${i}`;
    names.push(layer, `${layer}.self_attn`);
    for (const p of PROJECTIONS.slice(0, 4)) names.push(`${layer}.self_attn.${p}`);
    names.push(`${layer}.mlp`);
    for (const p of PROJECTIONS.slice(4)) names.push(`${layer}.mlp.${p}`);
    names.push(`${layer}.mlp.act_fn`, `${layer}.input_layernorm`, `${layer}.post_attention_layernorm`);
  }
  names.push("model.norm", "model.rotary_emb", "lm_head");
  return names;
}

// ---- reading adapter_config.json ----

/** Fields that change how PEFT builds or applies the adapter in ways svdlora does not reproduce: refused unless neutral. */
const UNSUPPORTED: { field: string; neutral: (v: unknown) => boolean; why: string }[] = [
  { field: "fan_in_fan_out", neutral: (v) => v === false, why: "the GPT-2 Conv1D layout; Qwen2/Llama layers are nn.Linear" },
  { field: "bias", neutral: (v) => v === "none", why: 'only "none" is supported (bias weights are not LoRA factors)' },
  { field: "lora_bias", neutral: (v) => v === false, why: "a bias on lora_B is not supported" },
  {
    field: "modules_to_save",
    neutral: (v) => Array.isArray(v) && v.length === 0,
    why: "the adapter carries full copies of those modules, which svdlora does not load",
  },
  { field: "layer_replication", neutral: (v) => Array.isArray(v) && v.length === 0, why: "layer replication is not supported" },
  { field: "target_parameters", neutral: (v) => Array.isArray(v) && v.length === 0, why: "LoRA on parameters is not supported" },
  { field: "trainable_token_indices", neutral: () => false, why: "trainable token embeddings are not supported" },
  { field: "alora_invocation_tokens", neutral: () => false, why: "activated LoRA (aLoRA) is not supported" },
  { field: "use_qalora", neutral: (v) => v === false, why: "QALoRA is not supported" },
  { field: "megatron_config", neutral: () => false, why: "Megatron layers are not supported" },
  { field: "use_bdlora", neutral: () => false, why: "block-diagonal LoRA is not supported" },
  { field: "velora_config", neutral: () => false, why: "VeLoRA is not supported" },
  { field: "monteclora_config", neutral: () => false, why: "MonteCLoRA is not supported" },
  { field: "kasa_config", neutral: () => false, why: "KaSA is not supported" },
  { field: "arrow_config", neutral: () => false, why: "Arrow routing is not supported" },
];

/** Inits PEFT runs on the targeted layers before it loads the file's factors over them: harmless. Others rewrite the base weights. */
const HARMLESS_INITS: unknown[] = [true, false, "gaussian", "eva", "orthogonal"];

/** Largest rank and number of pattern keys accepted (far above any real adapter). */
const MAX_RANK = 65536;
const MAX_PATTERNS = 4096;

/**
 * Validates a parsed adapter_config.json as PEFT reads it and fills PEFT's defaults; every value
 * is checked (finite numbers, booleans that are booleans) and every pattern compiled (see
 * regex.ts); what svdlora cannot apply as PEFT does is refused in one line. `source` names the file.
 */
export function parseAdapterConfig(json: unknown, source = ADAPTER_CONFIG): LoraAdapterConfig {
  const fail = (problem: string): never => {
    throw new Error(`${source}: ${problem}`);
  };
  if (typeof json !== "object" || json === null || Array.isArray(json)) return fail("not a JSON object");
  const c = json as Record<string, unknown>;
  const field = (name: string): unknown => (Object.hasOwn(c, name) ? c[name] : undefined);

  if (field("peft_type") !== "LORA") fail(`peft_type is ${showValue(field("peft_type"))}; svdlora reads LoRA adapters ("LORA") only`);
  const r = field("r");
  if (typeof r !== "number" || !Number.isSafeInteger(r) || r <= 0 || r > MAX_RANK)
    fail(`"r" must be a positive integer (at most ${MAX_RANK}), got ${showValue(r)}`);
  const alpha = field("lora_alpha");
  if (!isPositiveFinite(alpha)) fail(`"lora_alpha" must be a finite number > 0, got ${showValue(alpha)}`);
  const dropout = field("lora_dropout") ?? 0;
  if (typeof dropout !== "number" || !(dropout >= 0 && dropout < 1))
    fail(`"lora_dropout" must be a number in [0, 1), got ${showValue(dropout)}`);
  const flag = (name: string): boolean => {
    const v = field(name) ?? false;
    if (typeof v !== "boolean") fail(`"${name}" must be true or false, got ${showValue(v)}`);
    return v as boolean;
  };
  const useRslora = flag("use_rslora");
  const useDora = flag("use_dora");
  const inferenceMode = field("inference_mode") === undefined ? true : flag("inference_mode");
  for (const { field: name, neutral, why } of UNSUPPORTED) {
    const v = field(name);
    if (v !== undefined && v !== null && !neutral(v)) fail(`${name} is ${showValue(v)}; ${why}`);
  }
  const init = field("init_lora_weights") ?? true;
  if (!HARMLESS_INITS.includes(init)) {
    fail(
      `init_lora_weights is ${showValue(init)}: PEFT re-runs that init when it loads the adapter, which rewrites the base weights (PiSSA, OLoRA, CorDA, LoftQ…) or fails; convert it to a plain LoRA first`,
    );
  }

  // PEFT picks the model type's default targets when there are none; for qwen2 and llama that is q_proj and v_proj.
  const targets = field("target_modules") ?? ["q_proj", "v_proj"];
  if (!(typeof targets === "string" || isStringList(targets))) {
    fail(`"target_modules" must be a list of module names or a regex string, got ${showValue(targets)}`);
  }
  if (Array.isArray(targets) && targets.length === 0) fail(`"target_modules" is empty: PEFT would find no module to adapt`);
  const exclude = field("exclude_modules") ?? null;
  if (!(exclude === null || typeof exclude === "string" || isStringList(exclude))) {
    fail(`"exclude_modules" must be a list of module names, a regex string or null, got ${showValue(exclude)}`);
  }
  const layers = field("layers_to_transform") ?? null;
  if (!(layers === null || isLayerIndex(layers) || (Array.isArray(layers) && layers.every(isLayerIndex)))) {
    fail(`"layers_to_transform" must be a layer index, a list of them or null, got ${showValue(layers)}`);
  }
  const layersPattern = field("layers_pattern") ?? null;
  if (!(layersPattern === null || typeof layersPattern === "string" || isStringList(layersPattern))) {
    fail(`"layers_pattern" must be a string, a list of strings or null, got ${showValue(layersPattern)}`);
  }
  // PEFT's own LoraConfig checks, with its words
  if (typeof targets === "string" && layers !== null)
    fail("layers_to_transform cannot be used when target_modules is a regex string (PEFT refuses it too)");
  if (typeof targets === "string" && layersPattern !== null)
    fail("layers_pattern cannot be used when target_modules is a regex string (PEFT refuses it too)");
  if (nonEmpty(layersPattern) && layers === null) fail("layers_pattern needs layers_to_transform (PEFT refuses it too)");
  if (nonEmpty(layers) && Array.isArray(targets) && targets.some((t) => t === "lm_head" || t.startsWith("model."))) {
    // PEFT skips the layer filter for a name equal to a whole module path, or not, depending on how many names there are
    fail(
      `layers_to_transform with whole module paths in target_modules (${showValue(targets)}): name the modules by their last components (q_proj)`,
    );
  }

  const patterns = (name: "rank_pattern" | "alpha_pattern", valid: (v: unknown) => boolean, want: string): Record<string, number> => {
    const v = field(name) ?? {};
    if (typeof v !== "object" || v === null || Array.isArray(v))
      return fail(`"${name}" must map module patterns to numbers, got ${showValue(v)}`);
    const entries = Object.entries(v);
    if (entries.length > MAX_PATTERNS) fail(`"${name}" has ${entries.length} patterns (at most ${MAX_PATTERNS})`);
    for (const [key, value] of entries) if (!valid(value)) fail(`"${name}" ${showValue(key)} must be ${want}, got ${showValue(value)}`);
    return Object.fromEntries(entries) as Record<string, number>;
  };
  const rankPattern = patterns(
    "rank_pattern",
    (v) => typeof v === "number" && Number.isSafeInteger(v) && v > 0 && v <= MAX_RANK,
    "a positive integer",
  );
  const alphaPattern = patterns("alpha_pattern", isPositiveFinite, "a finite number > 0");

  const text = (name: string): string | null => {
    const v = field(name) ?? null;
    if (v !== null && typeof v !== "string") fail(`"${name}" must be a string or null, got ${showValue(v)}`);
    return v as string | null;
  };
  const config: LoraAdapterConfig = {
    ...c,
    peft_type: "LORA",
    task_type: text("task_type"),
    r: r as number,
    lora_alpha: alpha as number,
    lora_dropout: dropout as number,
    target_modules: targets as string[] | string,
    exclude_modules: exclude as string[] | string | null,
    bias: "none",
    use_rslora: useRslora,
    fan_in_fan_out: false,
    base_model_name_or_path: text("base_model_name_or_path"),
    revision: text("revision"),
    init_lora_weights: init as boolean | string,
    modules_to_save: null,
    inference_mode: inferenceMode,
    layers_to_transform: layers as number[] | number | null,
    layers_pattern: layersPattern as string | string[] | null,
    rank_pattern: rankPattern,
    alpha_pattern: alphaPattern,
    use_dora: useDora,
  };
  moduleSelector(config, source); // compiles (and so checks) every pattern now, naming the file
  return config;
}

const isPositiveFinite = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v) && v > 0;
const isStringList = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === "string");
const isLayerIndex = (v: unknown): v is number => typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
/** Python's truthiness for the values these fields take. */
const nonEmpty = (v: unknown): boolean => v !== null && v !== undefined && v !== "" && !(Array.isArray(v) && v.length === 0);

export function loadAdapterConfig(dir: string): LoraAdapterConfig {
  const file = path.join(dir, ADAPTER_CONFIG);
  if (!fs.existsSync(dir)) throw new Error(`${displayPath(dir)}: no such adapter directory`);
  if (!fs.existsSync(file)) throw new Error(`${displayPath(dir)}: no ${ADAPTER_CONFIG}; not a PEFT adapter directory`);
  const text = readInputText(file, "adapter config", MAX_CONFIG_BYTES);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new Error(`${displayPath(file)}: not valid JSON (${oneLine((error as Error).message)})`);
  }
  return parseAdapterConfig(json, displayPath(file));
}

/** An adapter_config.json is a few kB; a larger one is damage (or not a config). */
const MAX_CONFIG_BYTES = 16 << 20;

const oneLine = (message: string) => message.replace(/\s+/g, " ").slice(0, 300);

// ---- which modules PEFT adapts, and with what rank and alpha ----

/** A config's module selection, compiled: PEFT's check_target_module_exists and get_pattern_key. */
interface ModuleSelector {
  targets(modulePath: string): boolean;
  rank(modulePath: string): number;
  alpha(modulePath: string): number;
}

/** The longest module path a pattern is run on; bounds the matching time. */
const MAX_MODULE_PATH = 64;
/**
 * The most matching steps all of a config's patterns may take on one module path (see regexWork):
 * the worst config allowed takes about 0.1 s over every module of a 28-layer model (regex.test.ts).
 */
const MAX_PATTERN_WORK = 5_000_000;

/** Compiled selections by config object: a config is not changed once read (spread a copy to change it). */
const selectors = new WeakMap<LoraAdapterConfig, ModuleSelector>();

/** The compiled selection for a config (cached per config object); refused patterns throw, naming `source`. */
function moduleSelector(config: LoraAdapterConfig, source = "adapter config"): ModuleSelector {
  const cached = selectors.get(config);
  if (cached) return cached;
  let work = 0;
  const compile = (pattern: string, what: string, wrap?: (s: string) => string): RegExp => {
    const { regex, degree, branches } = compileFileRegex(pattern, source, what, wrap);
    work += regexWork({ degree, branches }, MAX_MODULE_PATH);
    if (work > MAX_PATTERN_WORK)
      throw new Error(
        `${source}: its patterns together could take over ${MAX_PATTERN_WORK} matching steps per module name; simplify ${what}`,
      );
    return regex;
  };
  const listMatches = (names: readonly string[], key: string) => names.includes(key) || names.some((n) => key.endsWith(`.${n}`));

  const t = config.target_modules;
  const allLinear = typeof t === "string" && t.toLowerCase() === "all-linear";
  const targetRegex = typeof t === "string" && !allLinear ? compile(t, "target_modules", (s) => `^(?:${s})$`) : undefined;
  const ex = config.exclude_modules;
  const excludeRegex = typeof ex === "string" && ex !== "" ? compile(ex, "exclude_modules", (s) => `^(?:${s})$`) : undefined;
  const excluded = (key: string) => (excludeRegex ? excludeRegex.test(key) : Array.isArray(ex) && listMatches(ex, key));

  const layers = config.layers_to_transform;
  const useLayers = layers !== null && !(Array.isArray(layers) && layers.length === 0);
  const lp = config.layers_pattern;
  const layerPatterns = (typeof lp === "string" ? [lp] : (lp ?? [])).filter((p) => p !== "");
  const layerRegexes =
    layerPatterns.length === 0
      ? [/^.*?\.[^.]*\.(\d+)\./]
      : layerPatterns.map((p) => compile(p, "layers_pattern", (s) => `^.*?\\.${s}\\.(\\d+)\\.`));
  const layerIndex = (key: string): number | undefined => {
    for (const regex of layerRegexes) {
      const m = regex.exec(key);
      if (!m) continue;
      if (m[1] === undefined)
        throw new Error(`${source}: layers_pattern ${JSON.stringify(lp)} finds no layer index in ${key} (PEFT fails on it too)`);
      return Number(m[1]);
    }
    return undefined;
  };
  const inLayers = (key: string) => {
    const index = layerIndex(key);
    return index !== undefined && (typeof layers === "number" ? index === layers : (layers as number[]).includes(index));
  };

  const lookup = (patterns: Record<string, number>, what: string) => {
    const compiled = Object.entries(patterns).map(([p, v]) => [compile(p, `${what} key`, (s) => `^(.*\\.)?(${s})$`), v] as const);
    return (key: string) => compiled.find(([regex]) => regex.test(key))?.[1];
  };
  const rankOf = lookup(config.rank_pattern, "rank_pattern");
  const alphaOf = lookup(config.alpha_pattern, "alpha_pattern");

  // A longer path is no projection (those are at most 35 characters): no pattern is run on it.
  const short = (key: string) => key.length <= MAX_MODULE_PATH;
  const selector: ModuleSelector = {
    targets(key) {
      if (!short(key) || excluded(key)) return false;
      if (allLinear) return isProjectionPath(key);
      if (targetRegex) return targetRegex.test(key);
      const names = t as string[];
      if (names.includes(key)) return true;
      return names.some((n) => key.endsWith(`.${n}`)) && (!useLayers || inLayers(key));
    },
    rank: (key) => (short(key) ? rankOf(key) : undefined) ?? config.r,
    alpha: (key) => (short(key) ? alphaOf(key) : undefined) ?? config.lora_alpha,
  };
  selectors.set(config, selector);
  return selector;
}

/** Whether PEFT puts a LoRA on this module (check_target_module_exists: exclude_modules, target_modules, layers_to_transform). */
export const isTargetModule = (config: LoraAdapterConfig, modulePath: string): boolean => moduleSelector(config).targets(modulePath);

export const rankFor = (config: LoraAdapterConfig, modulePath: string): number => moduleSelector(config).rank(modulePath);
export const alphaFor = (config: LoraAdapterConfig, modulePath: string): number => moduleSelector(config).alpha(modulePath);

export { loraScale };

/** s for one module of an adapter, after its rank_pattern / alpha_pattern. */
export const loraScaling = (config: LoraAdapterConfig, modulePath: string): number =>
  loraScale(alphaFor(config, modulePath), rankFor(config, modulePath), config.use_rslora);

/**
 * The modules of a Qwen2/Llama model with `numLayers` layers that PEFT would adapt with this
 * config; a targeted module svdlora cannot adapt (embeddings, lm_head, a norm…) is refused.
 */
export function targetedModules(config: LoraAdapterConfig, numLayers: number, source = "adapter config"): string[] {
  const targeted = decoderModuleNames(numLayers).filter((name) => isTargetModule(config, name));
  if (targeted.length === 0)
    throw new Error(
      `${source}: target_modules ${JSON.stringify(config.target_modules)} matches no module of this ${numLayers}-layer model${nonEmpty(config.exclude_modules) ? " once exclude_modules is applied" : ""} (PEFT refuses that too)`,
    );
  const other = targeted.find((name) => !isProjectionPath(name));
  if (other !== undefined) {
    const kind =
      other === "lm_head" || other === "model.embed_tokens"
        ? "svdlora adapts only the decoder's projections"
        : "it is not a linear layer (PEFT refuses it too)";
    throw new Error(`${source}: target_modules ${JSON.stringify(config.target_modules)} matches ${other}: ${kind}`);
  }
  return targeted;
}

const PREFIX = "base_model.model.";

/** The safetensors key PEFT uses for a module's factor. */
export const adapterKey = (modulePath: string, factor: "A" | "B"): string => `${PREFIX}${modulePath}.lora_${factor}.weight`;

/** The key PEFT saves a DoRA module's magnitude vector under (no ".weight": the name from before DoRA's refactor). */
export const magnitudeKey = (modulePath: string): string => `${PREFIX}${modulePath}.lora_magnitude_vector`;

// PEFT drops the adapter name ("default") when saving; older files may still carry it
const keyPattern = /^base_model\.model\.(.+)\.(?:lora_([AB])(?:\.default)?\.weight|lora_magnitude_vector(?:\.default)?)$/;

type Part = "A" | "B" | "magnitude";
const partName = (part: Part) => (part === "magnitude" ? "lora_magnitude_vector" : `lora_${part}`);

/**
 * Reads a PEFT LoRA adapter directory; tensors are on the CPU in the file's dtype. Every factor
 * must belong to a decoder projection that the config targets (PEFT would ignore the others), be
 * floating point and finite, and have the config's rank for its module; a DoRA adapter (use_dora)
 * has each module's magnitude vector too, and only then.
 */
export function loadAdapter(dir: string): { config: LoraAdapterConfig; weights: LoraWeights } {
  const config = loadAdapterConfig(dir);
  const weightsPath = path.join(dir, ADAPTER_WEIGHTS);
  const where = displayPath(weightsPath);
  if (!fs.existsSync(weightsPath)) {
    if (fs.existsSync(path.join(dir, "adapter_model.bin"))) {
      throw new Error(
        `${displayPath(dir)}: has adapter_model.bin (PyTorch pickle), which svdlora does not read; re-save it with PEFT's save_pretrained(safe_serialization=True)`,
      );
    }
    throw new Error(`${displayPath(dir)}: no ${ADAPTER_WEIGHTS} next to ${ADAPTER_CONFIG}`);
  }
  const file = SafetensorsFile.open(weightsPath);
  const weights: LoraWeights = new Map();
  const partial = new Map<string, Partial<LoraFactors>>();
  try {
    const keys = new Map<string, { modulePath: string; part: Part }>();
    for (const key of file.keys()) {
      const match = keyPattern.exec(key);
      if (!match)
        throw new Error(
          `${where}: unexpected tensor ${JSON.stringify(key)}; svdlora reads LoRA factors named base_model.model.<module>.lora_A/lora_B.weight (and lora_magnitude_vector with use_dora)`,
        );
      const [, modulePath, factor] = match;
      const part: Part = factor === undefined ? "magnitude" : (factor as "A" | "B");
      if (!isProjectionPath(modulePath)) {
        throw new Error(
          `${where}: ${JSON.stringify(modulePath)} is not a projection of a Qwen2/Llama decoder layer (model.layers.N.self_attn.q/k/v/o_proj, mlp.gate/up/down_proj)`,
        );
      }
      if (!isTargetModule(config, modulePath)) {
        throw new Error(
          `${where}: has factors for ${modulePath}, which ${ADAPTER_CONFIG} does not target (PEFT would ignore them): the two files do not belong together`,
        );
      }
      if (part === "magnitude" && !config.use_dora)
        throw new Error(`${where}: has ${key} but ${ADAPTER_CONFIG} says use_dora is false: the two files do not belong together`);
      keys.set(key, { modulePath, part });
    }
    for (const [key, { modulePath, part }] of keys) {
      const factors = partial.get(modulePath) ?? {};
      if (factors[part]) throw new Error(`${where}: module ${modulePath} has ${partName(part)} twice`);
      factors[part] = file.readWeight(key);
      partial.set(modulePath, factors);
    }
    for (const [modulePath, { A, B, magnitude }] of partial) {
      if (!A || !B)
        throw new Error(
          `${where}: module ${modulePath} has ${A ? "lora_A" : B ? "lora_B" : "lora_magnitude_vector"} but no ${A ? "lora_B" : "lora_A"}`,
        );
      if (config.use_dora && !magnitude)
        throw new Error(`${where}: module ${modulePath} has no lora_magnitude_vector, which a DoRA adapter (use_dora) needs`);
      const factors = { A, B, ...(magnitude ? { magnitude } : {}) };
      checkFactors(modulePath, factors, rankFor(config, modulePath), where);
      weights.set(modulePath, factors);
    }
  } catch (error) {
    for (const { A, B, magnitude } of partial.values()) {
      A?.dispose();
      B?.dispose();
      magnitude?.dispose();
    }
    throw error;
  } finally {
    file.close();
  }
  if (weights.size === 0) throw new Error(`${where}: contains no LoRA factors`);
  return { config, weights };
}

function checkFactors(modulePath: string, { A, B, magnitude }: LoraFactors, r: number, where: string): void {
  const [a, b] = [A.shape, B.shape];
  if (a.length !== 2 || b.length !== 2)
    throw new Error(`${where}: ${modulePath} factors must be matrices, got lora_A [${a}] and lora_B [${b}]`);
  if (a[0] !== r || b[1] !== r) {
    throw new Error(`${where}: ${modulePath} has rank ${a[0]} (lora_A [${a}]) and ${b[1]} (lora_B [${b}]) but the config says r = ${r}`);
  }
  if (magnitude && `${magnitude.shape}` !== `${b[0]}`)
    throw new Error(
      `${where}: ${modulePath} has lora_magnitude_vector [${magnitude.shape}] but lora_B [${b}]: it needs one entry per output`,
    );
}

/**
 * Writes a PEFT adapter directory (config + weights) atomically: everything goes into a temp
 * directory that then replaces dir, so a crash never leaves a config without its weights.
 */
export function saveAdapter(dir: string, config: LoraAdapterConfig, weights: LoraWeights): void {
  const checked = parseAdapterConfig(config, `saveAdapter(${dir}) config`);
  if (weights.size === 0) throw new Error(`saveAdapter(${dir}): no modules to save`);
  const tensors = new Map<string, Tensor>();
  for (const [modulePath, factors] of weights) {
    if (modulePath.startsWith("base_model."))
      throw new Error(`saveAdapter(${dir}): give module paths like model.layers.0.self_attn.q_proj, not ${modulePath}`);
    if (!isTargetModule(checked, modulePath)) {
      throw new Error(
        `saveAdapter(${dir}): ${modulePath} is not matched by target_modules ${JSON.stringify(checked.target_modules)}; PEFT would not load it`,
      );
    }
    if (checked.use_dora !== Boolean(factors.magnitude))
      throw new Error(
        `saveAdapter(${dir}): ${modulePath} ${checked.use_dora ? "has no magnitude vector but use_dora is true" : "has a magnitude vector but use_dora is false"}`,
      );
    checkFactors(modulePath, factors, rankFor(checked, modulePath), `saveAdapter(${dir})`);
    tensors.set(adapterKey(modulePath, "A"), factors.A);
    tensors.set(adapterKey(modulePath, "B"), factors.B);
    if (factors.magnitude) tensors.set(magnitudeKey(modulePath), factors.magnitude);
  }
  replaceDirectoryAtomic(dir, (temp) => {
    writeFileAtomic(path.join(temp, ADAPTER_CONFIG), `${stableJson(checked)}\n`);
    saveSafetensors(path.join(temp, ADAPTER_WEIGHTS), tensors, { format: "pt" });
  });
}

/** JSON with sorted keys and 2-space indent, as PEFT writes (json.dumps(indent=2, sort_keys=True)). */
function stableJson(value: unknown): string {
  const sort = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(sort);
    if (v && typeof v === "object")
      return Object.fromEntries(
        Object.keys(v)
          .sort()
          .map((k) => [k, sort((v as Record<string, unknown>)[k])]),
      );
    return v;
  };
  return JSON.stringify(sort(value), null, 2);
}
