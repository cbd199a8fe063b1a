// config.json → ModelConfig: the few numbers that define a Qwen2 or Llama decoder, with the
// defaults transformers applies when a field is absent, and checks that they fit together.
import * as fs from "node:fs";
import * as path from "node:path";
import type { DType } from "../torch/index.js";
import { FileError, displayPath, readInputText, showValue } from "../util/files.js";

export type ModelType = "qwen2" | "llama";

export interface ModelConfig {
  modelType: ModelType;
  hiddenSize: number;
  intermediateSize: number;
  numHiddenLayers: number;
  numAttentionHeads: number;
  /** Grouped-query attention: heads for K and V (= numAttentionHeads when absent). */
  numKeyValueHeads: number;
  /** Per-head size (hiddenSize / numAttentionHeads when absent). */
  headDim: number;
  vocabSize: number;
  rmsNormEps: number;
  ropeTheta: number;
  /** rope_scaling as written (null for plain RoPE); the model decides what it supports. */
  ropeScaling: Record<string, unknown> | null;
  maxPositionEmbeddings: number;
  tieWordEmbeddings: boolean;
  /** Bias on q_proj, k_proj, v_proj (always for Qwen2; `attention_bias` for Llama). */
  qkvBias: boolean;
  /** Bias on o_proj (never for Qwen2; `attention_bias` for Llama). */
  oProjBias: boolean;
  /** Bias on gate/up/down_proj (Llama's `mlp_bias`). */
  mlpBias: boolean;
  hiddenAct: string;
  /** The checkpoint's dtype (`torch_dtype`, or `dtype` in newer transformers), if stated. */
  torchDtype: DType | undefined;
  bosTokenId: number | undefined;
  eosTokenId: number | number[] | undefined;
  padTokenId: number | undefined;
  /** The parsed config.json, for fields not listed here. */
  raw: Record<string, unknown>;
}

const supportedTypes: readonly string[] = ["qwen2", "llama"];
const dtypeNames: Record<string, DType> = { float32: "float32", float16: "float16", bfloat16: "bfloat16", float64: "float64" };

/** Reads <dir>/config.json (or a path to a config file). */
export function loadModelConfig(dirOrFile: string): ModelConfig {
  const file = fs.existsSync(dirOrFile) && fs.statSync(dirOrFile).isDirectory() ? path.join(dirOrFile, "config.json") : dirOrFile;
  let text: string;
  try {
    text = readInputText(file, "model config", MAX_CONFIG_BYTES); // a FIFO or a folder is refused, not waited on
  } catch (error) {
    if (error instanceof FileError && error.code === "ENOENT")
      throw new Error(
        `${displayPath(file)}: model config not found; --base-model must be a Hugging Face model directory with a config.json`,
      );
    throw error;
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new Error(`${displayPath(file)}: not valid JSON (${(error as Error).message.replace(/\s+/g, " ").slice(0, 200)})`);
  }
  return parseModelConfig(json, displayPath(file));
}

/** A config.json is a few kB; a larger one is damage (or not a config). */
const MAX_CONFIG_BYTES = 16 << 20;

/** A copy without a prototype: a field the file lacks is undefined, even one named "toString" or "constructor". */
const ownFields = (o: object): Record<string, unknown> => Object.assign(Object.create(null), o);

/** Validates a parsed config.json; `source` names it in errors. */
export function parseModelConfig(json: unknown, source = "config.json"): ModelConfig {
  const fail = (problem: string): never => {
    throw new Error(`${source}: ${problem}`);
  };
  if (typeof json !== "object" || json === null || Array.isArray(json)) return fail("not a JSON object");
  const raw = ownFields(json);

  const modelType = raw.model_type;
  if (typeof modelType !== "string") return fail(`missing "model_type" (expected one of ${supportedTypes.join(", ")})`);
  if (!supportedTypes.includes(modelType)) {
    return fail(
      `unsupported architecture model_type "${modelType}"${architecturesNote(raw)}: svdlora supports ${supportedTypes.join(" and ")}`,
    );
  }

  const positive = (field: string, fallback?: number): number => {
    const v = raw[field] ?? fallback;
    if (v === undefined) return fail(`missing required field "${field}"`);
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v <= 0)
      return fail(`"${field}" must be a positive integer, got ${showValue(v)}`);
    return v;
  };
  const positiveNumber = (field: string, fallback: number, from: Record<string, unknown> = raw): number => {
    const v = from[field] ?? fallback;
    if (typeof v !== "number" || !(v > 0) || !Number.isFinite(v)) return fail(`"${field}" must be a positive number, got ${showValue(v)}`);
    return v;
  };
  const belowOne = (eps: number): number => (eps < 1 ? eps : fail(`"rms_norm_eps" must be below 1, got ${eps}`));
  const flag = (field: string, fallback: boolean): boolean => {
    const v = raw[field] ?? fallback;
    if (typeof v !== "boolean") return fail(`"${field}" must be true or false, got ${showValue(v)}`);
    return v;
  };
  const tokenId = (field: string): number | undefined => {
    const v = raw[field];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) return fail(`"${field}" must be a token id, got ${showValue(v)}`);
    return v;
  };

  const hiddenSize = positive("hidden_size");
  const numAttentionHeads = positive("num_attention_heads");
  const numKeyValueHeads = positive("num_key_value_heads", numAttentionHeads);
  if (raw.head_dim == null && hiddenSize % numAttentionHeads !== 0) {
    fail(`hidden_size ${hiddenSize} is not divisible by num_attention_heads ${numAttentionHeads} (and no head_dim is given)`);
  }
  const headDim = positive("head_dim", hiddenSize / numAttentionHeads);
  if (numAttentionHeads % numKeyValueHeads !== 0) {
    fail(`num_attention_heads ${numAttentionHeads} is not a multiple of num_key_value_heads ${numKeyValueHeads}`);
  }

  const isQwen2 = modelType === "qwen2";
  const attentionBias = isQwen2 ? true : flag("attention_bias", false);
  const hiddenAct = raw.hidden_act ?? "silu";
  if (typeof hiddenAct !== "string") fail(`"hidden_act" must be a string, got ${JSON.stringify(hiddenAct)}`);

  // transformers >= 5 writes rope_parameters {rope_theta, rope_type, …}; older configs a
  // top-level rope_theta and an optional rope_scaling.
  const ropeParameters = raw.rope_parameters;
  if (ropeParameters !== undefined && ropeParameters !== null && (typeof ropeParameters !== "object" || Array.isArray(ropeParameters))) {
    fail(`"rope_parameters" must be an object, got ${JSON.stringify(ropeParameters)}`);
  }
  const ropeParams = ownFields((ropeParameters ?? {}) as object);
  const ropeType = ropeParams.rope_type ?? ropeParams.type ?? "default";
  const ropeScaling = raw.rope_scaling ?? (ropeType !== "default" ? ropeParams : null);
  if (ropeScaling !== null && (typeof ropeScaling !== "object" || Array.isArray(ropeScaling))) {
    fail(`"rope_scaling" must be an object or null, got ${JSON.stringify(ropeScaling)}`);
  }

  const eos = raw.eos_token_id;
  let eosTokenId: number | number[] | undefined;
  if (Array.isArray(eos)) {
    if (!eos.every((v) => typeof v === "number" && Number.isSafeInteger(v) && v >= 0))
      fail(`"eos_token_id" must be a token id or a list of them`);
    eosTokenId = eos as number[];
  } else {
    eosTokenId = tokenId("eos_token_id");
  }

  return {
    modelType: modelType as ModelType,
    hiddenSize,
    intermediateSize: positive("intermediate_size"),
    numHiddenLayers: positive("num_hidden_layers"),
    numAttentionHeads,
    numKeyValueHeads,
    headDim,
    vocabSize: positive("vocab_size"),
    rmsNormEps: belowOne(positiveNumber("rms_norm_eps", 1e-6)),
    ropeTheta: "rope_theta" in ropeParams ? positiveNumber("rope_theta", 10000, ropeParams) : positiveNumber("rope_theta", 10000),
    ropeScaling: ropeScaling as Record<string, unknown> | null,
    maxPositionEmbeddings: positive("max_position_embeddings", isQwen2 ? 32768 : 2048),
    tieWordEmbeddings: flag("tie_word_embeddings", false),
    qkvBias: attentionBias,
    oProjBias: isQwen2 ? false : attentionBias,
    mlpBias: isQwen2 ? false : flag("mlp_bias", false),
    hiddenAct: hiddenAct as string,
    torchDtype: parseDtype(raw, fail),
    bosTokenId: tokenId("bos_token_id"),
    eosTokenId,
    padTokenId: tokenId("pad_token_id"),
    raw,
  };
}

function parseDtype(raw: Record<string, unknown>, fail: (problem: string) => never): DType | undefined {
  const field = raw.torch_dtype !== undefined ? "torch_dtype" : "dtype";
  const v = raw[field];
  if (v === undefined || v === null || v === "auto") return undefined;
  const name = typeof v === "string" ? v.replace(/^torch\./, "") : "";
  return (
    (Object.hasOwn(dtypeNames, name) ? dtypeNames[name] : undefined) ??
    fail(`"${field}" is ${showValue(v)}; expected float32, float16, bfloat16 or float64`)
  );
}

function architecturesNote(raw: Record<string, unknown>): string {
  return Array.isArray(raw.architectures) ? ` (${raw.architectures.join(", ")})` : "";
}
