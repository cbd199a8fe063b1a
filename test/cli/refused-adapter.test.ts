// eval and merge refuse an adapter that does not fit the base model in one line, and free the base
// model they had loaded before the refusal (not left to the garbage collector).
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { saveAdapter } from "../../src/hf/peft.js";
import { EMBEDDED_EVAL, EMBEDDED_MODEL } from "../../src/paths.js";
import * as torch from "../../src/torch/index.js";
import { dataSubset, runCli, settledMemory, tempDir } from "../helpers.js";
import { tinyAdapter } from "../lowrank/helpers.js";

const dir = tempDir("refused-adapter");

test("eval and merge free the base model when the adapter does not fit it", async () => {
  const { config, weights } = tinyAdapter(4, 8); // a made-up model's shapes (q_proj 16 → 24, down_proj 40 → 16)
  const adapter = path.join(dir, "other-model-adapter");
  saveAdapter(adapter, config, weights);
  torch.dispose([...weights.values()]);
  const data = dataSubset(EMBEDDED_EVAL, 4, dir, "eval.json");
  const merged = path.join(dir, "merged");
  for (const args of [
    ["eval", "--base-model", EMBEDDED_MODEL, "--adapter", adapter, "--data", data, "--no-generate", "--quiet"],
    ["merge", "--base-model", EMBEDDED_MODEL, "--adapter", adapter, "--output-dir", merged],
  ]) {
    const before = await settledMemory();
    const r = await runCli(...args);
    assert.equal(r.code, 1, `${args[0]}: ${r.stderr}`);
    assert.match(
      r.stderr,
      /^svdlora: error: adapter model\.layers\.0\.\S+: lora_A \[[0-9,]+\] \/ lora_B \[[0-9,]+\] do not fit the base layer/,
    );
    assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
    const after = torch.memory(); // before any garbage collection: what the command left alive
    assert.deepEqual(after, before, `${args[0]} left tensors behind`);
  }
  assert.equal(fs.existsSync(merged), false);
});
