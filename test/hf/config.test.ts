import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";
import { loadModelConfig, parseModelConfig } from "../../src/hf/config.js";
import { tempDir } from "./fixtures.js";

// modelled on the config.json of Qwen/Qwen2.5-Math-7B-Instruct
const qwen25Math7B = {
  architectures: ["Qwen2ForCausalLM"],
  attention_dropout: 0.0,
  bos_token_id: 151643,
  eos_token_id: 151645,
  hidden_act: "silu",
  hidden_size: 3584,
  initializer_range: 0.02,
  intermediate_size: 18944,
  max_position_embeddings: 4096,
  max_window_layers: 28,
  model_type: "qwen2",
  num_attention_heads: 28,
  num_hidden_layers: 28,
  num_key_value_heads: 4,
  rms_norm_eps: 1e-6,
  rope_theta: 10000.0,
  sliding_window: 4096,
  tie_word_embeddings: false,
  torch_dtype: "bfloat16",
  transformers_version: "4.37.0",
  use_cache: true,
  use_sliding_window: false,
  vocab_size: 152064,
};

// modelled on a Llama 3.2 1B config.json (rope_scaling llama3, tied embeddings, eos list)
const llama32 = {
  architectures: ["LlamaForCausalLM"],
  attention_bias: false,
  bos_token_id: 128000,
  eos_token_id: [128001, 128008, 128009],
  head_dim: 64,
  hidden_act: "silu",
  hidden_size: 2048,
  intermediate_size: 8192,
  max_position_embeddings: 131072,
  mlp_bias: false,
  model_type: "llama",
  num_attention_heads: 32,
  num_hidden_layers: 16,
  num_key_value_heads: 8,
  rms_norm_eps: 1e-5,
  rope_scaling: { factor: 32.0, high_freq_factor: 4.0, low_freq_factor: 1.0, original_max_position_embeddings: 8192, rope_type: "llama3" },
  rope_theta: 500000.0,
  tie_word_embeddings: true,
  torch_dtype: "bfloat16",
  vocab_size: 128256,
};

describe("model config", () => {
  it("parses Qwen2.5-Math-7B-Instruct: GQA, q/k/v bias but no o_proj bias", () => {
    const c = parseModelConfig(qwen25Math7B);
    assert.equal(c.modelType, "qwen2");
    assert.equal(c.hiddenSize, 3584);
    assert.equal(c.intermediateSize, 18944);
    assert.equal(c.numHiddenLayers, 28);
    assert.equal(c.numAttentionHeads, 28);
    assert.equal(c.numKeyValueHeads, 4);
    assert.equal(c.headDim, 128);
    assert.equal(c.vocabSize, 152064);
    assert.equal(c.rmsNormEps, 1e-6);
    assert.equal(c.ropeTheta, 10000);
    assert.equal(c.ropeScaling, null);
    assert.equal(c.maxPositionEmbeddings, 4096);
    assert.equal(c.tieWordEmbeddings, false);
    assert.deepEqual([c.qkvBias, c.oProjBias, c.mlpBias], [true, false, false]);
    assert.equal(c.torchDtype, "bfloat16");
    assert.deepEqual([c.bosTokenId, c.eosTokenId, c.padTokenId], [151643, 151645, undefined]);
    assert.equal(c.raw.sliding_window, 4096);
  });

  it("parses a Llama 3.2 config: explicit head_dim, rope_scaling, tied embeddings, eos list", () => {
    const c = parseModelConfig(llama32);
    assert.equal(c.modelType, "llama");
    assert.equal(c.headDim, 64);
    assert.equal(c.numKeyValueHeads, 8);
    assert.equal(c.ropeTheta, 500000);
    assert.deepEqual(c.ropeScaling, llama32.rope_scaling);
    assert.equal(c.tieWordEmbeddings, true);
    assert.deepEqual(c.eosTokenId, [128001, 128008, 128009]);
    assert.deepEqual([c.qkvBias, c.oProjBias, c.mlpBias], [false, false, false]);
    const biased = parseModelConfig({ ...llama32, attention_bias: true, mlp_bias: true });
    assert.deepEqual([biased.qkvBias, biased.oProjBias, biased.mlpBias], [true, true, true]);
  });

  it("fills transformers' defaults for absent fields", () => {
    const minimal = {
      model_type: "llama",
      hidden_size: 64,
      intermediate_size: 128,
      num_hidden_layers: 2,
      num_attention_heads: 4,
      vocab_size: 100,
    };
    const c = parseModelConfig(minimal);
    assert.equal(c.numKeyValueHeads, 4);
    assert.equal(c.headDim, 16);
    assert.equal(c.ropeTheta, 10000);
    assert.equal(c.rmsNormEps, 1e-6);
    assert.equal(c.maxPositionEmbeddings, 2048);
    assert.equal(c.tieWordEmbeddings, false);
    assert.equal(c.qkvBias, false);
    assert.equal(c.torchDtype, undefined);
    assert.equal(parseModelConfig({ ...minimal, model_type: "qwen2" }).maxPositionEmbeddings, 32768);
    assert.equal(parseModelConfig({ ...minimal, dtype: "float16" }).torchDtype, "float16");
  });

  it("names the missing or bad field", () => {
    const { hidden_size: _, ...noHidden } = qwen25Math7B;
    assert.throws(() => parseModelConfig(noHidden, "x/config.json"), /^Error: x\/config.json: missing required field "hidden_size"$/);
    const { vocab_size: __, ...noVocab } = qwen25Math7B;
    assert.throws(() => parseModelConfig(noVocab), /missing required field "vocab_size"/);
    assert.throws(
      () => parseModelConfig({ ...qwen25Math7B, num_hidden_layers: 0 }),
      /"num_hidden_layers" must be a positive integer, got 0/,
    );
    assert.throws(
      () => parseModelConfig({ ...qwen25Math7B, num_key_value_heads: 5 }),
      /num_attention_heads 28 is not a multiple of num_key_value_heads 5/,
    );
    assert.throws(
      () => parseModelConfig({ ...qwen25Math7B, hidden_size: 3583 }),
      /hidden_size 3583 is not divisible by num_attention_heads 28/,
    );
    assert.throws(() => parseModelConfig({ ...qwen25Math7B, tie_word_embeddings: "no" }), /"tie_word_embeddings" must be true or false/);
    assert.throws(() => parseModelConfig({ ...qwen25Math7B, torch_dtype: "float8" }), /"torch_dtype" is "float8"/);
  });

  it("rejects unknown architectures", () => {
    assert.throws(
      () => parseModelConfig({ ...qwen25Math7B, model_type: "mistral", architectures: ["MistralForCausalLM"] }),
      /unsupported architecture model_type "mistral" \(MistralForCausalLM\): svdlora supports qwen2 and llama/,
    );
    assert.throws(() => parseModelConfig({ hidden_size: 8 }), /missing "model_type"/);
    assert.throws(() => parseModelConfig([1]), /not a JSON object/);
  });

  it("loads from a directory, and reports a missing file or invalid JSON", () => {
    const dir = tempDir();
    fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify(qwen25Math7B));
    assert.equal(loadModelConfig(dir).hiddenSize, 3584);
    assert.equal(loadModelConfig(path.join(dir, "config.json")).hiddenSize, 3584);
    const empty = path.join(dir, "empty");
    fs.mkdirSync(empty);
    assert.throws(() => loadModelConfig(empty), /empty\/config.json: model config not found/);
    fs.writeFileSync(path.join(empty, "config.json"), "{ model_type: qwen2 }");
    assert.throws(() => loadModelConfig(empty), /empty\/config.json: not valid JSON/);
  });

  it("numbers must be finite and in range (1e400 reads as Infinity)", () => {
    const parse = (text: string) => parseModelConfig({ ...qwen25Math7B, ...JSON.parse(text) }, "m/config.json");
    assert.throws(
      () => parse('{"hidden_size": 1e400}'),
      /^Error: m\/config\.json: "hidden_size" must be a positive integer, got Infinity$/,
    );
    assert.throws(() => parse('{"rope_theta": 1e400}'), /"rope_theta" must be a positive number, got Infinity/);
    assert.throws(() => parse('{"rms_norm_eps": 1e400}'), /"rms_norm_eps" must be a positive number, got Infinity/);
    assert.throws(() => parse('{"rms_norm_eps": 2}'), /"rms_norm_eps" must be below 1, got 2/);
    assert.throws(() => parse('{"vocab_size": 1.5}'), /"vocab_size" must be a positive integer, got 1\.5/);
  });

  it("fields named like Object's own properties are plain fields", () => {
    assert.throws(() => parseModelConfig({ ...qwen25Math7B, torch_dtype: "toString" }), /"torch_dtype" is "toString"; expected float32/);
    assert.throws(() => parseModelConfig({ ...qwen25Math7B, torch_dtype: "constructor" }), /"torch_dtype" is "constructor"/);
    assert.throws(() => parseModelConfig(JSON.parse('{"__proto__": {"model_type": "qwen2"}, "hidden_size": 8}')), /missing "model_type"/);
    const odd = parseModelConfig(
      JSON.parse(`{${JSON.stringify(qwen25Math7B).slice(1, -1)}, "toString": 5, "hasOwnProperty": 1, "__proto__": {"x": 1}}`),
    );
    assert.equal(odd.hiddenSize, 3584);
    assert.equal(odd.hiddenAct, "silu");
    const noAct = parseModelConfig(
      JSON.parse(`{${JSON.stringify({ ...qwen25Math7B, hidden_act: undefined }).slice(1, -1)}, "constructor": 1}`),
    );
    assert.equal(noAct.hiddenAct, "silu");
  });

  it("a FIFO or a folder given as config.json is refused at once", (t) => {
    const dir = tempDir();
    fs.mkdirSync(path.join(dir, "config.json"));
    assert.throws(() => loadModelConfig(dir), /config\.json: is a folder, not the model config/);
    const fifo = path.join(dir, "fifo.json");
    if (spawnSync("mkfifo", [fifo]).status !== 0) return t.skip("mkfifo is not available");
    assert.throws(() => loadModelConfig(fifo), /fifo\.json: is a named pipe \(FIFO\), not the model config/);
  });
});
