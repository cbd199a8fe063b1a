// End to end on the small model of test/small-model.ts: LoRA training lowers the held-out loss,
// writes a PEFT adapter, a complete CSV log and a summary; an svd-init run starts from given
// factors; PiSSA is saved as a plain LoRA; accumulation counts steps right. Each test stands alone:
// the reference run they read is made once, before them.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { before, test } from "node:test";
import { loadDataset } from "../../src/data/dataset.js";
import { formatSamples } from "../../src/data/format.js";
import { loadAdapter } from "../../src/hf/peft.js";
import { loadTokenizer } from "../../src/hf/tokenizer.js";
import { loadCausalLM } from "../../src/model/loader.js";
import { detachLora, loadLora } from "../../src/model/lora.js";
import { EMBEDDED_EVAL, EMBEDDED_TRAIN } from "../../src/paths.js";
import { type TrainRunResult, trainRun } from "../../src/pipeline/train.js";
import * as torch from "../../src/torch/index.js";
import { evaluateAccuracy, evaluateLoss } from "../../src/train/evaluate.js";
import { readTrainingLog } from "../../src/train/log.js";
import type { LoraTrainingSettings } from "../../src/train/settings.js";
import { validationSplit } from "../../src/train/trainer.js";
import { dataSubset, settledMemory, tempDir } from "../helpers.js";
import { smallModel } from "../small-model.js";

const dir = tempDir("train");
const model = smallModel(dir);
const shape = JSON.parse(fs.readFileSync(path.join(model, "config.json"), "utf8"));
const trainData = dataSubset(EMBEDDED_TRAIN, 8, dir, "train.json");
const evalData = dataSubset(EMBEDDED_EVAL, 8, dir, "eval.json");
// Samples cut at 128 tokens (every prompt fits): what is tested here does not need whole samples.
const maxLength = 128;
const base: Partial<LoraTrainingSettings> = {
  baseModel: model,
  trainData,
  evalData,
  maxLength,
  epochs: 2,
  batchSize: 4,
  learningRate: 1e-3,
  quiet: true,
};
const out = (name: string) => path.join(dir, name);

let reference: TrainRunResult;
before(async () => {
  reference = await trainRun({ ...base, init: "random", outputDir: out("reference") });
});

test("LoRA training lowers the held-out loss and saves a PEFT adapter, a CSV log and a summary", () => {
  const r = reference;
  assert.equal(r.steps, 4);
  assert.equal(r.samples, 8);
  assert.equal(r.evalLosses.length, 3);
  const [first, , last] = r.evalLosses.map((e) => e.loss);
  assert.ok(last < first, `held-out loss ${first} → ${last}`);

  const { config, weights } = loadAdapter(r.adapterDir);
  assert.equal(config.r, 16);
  assert.deepEqual([...config.target_modules].sort(), ["q_proj", "v_proj"]);
  assert.equal(weights.size, shape.num_hidden_layers * 2);
  const q0 = weights.get("model.layers.0.self_attn.q_proj")!;
  assert.deepEqual(q0.A.shape, [16, shape.hidden_size]);
  assert.deepEqual(q0.B.shape, [shape.hidden_size, 16]);
  assert.ok(q0.B.abs().max().item() > 0, "B moved away from zero");
  torch.dispose([...weights.values()].flatMap((f) => [f.A, f.B]));

  const log = readTrainingLog(r.logPath);
  assert.deepEqual(
    log.train.map((row) => row.step),
    [1, 2, 3, 4],
  );
  assert.deepEqual(
    log.eval.map((row) => row.step),
    [0, 2, 4],
  );
  assert.equal(log.train[3].tokens, r.tokens);
  assert.ok(log.train.every((row) => row.lr > 0 && row.gradNorm! > 0));
  const summary = JSON.parse(fs.readFileSync(r.summaryPath, "utf8"));
  assert.equal(summary.made_by, "svdlora");
  assert.equal(summary.result.finalLoss, r.finalLoss);
  assert.equal(summary.settings.learningRate, 1e-3);
  assert.equal(summary.identity.training.epochs, 2);
  assert.equal(summary.inputs.trainData.sha256.length, 64);
  // The final loss is the last epoch's mean over its predicted tokens, not the last step's.
  const lastEpoch = log.train.slice(2).map((row) => row.loss);
  assert.ok(r.finalLoss > Math.min(...lastEpoch) && r.finalLoss < Math.max(...lastEpoch));
  assert.equal(loadDataset(trainData).length, 8);
  // Nothing is left beside the outputs: no staging folder, no lock.
  assert.deepEqual(
    fs.readdirSync(out("reference")).filter((f) => f.startsWith(".")),
    [],
  );
});

test("svd init starts from the given factors: its first held-out loss is the factors' run's last", async () => {
  const r = await trainRun({ ...base, init: "svd", svdFactors: reference.adapterDir, epochs: 1, outputDir: out("svd") });
  assert.equal(r.init, "svd");
  assert.ok(
    r.evalLosses[0].loss < reference.evalLosses[0].loss - 1e-3,
    `svd-init start ${r.evalLosses[0].loss} vs base ${reference.evalLosses[0].loss}`,
  );
  assert.ok(Math.abs(r.evalLosses[0].loss - reference.evalLosses[2].loss) < 1e-4, "starts where the factors' run ended");
  await assert.rejects(trainRun({ ...base, init: "svd", outputDir: out("x") }), /`init` svd needs `svdFactors`/);
  await assert.rejects(
    trainRun({ ...base, init: "svd", svdFactors: reference.adapterDir, loraRank: 8, outputDir: out("x") }),
    /has rank 16 but `loraRank` is 8/,
  );
  await assert.rejects(
    trainRun({ ...base, init: "svd", svdFactors: reference.adapterDir, loraAlpha: 32, outputDir: out("x") }),
    /were made for α = 16 but the run has `loraAlpha` 32/,
  );
});

test("a PiSSA run is saved as a plain LoRA of rank 2r that reproduces the trained model on the original base", async () => {
  const r = await trainRun({ ...base, init: "pissa", epochs: 1, loraRank: 4, loraAlpha: 8, outputDir: out("pissa") });
  const { config, weights } = loadAdapter(r.adapterDir);
  assert.equal(config.r, 8);
  assert.equal(config.lora_alpha, 16);
  // The saved adapter on the original base gives the held-out loss the run ended with.
  const lm = loadCausalLM(model);
  loadLora(lm, config, weights, false);
  const tok = await loadTokenizer(model);
  const { encoded } = formatSamples(loadDataset(evalData), tok, {
    systemPrompt: "Please reason step by step, and put your final answer within \\boxed{}.",
    maxLength,
  });
  const loss = evaluateLoss(lm, encoded, { batchSize: 4, padId: tok.pad!.id, device: "cpu" });
  const ended = r.evalLosses[r.evalLosses.length - 1].loss;
  assert.ok(Math.abs(loss - ended) < 1e-4, `reloaded ${loss} vs end of run ${ended}`);
  assert.ok(Math.abs(ended - r.evalLosses[0].loss) > 1e-3, "training changed the model");
  // The held-out loss is token-weighted: evalBatchSize and packing change it only by float rounding.
  for (const [batchSize, packing] of [
    [64, false],
    [64, true],
    [7, true],
  ] as const) {
    const other = evaluateLoss(lm, encoded, { batchSize, padId: tok.pad!.id, device: "cpu", packing });
    assert.ok(Math.abs(other - loss) < 1e-5, `batch ${batchSize}, packing ${packing}: ${other} vs ${loss}`);
  }
  torch.dispose([...weights.values()].flatMap((f) => [f.A, f.B]));
  torch.dispose([...lm.namedWeights().values()]);
});

test("a run leaves no tensor behind: the same live tensors after every step, and none once it is done", async () => {
  // svd init (the factors copied from an adapter), held-out losses and answers: every part of a run.
  const before = await settledMemory();
  const steps: torch.LiveTensors[] = [];
  const r = await trainRun(
    {
      ...base,
      init: "svd",
      svdFactors: reference.adapterDir,
      accuracyData: evalData,
      accuracySamples: 2,
      maxNewTokens: 4,
      outputDir: out("leaks"),
    },
    { events: { step: () => steps.push(torch.memory()) } },
  );
  assert.equal(r.accuracy?.total, 2);
  assert.equal(steps.length, 4);
  assert.deepEqual(steps, [steps[0], steps[0], steps[0], steps[0]], "live tensors at each step");
  assert.deepEqual(torch.memory(), before, "live tensors before and after the run");
});

test("held-out losses (padded or packed) and answers leave no tensor behind, nor the adapter once taken off", async () => {
  const tok = await loadTokenizer(model);
  const { encoded } = formatSamples(loadDataset(evalData), tok, { maxLength });
  const before = await settledMemory();
  const lm = loadCausalLM(model);
  const { config, weights } = loadAdapter(reference.adapterDir);
  loadLora(lm, config, weights, false);
  torch.dispose([...weights.values()]);
  for (const packing of [false, true]) evaluateLoss(lm, encoded, { batchSize: 4, padId: tok.pad!.id, device: "cpu", packing });
  assert.equal(evaluateAccuracy(lm, tok, loadDataset(evalData).slice(0, 2), { maxLength, maxNewTokens: 4 }).total, 2);
  detachLora(lm);
  torch.dispose([...lm.namedWeights().values()]);
  assert.deepEqual(torch.memory(), before);
});

test("gradient accumulation: one optimizer step per accumulated group, the last one shorter", async () => {
  const r = await trainRun({
    ...base,
    evalData: undefined,
    init: "random",
    epochs: 1,
    batchSize: 2,
    gradientAccumulationSteps: 3,
    outputDir: out("accum"),
  });
  // 8 samples → 4 micro-batches of 2 → steps of 3 and 1 micro-batches.
  assert.equal(r.steps, 2);
  const log = readTrainingLog(r.logPath);
  const perStep = log.train.map((row, i) => row.tokens - (log.train[i - 1]?.tokens ?? 0));
  assert.ok(perStep[0] > perStep[1] && perStep[1] > 0, `tokens per step ${perStep}: three micro-batches, then one`);
  assert.equal(log.train[1].tokens, r.tokens);
});

test("a batch that does not divide the data: the remainder joins the last batch", async () => {
  const odd = dataSubset(EMBEDDED_TRAIN, 5, dir, "odd.json");
  const r = await trainRun({ ...base, trainData: odd, evalData: undefined, epochs: 1, batchSize: 2, outputDir: out("odd") });
  // 5 samples in batches of 2: two steps, of 2 and 3 samples (no step on a single leftover sample).
  assert.equal(r.steps, 2);
});

test("an unfinished run's checkpoint is resumed or replaced only when asked", async () => {
  const unfinished = out("unfinished");
  const stop = new AbortController();
  const interrupted = { ...base, evalData: undefined, epochs: 1, outputDir: unfinished };
  await assert.rejects(trainRun(interrupted, { signal: stop.signal, events: { step: () => stop.abort() } }), /stopped at step 1/);
  await assert.rejects(
    trainRun(interrupted),
    /^Error: an unfinished run named random left a checkpoint in .*checkpoints\/random: continue it with `resume`, or start afresh with `overwrite`$/,
  );
  const r = await trainRun({ ...interrupted, resume: true });
  assert.equal(r.resumedFrom, 1);
  assert.ok(!fs.existsSync(path.join(unfinished, "checkpoints")), "the finished run keeps no checkpoint");
});

test("an earlier run is replaced only with overwrite, and a file no run owns never", async () => {
  await assert.rejects(
    trainRun({ ...base, epochs: 1, outputDir: out("reference") }),
    /a run named random is already in .*reference: replace it with `overwrite`/,
  );
  const stray = out("stray");
  fs.mkdirSync(stray);
  fs.writeFileSync(path.join(stray, "training_log_random.csv"), "mine\n");
  await assert.rejects(trainRun({ ...base, epochs: 1, outputDir: stray }), /training_log_random\.csv exists but no svdlora run owns it/);
  assert.equal(fs.readFileSync(path.join(stray, "training_log_random.csv"), "utf8"), "mine\n");
});

test("the validation set is drawn from the whole held-out set with a fixed seed, not taken from its start", () => {
  const heldOut = Array.from({ length: 240 }, (_, i) => i);
  const { validation, test: rest } = validationSplit(heldOut, 0.5);
  assert.equal(validation.length, 120);
  assert.deepEqual(
    [...validation, ...rest].sort((a, b) => a - b),
    heldOut,
    "the two parts cover the held-out set once",
  );
  assert.deepEqual(
    validation,
    [...validation].sort((a, b) => a - b),
    "each part keeps the file's order",
  );
  // Drawn from both halves of the file, about evenly.
  const early = validation.filter((i) => i < 120).length;
  assert.ok(early > 40 && early < 80, `${early} of 120 from the first half`);
  assert.deepEqual(validationSplit(heldOut, 0.5), { validation, test: rest }, "the same split every time");
  assert.deepEqual(validationSplit(heldOut, 0), { validation: [], test: heldOut });
});
