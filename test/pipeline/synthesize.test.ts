// Step 2a as a step: a PEFT adapter directory in, the teacher file, report, figure and timing out.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { loadAdapter, saveAdapter } from "../../src/hf/peft.js";
import { loadSynthesizedDelta } from "../../src/hf/synthesized-delta.js";
import { disposeDelta, synthesizeTeacher } from "../../src/lowrank/synthesis.js";
import { loraDeltas, synthesizeStep } from "../../src/pipeline/synthesize.js";
import * as torch from "../../src/torch/index.js";
import { tempDir, tinyAdapter } from "../lowrank/helpers.js";

const root = tempDir("synthesize");
const settings = { targetRank: 10, noiseScale: 0.2, decay: 0.05, seed: 3 };

test("synthesizeStep reads the adapter with each module's own scale and writes the teacher the maths gives", async () => {
  const { config, weights } = tinyAdapter();
  const adapter = path.join(root, "final_model_random");
  saveAdapter(adapter, { ...config, alpha_pattern: { down_proj: 16 } }, weights); // down_proj: s = 16/4
  torch.dispose([...weights.values()]);

  const out = await synthesizeStep({ loraAdapter: adapter, outputDir: path.join(root, "synthesized_teacher"), ...settings });
  assert.equal(out.deltaFile, path.join(root, "synthesized_teacher", "synthesized_delta_rank10.safetensors"));
  assert.equal(out.modules, 4);
  for (const file of [out.reportFile, out.plotFile, path.join(root, "synthesized_teacher", "synthesis_timing.json")])
    assert.ok(fs.statSync(file).size > 0, file);
  assert.match(fs.readFileSync(out.reportFile, "utf8"), new RegExp(`source adapter: ${adapter} {2}\\(LoRA r = 4, alpha = 8\\)`));

  const written = loadSynthesizedDelta(out.deltaFile);
  assert.deepEqual([written.settings.sourceAdapter, written.settings.loraRank, written.settings.loraAlpha], [adapter, 4, 8]);
  assert.equal((written.info.get("model.layers.0.mlp.down_proj") as { loraScaling?: number }).loraScaling, 4);
  assert.equal((written.info.get("model.layers.0.self_attn.q_proj") as { loraScaling?: number }).loraScaling, 2);
  const loaded = loadAdapter(adapter);
  const expected = synthesizeTeacher(loraDeltas(loaded.config, loaded.weights), settings);
  for (const [p, d] of expected.modules) assert.deepEqual(written.modules.get(p)!.Vh.bytes(), d.Vh.bytes(), p);
  disposeDelta(expected);
  disposeDelta(written);
  torch.dispose([...loaded.weights.values()]);
});

test("synthesizeStep without the baseline's adapter says to train it", async () => {
  const missing = path.join(root, "nowhere");
  await assert.rejects(
    synthesizeStep({ loraAdapter: missing, outputDir: path.join(root, "t2"), ...settings }),
    new RegExp(`^Error: --lora-adapter ${missing}: no such directory \\(train the baseline first: svdlora train --init random\\)$`),
  );
});
