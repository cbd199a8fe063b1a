// loadCausalLM reads each weight straight onto the target device and converts its dtype there; a
// model it refuses leaves no weight behind.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { test } from "node:test";
import { SafetensorsCheckpoint } from "../../src/hf/checkpoint.js";
import { loadCausalLM } from "../../src/model/loader.js";
import * as torch from "../../src/torch/index.js";
import { device, settledMemory } from "../helpers.js";
import { tempDir } from "../hf/fixtures.js";

const golden = (p: string) => new URL(`../../../test/fixtures/golden/${p}`, import.meta.url).pathname;

test("weights load onto the device in the asked dtype, equal to the checkpoint's converted", () => {
  const dir = golden("qwen2-tiny");
  const ckpt = SafetensorsCheckpoint.open(dir);
  for (const dtype of ["bfloat16", "float32"] as const) {
    const model = loadCausalLM(dir, { dtype, device });
    for (const [name, w] of model.namedWeights()) {
      assert.equal(w.dtype, dtype, name);
      assert.match(w.device, new RegExp(`^${device}`), name);
      const expected = torch.tidy(() => ckpt.read(name).to(dtype).float());
      assert.equal(
        torch.tidy(() => w.cpu().float().sub(expected).abs().max().item()),
        0,
        `${name} (${dtype})`,
      );
      expected.dispose();
    }
    torch.dispose([...model.namedWeights().values()]);
  }
  ckpt.close();
});

test("a weight whose shape disagrees with config.json is named before any byte is read", () => {
  const dir = path.join(tempDir(), "wrong-shape");
  fs.cpSync(golden("qwen2-tiny"), dir, { recursive: true });
  const config = JSON.parse(fs.readFileSync(path.join(dir, "config.json"), "utf8"));
  fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify({ ...config, vocab_size: config.vocab_size + 1 }));
  assert.throws(() => loadCausalLM(dir), /weight model\.embed_tokens\.weight has shape \[\d+,\d+\], config\.json implies \[\d+,\d+\]/);
});

test("a model refused part-way frees the weights read before the one refused", async () => {
  const dir = path.join(tempDir(), "wrong-mlp");
  fs.cpSync(golden("qwen2-tiny"), dir, { recursive: true });
  const config = JSON.parse(fs.readFileSync(path.join(dir, "config.json"), "utf8"));
  fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify({ ...config, intermediate_size: config.intermediate_size + 1 }));
  const before = await settledMemory();
  // The embeddings, the first norm and the attention of layer 0 come before its MLP.
  assert.throws(() => loadCausalLM(dir), /weight model\.layers\.0\.mlp\.gate_proj\.weight has shape/);
  assert.deepEqual(torch.memory(), before);
});
