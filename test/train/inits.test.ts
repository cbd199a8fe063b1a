// The LoRA inits end to end (8 samples, one epoch, rank 4) on the small model of
// test/small-model.ts, EVA on the embedded tiny model: each run's saved adapter, loaded on the
// original base model, gives the held-out loss the run ended with — converted to a rank-2r LoRA
// where the init rewrote the base weights, with EVA's ranks in rank_pattern / alpha_pattern, with
// DoRA's magnitudes — and the cost of the init is recorded.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { before, test } from "node:test";
import { loadDataset } from "../../src/data/dataset.js";
import { formatSamples } from "../../src/data/format.js";
import { loadAdapter } from "../../src/hf/peft.js";
import { type HfTokenizer, loadTokenizer } from "../../src/hf/tokenizer.js";
import { loadCausalLM } from "../../src/model/loader.js";
import { loadLora } from "../../src/model/lora.js";
import { EMBEDDED_EVAL, EMBEDDED_MODEL, EMBEDDED_TRAIN } from "../../src/paths.js";
import * as torch from "../../src/torch/index.js";
import { evaluateLoss } from "../../src/train/evaluate.js";
import type { LoraTrainingSettings } from "../../src/train/settings.js";
import { RUN_FILES, type TrainResult, trainLora } from "../../src/train/trainer.js";
import { dataSubset, tempDir } from "../helpers.js";
import { smallModel } from "../small-model.js";

const dir = tempDir("inits");
const model = smallModel(dir);
// The sizes the shapes below follow from: width, layers, and the width of v_proj's output (key/value heads × head size).
const shape = JSON.parse(fs.readFileSync(path.join(model, "config.json"), "utf8"));
const [width, layers] = [shape.hidden_size, shape.num_hidden_layers];
const kvWidth = (width / shape.num_attention_heads) * shape.num_key_value_heads;
const trainData = dataSubset(EMBEDDED_TRAIN, 8, dir, "train.json");
const evalData = dataSubset(EMBEDDED_EVAL, 4, dir, "eval.json");
// Samples cut at 128 tokens (every prompt fits): what is tested here does not need whole samples.
// EVA trains the embedded model on whole samples: the random model's layers see inputs alike, so
// EVA would move no rank; and its calibration, which runs until its components settle, needs more
// batches of shorter samples.
const eva: Partial<LoraTrainingSettings> = { init: "eva", baseModel: EMBEDDED_MODEL, maxLength: 1024 };
const base: Partial<LoraTrainingSettings> = {
  baseModel: model,
  trainData,
  evalData,
  epochs: 1,
  batchSize: 4,
  learningRate: 2e-3,
  loraRank: 4,
  loraAlpha: 8,
  calibrationBatches: 2,
  maxLength: 128,
  quiet: true,
};

let tokenizer: HfTokenizer;
before(async () => {
  tokenizer = await loadTokenizer(model);
});

/** Trains one run into its own folder; returns the result, the saved adapter and summary.json. */
async function run(name: string, more: Partial<LoraTrainingSettings>) {
  const out = path.join(dir, name);
  const settings = { ...base, ...more };
  const result = await trainLora(settings, { dir: out, checkpointDir: path.join(out, "checkpoint") });
  const adapterDir = path.join(out, RUN_FILES.adapter);
  const summary = JSON.parse(fs.readFileSync(path.join(out, RUN_FILES.summary), "utf8"));
  return { result, adapterDir, summary, settings };
}

/** The held-out loss of the saved adapter on the run's original base model, samples cut at its maxLength. */
function reloadedLoss(adapterDir: string, { baseModel, maxLength }: Partial<LoraTrainingSettings>): number {
  const heldOut = formatSamples(loadDataset(evalData), tokenizer, {
    systemPrompt: "Please reason step by step, and put your final answer within \\boxed{}.",
    maxLength,
  }).encoded;
  const { config, weights } = loadAdapter(adapterDir);
  const lm = loadCausalLM(baseModel!);
  loadLora(lm, config, weights, false);
  const loss = evaluateLoss(lm, heldOut, { batchSize: 4, padId: tokenizer.pad!.id, device: "cpu" });
  torch.dispose([...weights.values()].flatMap((f) => [f.A, f.B, f.magnitude]));
  torch.dispose([...lm.namedWeights().values()]);
  return loss;
}

const endLoss = (r: TrainResult) => r.evalLosses.at(-1)!.loss;

function assertReproduces(what: string, { result: r, adapterDir, settings }: Awaited<ReturnType<typeof run>>): void {
  const loss = reloadedLoss(adapterDir, settings);
  assert.ok(Math.abs(loss - endLoss(r)) < 1e-4, `${what}: reloaded ${loss} vs end of run ${endLoss(r)}`);
  assert.ok(Math.abs(endLoss(r) - r.evalLosses[0].loss) > 1e-3, `${what}: training changed the model`);
}

for (const [init, dataDependent] of [
  ["olora", false],
  ["corda-kpm", true],
  ["lora-ga", true],
] as const)
  test(`${init} rewrites the base weights: saved as a rank-2r LoRA for the original base that reproduces the trained model`, async () => {
    const trained = await run(init, { init });
    const { result, adapterDir, summary } = trained;
    const { config } = loadAdapter(adapterDir);
    assert.equal(config.r, 8);
    assert.equal(config.lora_alpha, 16);
    assert.deepEqual(result.saved?.form, "converted");
    assert.ok(result.saved!.conversionError! < 1e-6, `float32 residual: ${result.saved!.conversionError}`);
    assertReproduces(init, trained);
    const p = result.preparation!;
    if (dataDependent) {
      assert.equal(p.batches, 2);
      assert.ok(p.tokens > 0 && p.seconds > 0);
    } else assert.equal(p.tokens, 0);
    assert.deepEqual(summary.result.preparation, p, "summary.json records the preparation");
  });

test("DoRA with pissa-niter-2: magnitudes trained and saved as PEFT's lora_magnitude_vector, on the converted adapter", async () => {
  const dora = await run("dora", { init: "pissa-niter-2", dora: true });
  const { result, adapterDir } = dora;
  const { config, weights } = loadAdapter(adapterDir);
  assert.equal(config.use_dora, true);
  const q = weights.get("model.layers.0.self_attn.q_proj")!;
  assert.deepEqual(q.magnitude!.shape, [width]);
  assert.deepEqual(q.A.shape, [8, width]);
  assertReproduces("dora", dora);
  // A and B of q_proj and v_proj in every layer, and a magnitude of out features each: q width, v kvWidth.
  assert.equal(result.trainableParameters, layers * (4 * (width + width) + 4 * (width + kvWidth) + width + kvWidth));
});

test("eva: each module's rank and α as EVA redistributed them, in rank_pattern / alpha_pattern", async () => {
  const trained = await run("eva", eva);
  const { result, adapterDir } = trained;
  const { config, weights } = loadAdapter(adapterDir);
  assert.equal(config.r, 4);
  assert.ok(Object.keys(config.rank_pattern).length > 0, "some module's rank moved");
  for (const [module, rank] of Object.entries(config.rank_pattern)) {
    assert.equal(weights.get(module)?.A.shape[0] ?? 0, rank, module);
    assert.equal(config.alpha_pattern[module], (8 * rank) / 4, `${module}: α · rank / r`);
  }
  for (const module of (config.exclude_modules as string[] | null) ?? []) assert.ok(!weights.has(module), `${module}: rank 0`);
  assertReproduces("eva", trained);
  assert.ok(result.preparation!.batches >= 3);
  assert.equal(result.saved?.form, "as trained");
});

test("lora-one starts away from the base model; mica trains A only; both are saved as trained", async () => {
  const plain = await run("random", { init: "random" });
  const one = await run("lora-one", { init: "lora-one" });
  assert.ok(Math.abs(one.result.evalLosses[0].loss - plain.result.evalLosses[0].loss) > 1e-4, "a gradient step at init");
  assert.equal(one.result.saved?.form, "as trained");
  assertReproduces("lora-one", one);
  const mica = await run("mica", { init: "mica" });
  assert.equal(mica.result.trainableParameters, layers * 2 * 4 * width, "A of each q_proj and v_proj, each 4 × width");
  assertReproduces("mica", mica);
  assert.deepEqual(plain.result.preparation?.tokens, 0);
});

test("loftq: converted, and the summary says by how much the saved adapter differs from the trained model", async () => {
  const { result, summary } = await run("loftq", { init: "loftq" });
  assert.equal(result.saved?.form, "converted");
  assert.ok(result.saved!.conversionError! > 1e-3, `NF4 error ${result.saved!.conversionError}`);
  assert.match(summary.result.saved.note, /LoftQ's base is the NF4-dequantized weight/);
});
