import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";
import {
  type LoraWeights,
  adapterKey,
  isTargetModule,
  loadAdapter,
  loraConfig,
  loraScaling,
  parseAdapterConfig,
  rankFor,
  saveAdapter,
} from "../../src/hf/peft.js";
import { SafetensorsFile, saveSafetensors } from "../../src/hf/safetensors.js";
import { type Tensor, dispose, memory, randn, zeros } from "../../src/torch/index.js";
import { tempDir } from "./fixtures.js";

const root = tempDir();
const hidden = 8;
const kvOut = 4;
const r = 2;

function someWeights(): LoraWeights {
  const weights: LoraWeights = new Map();
  for (let layer = 0; layer < 2; layer++) {
    weights.set(`model.layers.${layer}.self_attn.q_proj`, { A: randn([r, hidden]), B: randn([hidden, r]) });
    weights.set(`model.layers.${layer}.self_attn.v_proj`, { A: randn([r, hidden]).to("bfloat16"), B: randn([kvOut, r]).to("bfloat16") });
  }
  return weights;
}

const disposeWeights = (w: LoraWeights) => dispose([...w.values()].flatMap(({ A, B }) => [A, B]));
const config = () =>
  loraConfig({ r, loraAlpha: 16, targetModules: ["q_proj", "v_proj"], baseModel: "Qwen/Qwen2.5-Math-7B-Instruct", loraDropout: 0.05 });

describe("PEFT adapters", () => {
  it("round-trips config and factors with PEFT's key layout and file names", () => {
    const dir = path.join(root, "final_model_random");
    const weights = someWeights();
    saveAdapter(dir, config(), weights);
    assert.deepEqual(fs.readdirSync(dir).sort(), ["adapter_config.json", "adapter_model.safetensors", "svdlora.json"]);

    const file = SafetensorsFile.open(path.join(dir, "adapter_model.safetensors"));
    assert.deepEqual(file.metadata, { format: "pt" });
    assert.ok(file.has("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"));
    assert.ok(file.has("base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight"));
    assert.equal(file.keys().length, 8);
    assert.deepEqual(file.entry(adapterKey("model.layers.1.self_attn.v_proj", "A")).shape, [r, hidden], "lora_A is r × in");
    assert.deepEqual(file.entry(adapterKey("model.layers.1.self_attn.v_proj", "B")).shape, [kvOut, r], "lora_B is out × r");
    file.close();

    const text = fs.readFileSync(path.join(dir, "adapter_config.json"), "utf8");
    const json = JSON.parse(text);
    assert.deepEqual(Object.keys(json), Object.keys(json).sort(), "keys sorted as PEFT writes them");
    assert.match(text, /^\{\n {2}"alpha_pattern": \{\},\n/);
    assert.equal(json.peft_type, "LORA");
    assert.equal(json.task_type, "CAUSAL_LM");
    assert.equal(json.r, 2);
    assert.equal(json.lora_alpha, 16);
    assert.equal(json.lora_dropout, 0.05);
    assert.deepEqual(json.target_modules, ["q_proj", "v_proj"]);
    assert.equal(json.bias, "none");
    assert.equal(json.fan_in_fan_out, false);
    assert.equal(json.use_rslora, false);
    assert.equal(json.modules_to_save, null);
    assert.equal(json.base_model_name_or_path, "Qwen/Qwen2.5-Math-7B-Instruct");

    const before = memory().count;
    const loaded = loadAdapter(dir);
    assert.deepEqual(loaded.config, parseAdapterConfig(config()));
    assert.deepEqual([...loaded.weights.keys()].sort(), [...weights.keys()].sort());
    for (const [module, { A, B }] of weights) {
      const back = loaded.weights.get(module)!;
      assert.equal(back.A.dtype, A.dtype);
      assert.deepEqual(back.A.bytes(), A.bytes());
      assert.deepEqual(back.B.bytes(), B.bytes());
    }
    disposeWeights(loaded.weights);
    assert.equal(memory().count, before);
    disposeWeights(weights);
  });

  it("reads an adapter as PEFT writes it, keeping fields we do not know", () => {
    const dir = path.join(root, "from_peft");
    fs.mkdirSync(dir);
    const peftConfig = {
      alpha_pattern: {},
      auto_mapping: null,
      base_model_name_or_path: "Qwen/Qwen2.5-0.5B",
      bias: "none",
      eva_config: null,
      exclude_modules: null,
      fan_in_fan_out: false,
      inference_mode: true,
      init_lora_weights: true,
      layer_replication: null,
      layers_pattern: null,
      layers_to_transform: null,
      loftq_config: {},
      lora_alpha: 32,
      lora_bias: false,
      lora_dropout: 0.1,
      megatron_config: null,
      megatron_core: "megatron.core",
      modules_to_save: null,
      peft_type: "LORA",
      r: 4,
      rank_pattern: { "layers\\.1\\.self_attn\\.k_proj": 2 },
      revision: null,
      target_modules: ["k_proj", "o_proj"],
      task_type: "CAUSAL_LM",
      use_dora: false,
      use_rslora: true,
    };
    fs.writeFileSync(path.join(dir, "adapter_config.json"), JSON.stringify(peftConfig, null, 2));
    const tensors: Record<string, Tensor> = {
      "base_model.model.model.layers.0.self_attn.k_proj.lora_A.weight": randn([4, 8]),
      "base_model.model.model.layers.0.self_attn.k_proj.lora_B.weight": zeros([4, 4]),
      "base_model.model.model.layers.1.self_attn.k_proj.lora_A.weight": randn([2, 8]),
      "base_model.model.model.layers.1.self_attn.k_proj.lora_B.weight": zeros([4, 2]),
    };
    saveSafetensors(path.join(dir, "adapter_model.safetensors"), tensors, { format: "pt" });
    const { config: c, weights } = loadAdapter(dir);
    assert.equal(c.r, 4);
    assert.equal(rankFor(c, "model.layers.1.self_attn.k_proj"), 2, "rank_pattern applies");
    assert.equal(rankFor(c, "model.layers.11.self_attn.k_proj"), 4, "pattern matches whole path components only");
    assert.equal(loraScaling(c, "model.layers.0.self_attn.k_proj"), 32 / 2, "rsLoRA: α/√r");
    assert.equal(c.eva_config, null);
    assert.equal(c.lora_bias, false);
    assert.deepEqual(weights.get("model.layers.1.self_attn.k_proj")!.A.shape, [2, 8]);

    const again = path.join(root, "from_peft_resaved");
    saveAdapter(again, c, weights);
    const resaved = JSON.parse(fs.readFileSync(path.join(again, "adapter_config.json"), "utf8"));
    assert.equal(resaved.exclude_modules, null, "unknown fields survive a round trip");
    assert.deepEqual(resaved.rank_pattern, peftConfig.rank_pattern);
    disposeWeights(weights);
    dispose(tensors);
  });

  it("computes scaling and target matches as PEFT does", () => {
    const c = parseAdapterConfig(config());
    assert.equal(loraScaling(c, "model.layers.0.self_attn.q_proj"), 8);
    assert.ok(isTargetModule(c, "model.layers.3.self_attn.q_proj"));
    assert.ok(!isTargetModule(c, "model.layers.3.self_attn.o_proj"));
    assert.ok(!isTargetModule(c, "model.layers.3.self_attn.xq_proj"));
    const regex = parseAdapterConfig({ ...config(), target_modules: ".*\\.(q|v)_proj" });
    assert.ok(isTargetModule(regex, "model.layers.3.self_attn.v_proj"));
    assert.ok(!isTargetModule(regex, "model.layers.3.mlp.up_proj"));
  });

  function adapterDir(name: string, tensors: Record<string, Tensor>, cfg: object = config()): string {
    const dir = path.join(root, name);
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, "adapter_config.json"), JSON.stringify(cfg));
    saveSafetensors(path.join(dir, "adapter_model.safetensors"), tensors);
    return dir;
  }

  it("reports a missing factor, a rank mismatch, unexpected keys and unsupported configs", () => {
    const A = randn([r, hidden]);
    const B = randn([hidden, r]);
    const q = "base_model.model.model.layers.0.self_attn.q_proj";
    assert.throws(
      () => loadAdapter(adapterDir("no-b", { [`${q}.lora_A.weight`]: A })),
      /model.layers.0.self_attn.q_proj has lora_A but no lora_B/,
    );
    assert.throws(() => loadAdapter(adapterDir("no-a", { [`${q}.lora_B.weight`]: B })), /has lora_B but no lora_A/);
    assert.throws(
      () => loadAdapter(adapterDir("rank", { [`${q}.lora_A.weight`]: A, [`${q}.lora_B.weight`]: B }, { ...config(), r: 3 })),
      /q_proj has rank 2 \(lora_A \[2,8\]\) and 2 \(lora_B \[8,2\]\) but the config says r = 3/,
    );
    assert.throws(
      () =>
        loadAdapter(adapterDir("extra", { [`${q}.lora_A.weight`]: A, [`${q}.lora_B.weight`]: B, "base_model.model.lm_head.weight": B })),
      /unexpected tensor "base_model.model.lm_head.weight"/,
    );
    assert.throws(
      () => loadAdapter(adapterDir("ia3", { [`${q}.lora_A.weight`]: A }, { ...config(), peft_type: "IA3" })),
      /peft_type is "IA3"; svdlora reads LoRA adapters/,
    );
    assert.throws(() => parseAdapterConfig({ ...config(), r: 0 }), /"r" must be a positive integer \(at most 65536\), got 0/);
    assert.throws(
      () => parseAdapterConfig({ ...config(), target_modules: [1] }),
      /"target_modules" must be a list of module names or a regex string/,
    );
    dispose([A, B]);
  });

  it("DoRA: the magnitude vector round-trips under PEFT's key, and goes with use_dora only", () => {
    const dir = path.join(root, "dora-saved");
    const weights = someWeights();
    for (const [p, f] of weights) weights.set(p, { ...f, magnitude: randn([f.B.shape[0]]) });
    saveAdapter(dir, { ...config(), use_dora: true }, weights);
    const file = SafetensorsFile.open(path.join(dir, "adapter_model.safetensors"));
    assert.deepEqual(file.entry("base_model.model.model.layers.1.self_attn.v_proj.lora_magnitude_vector").shape, [kvOut]);
    assert.equal(file.keys().length, 12);
    file.close();
    const back = loadAdapter(dir);
    assert.equal(back.config.use_dora, true);
    const q0 = "model.layers.0.self_attn.q_proj";
    assert.deepEqual(
      Array.from(back.weights.get(q0)!.magnitude!.data() as Float32Array),
      Array.from(weights.get(q0)!.magnitude!.data() as Float32Array),
    );
    assert.throws(() => saveAdapter(path.join(root, "dora-x"), config(), weights), /q_proj has a magnitude vector but use_dora is false/);

    const q = `base_model.model.${q0}`;
    const A = randn([r, hidden]);
    const B = randn([hidden, r]);
    const factors = { [`${q}.lora_A.weight`]: A, [`${q}.lora_B.weight`]: B };
    assert.throws(
      () => loadAdapter(adapterDir("dora-no-m", factors, { ...config(), use_dora: true })),
      /q_proj has no lora_magnitude_vector, which a DoRA adapter \(use_dora\) needs/,
    );
    assert.throws(
      () => loadAdapter(adapterDir("m-no-dora", { ...factors, [`${q}.lora_magnitude_vector`]: randn([hidden]) })),
      /has base_model.model.model.layers.0.self_attn.q_proj.lora_magnitude_vector but adapter_config.json says use_dora is false/,
    );
    assert.throws(
      () => loadAdapter(adapterDir("m-shape", { ...factors, [`${q}.lora_magnitude_vector`]: randn([3]) }, { ...config(), use_dora: true })),
      /q_proj has lora_magnitude_vector \[3\] but lora_B \[8,2\]: it needs one entry per output/,
    );
    disposeWeights(weights);
    dispose([A, B, ...[...weights.values()].map((f) => f.magnitude!)]);
  });

  it("reports pickle-only and incomplete adapter directories", () => {
    const dir = path.join(root, "pickle");
    fs.mkdirSync(dir);
    assert.throws(() => loadAdapter(dir), /pickle: no adapter_config.json; not a PEFT adapter directory/);
    fs.writeFileSync(path.join(dir, "adapter_config.json"), JSON.stringify(config()));
    assert.throws(() => loadAdapter(dir), /no adapter_model.safetensors next to adapter_config.json/);
    fs.writeFileSync(path.join(dir, "adapter_model.bin"), "");
    assert.throws(() => loadAdapter(dir), /has adapter_model.bin \(PyTorch pickle\), which svdlora does not read; re-save it/);
    fs.writeFileSync(path.join(dir, "adapter_config.json"), "{");
    assert.throws(() => loadAdapter(dir), /adapter_config.json: not valid JSON/);
  });

  it("refuses to save what PEFT could not load", () => {
    const weights = someWeights();
    const dir = path.join(root, "refused");
    assert.throws(
      () => saveAdapter(dir, { ...config(), target_modules: ["q_proj"] }, weights),
      /v_proj is not matched by target_modules \["q_proj"\]/,
    );
    assert.throws(() => saveAdapter(dir, { ...config(), r: 4 }, weights), /but the config says r = 4/);
    assert.throws(
      () =>
        saveAdapter(
          dir,
          config(),
          new Map([["base_model.model.model.layers.0.self_attn.q_proj", weights.get("model.layers.0.self_attn.q_proj")!]]),
        ),
      /give module paths like model.layers.0.self_attn.q_proj/,
    );
    assert.ok(!fs.existsSync(dir));
    disposeWeights(weights);
  });

  it("replaces an existing adapter directory whole, and leaves it intact when saving fails", () => {
    const dir = path.join(root, "replace");
    const weights = someWeights();
    saveAdapter(dir, config(), weights);
    fs.writeFileSync(path.join(dir, "stale.txt"), "old run");
    saveAdapter(dir, config(), weights);
    assert.deepEqual(fs.readdirSync(dir).sort(), ["adapter_config.json", "adapter_model.safetensors", "svdlora.json"]);
    const before = fs.readFileSync(path.join(dir, "adapter_model.safetensors"));

    const failing = {
      dtype: "float32",
      shape: [r, hidden],
      bytes: () => {
        throw new Error("disk full");
      },
    } as unknown as Tensor;
    const broken: LoraWeights = new Map([
      ["model.layers.0.self_attn.q_proj", { A: failing, B: weights.get("model.layers.0.self_attn.q_proj")!.B }],
    ]);
    assert.throws(() => saveAdapter(dir, config(), broken), /disk full/);
    assert.deepEqual(fs.readFileSync(path.join(dir, "adapter_model.safetensors")), before);
    assert.deepEqual(
      fs.readdirSync(root).filter((f) => f.startsWith(".")),
      [],
      "no temp directories left behind",
    );
    disposeWeights(weights);
  });
});

describe("adapter_config.json values", () => {
  const base = () => ({ ...config() }) as Record<string, unknown>;
  const refused = (patch: Record<string, unknown>, message: RegExp) => {
    assert.throws(
      () => parseAdapterConfig({ ...base(), ...patch }, "a/adapter_config.json"),
      (e: Error) => message.test(e.message) && e.message.startsWith("a/adapter_config.json: ") && !e.message.includes("\n"),
      JSON.stringify(patch),
    );
  };

  it("numbers must be finite and in range (1e400 reads as Infinity)", () => {
    const infinite = JSON.parse('{"lora_alpha": 1e400, "alpha_pattern": {"q_proj": 1e400}, "r": 1e400}');
    refused({ lora_alpha: infinite.lora_alpha }, /"lora_alpha" must be a finite number > 0, got Infinity/);
    refused({ alpha_pattern: infinite.alpha_pattern }, /"alpha_pattern" "q_proj" must be a finite number > 0, got Infinity/);
    refused({ r: infinite.r }, /"r" must be a positive integer/);
    refused({ lora_alpha: -8 }, /"lora_alpha" must be a finite number > 0, got -8/);
    refused({ rank_pattern: { q_proj: 2.5 } }, /"rank_pattern" "q_proj" must be a positive integer, got 2\.5/);
    refused({ lora_dropout: 1.5 }, /"lora_dropout" must be a number in \[0, 1\), got 1\.5/);
    refused({ layers_to_transform: [0, -1] }, /"layers_to_transform" must be a layer index, a list of them or null, got \[0,-1\]/);
    refused({ layers_to_transform: true }, /"layers_to_transform" must be a layer index/);
  });

  it('flags must be booleans: use_rslora "true" is not silently false', () => {
    refused({ use_rslora: "true" }, /"use_rslora" must be true or false, got "true"/);
    refused({ inference_mode: 1 }, /"inference_mode" must be true or false, got 1/);
    assert.equal(parseAdapterConfig({ ...base(), use_rslora: true }).use_rslora, true);
  });

  it("what PEFT would apply differently is refused in one line", () => {
    refused({ modules_to_save: ["lm_head"] }, /modules_to_save is \["lm_head"\]; the adapter carries full copies of those modules/);
    refused({ bias: "lora_only" }, /bias is "lora_only"; only "none" is supported/);
    refused({ lora_bias: true }, /lora_bias is true; a bias on lora_B is not supported/);
    refused({ fan_in_fan_out: true }, /fan_in_fan_out is true; the GPT-2 Conv1D layout/);
    refused({ layer_replication: [[0, 2]] }, /layer_replication is \[\[0,2\]\]; layer replication is not supported/);
    refused({ target_parameters: ["mlp.experts.weight"] }, /target_parameters is .*; LoRA on parameters is not supported/);
    refused({ trainable_token_indices: [1, 2] }, /trainable_token_indices is \[1,2\]; trainable token embeddings/);
    refused(
      { init_lora_weights: "pissa" },
      /init_lora_weights is "pissa": PEFT re-runs that init when it loads the adapter, which rewrites the base weights/,
    );
    refused({ init_lora_weights: "svd" }, /init_lora_weights is "svd"/);
    refused({ target_modules: [] }, /"target_modules" is empty/);
    for (const neutral of [
      { modules_to_save: [] },
      { bias: "none" },
      { lora_bias: false },
      { init_lora_weights: "gaussian" },
      { megatron_config: null },
    ]) {
      parseAdapterConfig({ ...base(), ...neutral });
    }
  });

  it("patterns are compiled once, checked, and a hostile one is refused at once", () => {
    refused({ target_modules: "(q|v_proj" }, /target_modules "\(q\|v_proj" is refused: a group without its "\)"/);
    refused({ target_modules: "[q" }, /target_modules "\[q" is refused: a character class without its "\]"/);
    const start = Date.now();
    refused({ rank_pattern: { "(a+)+$": 2 } }, /rank_pattern key "\(a\+\)\+\$" is refused: repeating a group that repeats or alternates/);
    refused({ alpha_pattern: { "(\\w+\\.)*q_proj": 2 } }, /alpha_pattern key .* is refused: repeating a group/);
    refused({ exclude_modules: "(.*)*x" }, /exclude_modules "\(\.\*\)\*x" is refused/);
    refused({ rank_pattern: { "\\1": 2 } }, /is refused: a backreference/);
    refused({ target_modules: ".*.*.*.*x" }, /target_modules ".\*.\*.\*.\*x" is refused: it has 4 repetitions one after another/);
    refused({ rank_pattern: { ".*.*.*x": 2 } }, /rank_pattern key ".\*.\*.\*x" is refused \(as ".*"\): it has 4 repetitions/);
    refused({ target_modules: "(?P<name>q_proj)" }, /is refused: the group syntax "\(\?P<n…", at position 1$/);
    assert.ok(Date.now() - start < 200, "refused before compiling, not by running");
    const keys = Object.fromEntries(Array.from({ length: 5000 }, (_, i) => [`layers\\.${i}\\.q_proj`, 2]));
    refused({ rank_pattern: keys }, /"rank_pattern" has 5000 patterns \(at most 4096\)/);
  });

  it("keys named like Object's own properties are plain keys", () => {
    const c = parseAdapterConfig(
      JSON.parse(
        '{"peft_type": "LORA", "r": 2, "lora_alpha": 4, "target_modules": ["q_proj"], "rank_pattern": {"toString": 8, "__proto__": 8, "hasOwnProperty": 8}, "__proto__": {"r": 99}}',
      ),
    );
    assert.equal(rankFor(c, "model.layers.0.self_attn.q_proj"), 2);
    assert.deepEqual(Object.keys(c.rank_pattern).sort(), ["__proto__", "hasOwnProperty", "toString"]);
    assert.throws(() => parseAdapterConfig(JSON.parse('{"__proto__": {"peft_type": "LORA", "r": 2}}')), /peft_type is undefined/);
    assert.throws(() => parseAdapterConfig({ ...base(), r: undefined, toString: 3 }), /"r" must be a positive integer/);
  });
});

describe("adapter weights", () => {
  const q = "base_model.model.model.layers.0.self_attn.q_proj";
  const write = (name: string, tensors: Record<string, Tensor>, cfg: object = config()) => {
    const dir = path.join(root, name);
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, "adapter_config.json"), JSON.stringify(cfg));
    saveSafetensors(path.join(dir, "adapter_model.safetensors"), tensors);
    return dir;
  };

  it("NaN or infinite factors are refused, naming the tensor", () => {
    const A = randn([r, hidden]);
    const B = randn([hidden, r]);
    const bad = B.clone();
    bad.narrow(0, 1, 1).fill_(Number.NaN);
    bad.narrow(0, 3, 1).fill_(Number.POSITIVE_INFINITY);
    assert.throws(
      () => loadAdapter(write("nan", { [`${q}.lora_A.weight`]: A, [`${q}.lora_B.weight`]: bad })),
      /nan\/adapter_model\.safetensors: tensor "base_model\.model\.model\.layers\.0\.self_attn\.q_proj\.lora_B\.weight" holds 4 NaN or infinite values \(of 16\)/,
    );
    dispose([A, B, bad]);
  });

  it("factors that are not floating point (U8, BOOL, I64) are refused, not cast", () => {
    for (const dtype of ["uint8", "bool", "int64"] as const) {
      const A = zeros([r, hidden]).to(dtype);
      const B = zeros([hidden, r]).to(dtype);
      assert.throws(
        () => loadAdapter(write(`dtype-${dtype}`, { [`${q}.lora_A.weight`]: A, [`${q}.lora_B.weight`]: B })),
        /has dtype (U8|BOOL|I64); weights must be floating point \(F32, F16, BF16 or F64\)/,
      );
      dispose([A, B]);
    }
  });

  it("factors for a module the config does not target, or that is no decoder projection, are refused", () => {
    const A = randn([r, hidden]);
    const B = randn([hidden, r]);
    const o = "base_model.model.model.layers.0.self_attn.o_proj";
    assert.throws(
      () => loadAdapter(write("untargeted", { [`${o}.lora_A.weight`]: A, [`${o}.lora_B.weight`]: B })),
      /has factors for model\.layers\.0\.self_attn\.o_proj, which adapter_config\.json does not target \(PEFT would ignore them\)/,
    );
    assert.throws(
      () =>
        loadAdapter(write("layers", { [`${q}.lora_A.weight`]: A, [`${q}.lora_B.weight`]: B }, { ...config(), layers_to_transform: [1] })),
      /has factors for model\.layers\.0\.self_attn\.q_proj, which adapter_config\.json does not target/,
    );
    const head = "base_model.model.lm_head";
    assert.throws(
      () => loadAdapter(write("head", { [`${head}.lora_A.weight`]: A, [`${head}.lora_B.weight`]: B })),
      /"lm_head" is not a projection of a Qwen2\/Llama decoder layer/,
    );
    dispose([A, B]);
  });

  it("a folder or a FIFO where adapter_model.safetensors should be is refused at once", () => {
    const dir = path.join(root, "folder-weights");
    fs.mkdirSync(path.join(dir, "adapter_model.safetensors"), { recursive: true });
    fs.writeFileSync(path.join(dir, "adapter_config.json"), JSON.stringify(config()));
    assert.throws(() => loadAdapter(dir), /adapter_model\.safetensors: is a folder, not the safetensors file \(a regular file\)$/);
  });
});
