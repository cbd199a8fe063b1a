// Step 2b as a step: a teacher file or an adapter in, SVD-init factors as a PEFT adapter, the
// analysis JSON and the report out; with teacher synthesis, no tensor left behind.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { loadAdapter, loraScaling, saveAdapter } from "../../src/hf/peft.js";
import { saveSynthesizedDelta } from "../../src/hf/synthesized-delta.js";
import { spectrumMetrics } from "../../src/lowrank/metrics.js";
import { exactSvd, reconstruct, truncateSvd } from "../../src/lowrank/svd.js";
import { disposeDelta, synthesizeTeacher } from "../../src/lowrank/synthesis.js";
import { svdStep } from "../../src/pipeline/svd.js";
import { synthesizeStep } from "../../src/pipeline/synthesize.js";
import * as torch from "../../src/torch/index.js";
import type { Tensor } from "../../src/torch/index.js";
import { settledMemory } from "../helpers.js";
import { relativeDistance, tempDir, tinyAdapter, tinyLoras } from "../lowrank/helpers.js";

const root = tempDir("svd-step");
const bestRank = (M: Tensor, r: number) => torch.tidy(() => reconstruct(truncateSvd(exactSvd(M.to("float64")), r)));

test("svdStep on a teacher file writes a PEFT adapter with s·B·A = ΔW_r, and the analysis", async () => {
  const loras = tinyLoras();
  const teacher = synthesizeTeacher(loras, { targetRank: 8, seed: 1 });
  torch.dispose([...loras.values()]);
  const file = path.join(root, "synthesized_delta_rank8.safetensors");
  saveSynthesizedDelta(file, teacher);

  const outputDir = path.join(root, "svd_results");
  const out = await svdStep({
    synthesizedDelta: file,
    baseModel: "tiny",
    targetModules: [],
    rank: 3,
    alpha: 6,
    rslora: false,
    split: "balanced",
    outputDir,
  });
  assert.equal(out.factorsDir, path.join(outputDir, "svd_factors_rank3"));
  const { config, weights } = loadAdapter(out.factorsDir);
  assert.deepEqual(
    [config.r, config.lora_alpha, config.use_rslora, config.init_lora_weights, config.base_model_name_or_path, config.target_modules],
    [3, 6, false, true, "tiny", ["down_proj", "q_proj", "v_proj"]],
  );
  const analysis = JSON.parse(fs.readFileSync(out.analysisFile, "utf8"));
  assert.deepEqual([analysis.rank, analysis.alpha, analysis.scaling, analysis.split, analysis.summary.modules], [3, 6, 2, "balanced", 4]);
  for (const [p, d] of teacher.modules) {
    const { A, B } = weights.get(p)!;
    torch.tidy(() =>
      assert.ok(relativeDistance(B.matmul(A).mul(loraScaling(config, p)).to("float64"), bestRank(reconstruct(d), 3)) < 1e-5, p),
    );
    assert.ok(Math.abs(analysis.modules[p].relativeError - spectrumMetrics(d.S, 3).relativeError) < 1e-9, `${p}: relative error`);
  }
  assert.match(
    fs.readFileSync(out.reportFile, "utf8"),
    /s = 6\/3 = 2\.000; split "balanced" \(B = U_r √\(Σ_r\/s\), A = √\(Σ_r\/s\) V_rᵀ\)/,
  );
  assert.ok(fs.statSync(out.plotFile).size > 0);
  torch.dispose([...weights.values()]);
  disposeDelta(teacher);
});

test("svdStep on an adapter with rsLoRA: s = α/√r, and the adapter of full rank comes back exactly", async () => {
  const { config, weights } = tinyAdapter(4, 8);
  const adapter = path.join(root, "final_model_random");
  saveAdapter(adapter, config, weights);
  const out = await svdStep({
    loraAdapter: adapter,
    targetModules: [],
    rank: 4,
    alpha: 6,
    rslora: true,
    split: "seed",
    outputDir: path.join(root, "rs"),
  });
  const factors = loadAdapter(out.factorsDir);
  assert.equal(factors.config.use_rslora, true);
  assert.equal(JSON.parse(fs.readFileSync(out.analysisFile, "utf8")).scaling, 3, "6/√4");
  for (const [p, { A, B }] of weights) {
    const f = factors.weights.get(p)!;
    torch.tidy(() => assert.ok(relativeDistance(f.B.matmul(f.A).mul(3), B.matmul(A).mul(loraScaling(config, p))) < 1e-5, p));
  }
  torch.dispose([...weights.values(), ...factors.weights.values()]);
});

test("svdStep needs exactly one source of ΔW", async () => {
  const o = { targetModules: [], rank: 2, alpha: 2, rslora: false, split: "seed" as const, outputDir: path.join(root, "none") };
  await assert.rejects(svdStep(o), /give exactly one of --synthesized-delta FILE, --lora-adapter DIR or --finetuned-model DIR/);
  await assert.rejects(svdStep({ ...o, synthesizedDelta: "a", loraAdapter: "b" }), /give exactly one of/);
  await assert.rejects(
    svdStep({ ...o, synthesizedDelta: path.join(root, "absent.safetensors") }),
    /no such file \(run svdlora synthesize-teacher first\)/,
  );
});

test("teacher synthesis and the SVD analysis leave no tensor behind (a teacher, an adapter)", async () => {
  const { config, weights } = tinyAdapter();
  const adapter = path.join(root, "leaks_adapter");
  saveAdapter(adapter, config, weights);
  torch.dispose([...weights.values()]);
  const before = await settledMemory();
  const teacher = await synthesizeStep({
    loraAdapter: adapter,
    outputDir: path.join(root, "leaks_teacher"),
    targetRank: 8,
    noiseScale: 0.1,
    decay: 0.1,
    seed: 1,
  });
  const o = { targetModules: [], rank: 3, alpha: 6, rslora: false, split: "seed" as const };
  await svdStep({ ...o, synthesizedDelta: teacher.deltaFile, outputDir: path.join(root, "leaks_svd_teacher") });
  await svdStep({ ...o, loraAdapter: adapter, outputDir: path.join(root, "leaks_svd_adapter") });
  assert.deepEqual(torch.memory(), before);
});
