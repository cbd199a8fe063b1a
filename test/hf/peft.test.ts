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
      () => loadAdapter(adapterDir("dora", { [`${q}.lora_A.weight`]: A }, { ...config(), use_dora: true })),
      /use_dora is true; DoRA adapters are not supported/,
    );
    assert.throws(
      () => loadAdapter(adapterDir("ia3", { [`${q}.lora_A.weight`]: A }, { ...config(), peft_type: "IA3" })),
      /peft_type is "IA3"; svdlora reads LoRA adapters/,
    );
    assert.throws(() => parseAdapterConfig({ ...config(), r: 0 }), /"r" must be a positive integer, got 0/);
    assert.throws(
      () => parseAdapterConfig({ ...config(), target_modules: [1] }),
      /"target_modules" must be a list of module names or a regex string/,
    );
    dispose([A, B]);
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
