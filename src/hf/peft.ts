// PEFT LoRA adapters on disk: adapter_config.json + adapter_model.safetensors with keys
// base_model.model.<module>.lora_A.weight (r × in) and …lora_B.weight (out × r), exactly what
// PEFT's save_pretrained writes and from_pretrained reads, so adapters travel both ways.
import * as fs from "node:fs";
import * as path from "node:path";
import type { Tensor } from "../torch/index.js";
import { replaceDirectoryAtomic, writeFileAtomic } from "../util/atomic.js";
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
  /** Module names (matched as a suffix of the module path), or one regex over the full path. */
  target_modules: string[] | string;
  bias: "none";
  use_rslora: boolean;
  fan_in_fan_out: boolean;
  base_model_name_or_path: string | null;
  revision: string | null;
  init_lora_weights: boolean | string;
  modules_to_save: string[] | null;
  inference_mode: boolean;
  layers_to_transform: number[] | number | null;
  layers_pattern: string | string[] | null;
  /** Per-module rank / alpha overrides: regex → value (PEFT matches `(.*\.)?(regex)$`). */
  rank_pattern: Record<string, number>;
  alpha_pattern: Record<string, number>;
  use_dora: boolean;
  [field: string]: unknown;
}

/** One adapted linear layer: A (r × in) and B (out × r); ΔW = scaling · B A. */
export interface LoraFactors {
  A: Tensor;
  B: Tensor;
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
  /** true (PEFT's random init) or a name for another init, e.g. "svd" — informational for PEFT users. */
  initLoraWeights?: boolean | string;
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
    use_dora: false,
    use_rslora: o.useRslora ?? false,
  };
}

/** Validates a parsed adapter_config.json and fills PEFT's defaults; `source` names it in errors. */
export function parseAdapterConfig(json: unknown, source = ADAPTER_CONFIG): LoraAdapterConfig {
  const fail = (problem: string): never => {
    throw new Error(`${source}: ${problem}`);
  };
  if (typeof json !== "object" || json === null || Array.isArray(json)) return fail("not a JSON object");
  const c = json as Record<string, unknown>;
  if (c.peft_type !== "LORA") fail(`peft_type is ${JSON.stringify(c.peft_type)}; svdlora reads LoRA adapters ("LORA") only`);
  if (typeof c.r !== "number" || !Number.isSafeInteger(c.r) || c.r <= 0) fail(`"r" must be a positive integer, got ${JSON.stringify(c.r)}`);
  if (typeof c.lora_alpha !== "number" || !(c.lora_alpha > 0))
    fail(`"lora_alpha" must be a positive number, got ${JSON.stringify(c.lora_alpha)}`);
  const targets = c.target_modules;
  if (!(typeof targets === "string" || (Array.isArray(targets) && targets.every((t) => typeof t === "string")))) {
    fail(`"target_modules" must be a list of module names or a regex string, got ${JSON.stringify(targets)}`);
  }
  if (c.fan_in_fan_out === true) fail(`fan_in_fan_out is true (GPT-2 Conv1D layout); svdlora's Qwen2/Llama layers are nn.Linear`);
  if (c.use_dora === true) fail(`use_dora is true; DoRA adapters are not supported`);
  if (c.bias !== undefined && c.bias !== "none")
    fail(`bias is ${JSON.stringify(c.bias)}; only "none" is supported (bias weights are not LoRA factors)`);
  if (Array.isArray(c.modules_to_save) && c.modules_to_save.length > 0) {
    fail(`modules_to_save ${JSON.stringify(c.modules_to_save)} is not supported (the adapter carries full copies of those modules)`);
  }
  for (const field of ["rank_pattern", "alpha_pattern"]) {
    const v = c[field];
    if (v != null && (typeof v !== "object" || Array.isArray(v) || !Object.values(v).every((x) => typeof x === "number" && x > 0))) {
      fail(`"${field}" must map module patterns to positive numbers`);
    }
  }
  return {
    ...c,
    peft_type: "LORA",
    task_type: (c.task_type as string | null | undefined) ?? null,
    r: c.r as number,
    lora_alpha: c.lora_alpha as number,
    lora_dropout: typeof c.lora_dropout === "number" ? c.lora_dropout : 0,
    target_modules: targets as string[] | string,
    bias: "none",
    use_rslora: c.use_rslora === true,
    fan_in_fan_out: false,
    base_model_name_or_path: (c.base_model_name_or_path as string | null | undefined) ?? null,
    revision: (c.revision as string | null | undefined) ?? null,
    init_lora_weights: (c.init_lora_weights as boolean | string | undefined) ?? true,
    modules_to_save: null,
    inference_mode: c.inference_mode !== false,
    layers_to_transform: (c.layers_to_transform as number[] | number | null | undefined) ?? null,
    layers_pattern: (c.layers_pattern as string | string[] | null | undefined) ?? null,
    rank_pattern: (c.rank_pattern as Record<string, number> | null | undefined) ?? {},
    alpha_pattern: (c.alpha_pattern as Record<string, number> | null | undefined) ?? {},
    use_dora: false,
  };
}

export function loadAdapterConfig(dir: string): LoraAdapterConfig {
  const file = path.join(dir, ADAPTER_CONFIG);
  if (!fs.existsSync(dir)) throw new Error(`${dir}: no such adapter directory`);
  if (!fs.existsSync(file)) throw new Error(`${dir}: no ${ADAPTER_CONFIG}; not a PEFT adapter directory`);
  let json: unknown;
  try {
    json = JSON.parse(fs.readFileSync(file, "utf8"));
  } catch (error) {
    throw new Error(`${file}: not valid JSON (${(error as Error).message})`);
  }
  return parseAdapterConfig(json, file);
}

/** PEFT's pattern lookup: the first key whose regex matches the end of the module path. */
function patternValue(patterns: Record<string, number>, modulePath: string): number | undefined {
  for (const [pattern, value] of Object.entries(patterns)) {
    if (new RegExp(`^(.*\\.)?(${pattern})$`).test(modulePath)) return value;
  }
  return undefined;
}

export const rankFor = (config: LoraAdapterConfig, modulePath: string): number => patternValue(config.rank_pattern, modulePath) ?? config.r;
export const alphaFor = (config: LoraAdapterConfig, modulePath: string): number =>
  patternValue(config.alpha_pattern, modulePath) ?? config.lora_alpha;

/** The scale s in ΔW = s · B A: α / r, or α / √r with rsLoRA (the one place this formula lives). */
export const loraScale = (alpha: number, rank: number, rslora: boolean): number => alpha / (rslora ? Math.sqrt(rank) : rank);

/** s for one module of an adapter, after its rank_pattern / alpha_pattern. */
export const loraScaling = (config: LoraAdapterConfig, modulePath: string): number =>
  loraScale(alphaFor(config, modulePath), rankFor(config, modulePath), config.use_rslora);

/** The linear projections of a Qwen2 / Llama decoder layer, by their Hugging Face module names: what "all-linear" means. */
export const PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"] as const;

/** Target module names, with "all-linear" spelled out. */
export const targetNames = (targets: readonly string[] | "all-linear"): string[] =>
  targets === "all-linear" ? [...PROJECTIONS] : [...targets];

/** Whether PEFT would put a LoRA on this module: a listed name matches its last components, or the regex matches. */
export function isTargetModule(config: LoraAdapterConfig, modulePath: string): boolean {
  const t = config.target_modules;
  if (typeof t === "string") return t === "all-linear" || new RegExp(`^(?:${t})$`).test(modulePath);
  return t.some((name) => modulePath === name || modulePath.endsWith(`.${name}`));
}

const PREFIX = "base_model.model.";

/** The safetensors key PEFT uses for a module's factor. */
export const adapterKey = (modulePath: string, factor: "A" | "B"): string => `${PREFIX}${modulePath}.lora_${factor}.weight`;

// PEFT drops the adapter name ("default") when saving; older files may still carry it
const keyPattern = /^base_model\.model\.(.+)\.lora_([AB])(?:\.default)?\.weight$/;

/** Reads a PEFT LoRA adapter directory; tensors are on the CPU in the file's dtype. */
export function loadAdapter(dir: string): { config: LoraAdapterConfig; weights: LoraWeights } {
  const config = loadAdapterConfig(dir);
  const weightsPath = path.join(dir, ADAPTER_WEIGHTS);
  if (!fs.existsSync(weightsPath)) {
    if (fs.existsSync(path.join(dir, "adapter_model.bin"))) {
      throw new Error(
        `${dir}: has adapter_model.bin (PyTorch pickle), which svdlora does not read; re-save it with PEFT's save_pretrained(safe_serialization=True)`,
      );
    }
    throw new Error(`${dir}: no ${ADAPTER_WEIGHTS} next to ${ADAPTER_CONFIG}`);
  }
  const file = SafetensorsFile.open(weightsPath);
  const weights: LoraWeights = new Map();
  const partial = new Map<string, Partial<LoraFactors>>();
  try {
    for (const key of file.keys()) {
      const match = keyPattern.exec(key);
      if (!match)
        throw new Error(
          `${weightsPath}: unexpected tensor ${JSON.stringify(key)}; svdlora reads LoRA factors named base_model.model.<module>.lora_A/lora_B.weight`,
        );
      const [, modulePath, factor] = match;
      const factors = partial.get(modulePath) ?? {};
      if (factors[factor as "A" | "B"]) throw new Error(`${weightsPath}: module ${modulePath} has lora_${factor} twice`);
      factors[factor as "A" | "B"] = file.read(key);
      partial.set(modulePath, factors);
    }
    for (const [modulePath, { A, B }] of partial) {
      if (!A || !B) throw new Error(`${weightsPath}: module ${modulePath} has lora_${A ? "A" : "B"} but no lora_${A ? "B" : "A"}`);
      checkFactors(modulePath, { A, B }, rankFor(config, modulePath), weightsPath);
      weights.set(modulePath, { A, B });
    }
  } catch (error) {
    for (const { A, B } of partial.values()) {
      A?.dispose();
      B?.dispose();
    }
    throw error;
  } finally {
    file.close();
  }
  if (weights.size === 0) throw new Error(`${weightsPath}: contains no LoRA factors`);
  return { config, weights };
}

function checkFactors(modulePath: string, { A, B }: LoraFactors, r: number, where: string): void {
  const [a, b] = [A.shape, B.shape];
  if (a.length !== 2 || b.length !== 2)
    throw new Error(`${where}: ${modulePath} factors must be matrices, got lora_A [${a}] and lora_B [${b}]`);
  if (a[0] !== r || b[1] !== r) {
    throw new Error(`${where}: ${modulePath} has rank ${a[0]} (lora_A [${a}]) and ${b[1]} (lora_B [${b}]) but the config says r = ${r}`);
  }
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
    checkFactors(modulePath, factors, rankFor(checked, modulePath), `saveAdapter(${dir})`);
    tensors.set(adapterKey(modulePath, "A"), factors.A);
    tensors.set(adapterKey(modulePath, "B"), factors.B);
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
