import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";
import { SafetensorsCheckpoint } from "../../src/hf/checkpoint.js";
import { saveSafetensors } from "../../src/hf/safetensors.js";
import { dispose, tensor } from "../../src/torch/index.js";
import { tempDir } from "./fixtures.js";

const root = tempDir();

/** A two-shard checkpoint as transformers writes it, in a fresh directory. */
function shardedModel(name: string): string {
  const dir = path.join(root, name);
  fs.mkdirSync(dir);
  const embed = tensor([
    [1, 2],
    [3, 4],
    [5, 6],
  ]);
  const q = tensor([
    [0.5, -0.5],
    [1, 1],
  ]).to("bfloat16");
  const norm = tensor([1, 1]);
  saveSafetensors(path.join(dir, "model-00001-of-00002.safetensors"), { "model.embed_tokens.weight": embed }, { format: "pt" });
  saveSafetensors(
    path.join(dir, "model-00002-of-00002.safetensors"),
    { "model.layers.0.self_attn.q_proj.weight": q, "model.norm.weight": norm },
    { format: "pt" },
  );
  const index = {
    metadata: { total_size: 24 + 8 + 8 },
    weight_map: {
      "model.embed_tokens.weight": "model-00001-of-00002.safetensors",
      "model.layers.0.self_attn.q_proj.weight": "model-00002-of-00002.safetensors",
      "model.norm.weight": "model-00002-of-00002.safetensors",
    },
  };
  fs.writeFileSync(path.join(dir, "model.safetensors.index.json"), JSON.stringify(index, null, 2));
  dispose([embed, q, norm]);
  return dir;
}

const editIndex = (dir: string, edit: (index: { weight_map: Record<string, unknown> }) => void) => {
  const file = path.join(dir, "model.safetensors.index.json");
  const index = JSON.parse(fs.readFileSync(file, "utf8"));
  edit(index);
  fs.writeFileSync(file, JSON.stringify(index));
};

describe("checkpoints", () => {
  it("loads tensors from the right shard of a sharded checkpoint", () => {
    const ckpt = SafetensorsCheckpoint.open(shardedModel("sharded"));
    assert.deepEqual(ckpt.keys(), ["model.embed_tokens.weight", "model.layers.0.self_attn.q_proj.weight", "model.norm.weight"]);
    const q = ckpt.read("model.layers.0.self_attn.q_proj.weight");
    assert.equal(q.dtype, "bfloat16");
    assert.deepEqual(q.float().toArray(), [
      [0.5, -0.5],
      [1, 1],
    ]);
    const embed = ckpt.read("model.embed_tokens.weight");
    assert.deepEqual(embed.toArray(), [
      [1, 2],
      [3, 4],
      [5, 6],
    ]);
    assert.match(ckpt.entry("model.norm.weight").file, /model-00002-of-00002\.safetensors$/);
    assert.throws(() => ckpt.read("lm_head.weight"), /no tensor named "lm_head.weight"/);
    ckpt.close();
    dispose([q, embed]);
  });

  it("loads a single model.safetensors", () => {
    const dir = path.join(root, "single");
    fs.mkdirSync(dir);
    const w = tensor([1, 2, 3]);
    saveSafetensors(path.join(dir, "model.safetensors"), { w });
    const ckpt = SafetensorsCheckpoint.open(dir);
    assert.deepEqual(ckpt.keys(), ["w"]);
    const back = ckpt.read("w");
    assert.deepEqual(back.toArray(), [1, 2, 3]);
    ckpt.close();
    dispose([w, back]);
  });

  it("reports a missing shard, a tensor missing from its shard, and paths outside the directory", () => {
    const missing = shardedModel("missing-shard");
    fs.rmSync(path.join(missing, "model-00002-of-00002.safetensors"));
    assert.throws(() => SafetensorsCheckpoint.open(missing), /shard "model-00002-of-00002.safetensors" is listed but missing/);

    const wrong = shardedModel("wrong-shard");
    editIndex(wrong, (index) => (index.weight_map["model.norm.weight"] = "model-00001-of-00002.safetensors"));
    assert.throws(
      () => SafetensorsCheckpoint.open(wrong),
      /tensor "model.norm.weight" is mapped to model-00001-of-00002.safetensors, which does not contain it/,
    );

    const escape = shardedModel("escape");
    editIndex(escape, (index) => (index.weight_map["model.norm.weight"] = "../single/model.safetensors"));
    assert.throws(
      () => SafetensorsCheckpoint.open(escape),
      /maps to "..\/single\/model.safetensors", not a file name in the same directory/,
    );
  });

  it("reports a bad index, pickle-only weights and an empty directory", () => {
    const badIndex = shardedModel("bad-index");
    fs.writeFileSync(path.join(badIndex, "model.safetensors.index.json"), "{ nope");
    assert.throws(() => SafetensorsCheckpoint.open(badIndex), /model.safetensors.index.json: not valid JSON/);
    fs.writeFileSync(path.join(badIndex, "model.safetensors.index.json"), "{}");
    assert.throws(() => SafetensorsCheckpoint.open(badIndex), /no "weight_map" object/);

    const pickle = path.join(root, "pickle");
    fs.mkdirSync(pickle);
    fs.writeFileSync(path.join(pickle, "pytorch_model.bin"), "");
    assert.throws(() => SafetensorsCheckpoint.open(pickle), /only PyTorch pickle weights/);
    fs.rmSync(path.join(pickle, "pytorch_model.bin"));
    assert.throws(() => SafetensorsCheckpoint.open(pickle), /no model.safetensors or model.safetensors.index.json found/);
  });

  it("validates every shard's header on open", () => {
    const damaged = shardedModel("damaged");
    fs.truncateSync(path.join(damaged, "model-00002-of-00002.safetensors"), 20);
    assert.throws(
      () => SafetensorsCheckpoint.open(damaged),
      /model-00002-of-00002.safetensors: not a valid safetensors file: header length \d+ runs past the end/,
    );
  });
});
