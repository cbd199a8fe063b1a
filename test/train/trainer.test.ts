// End to end on the embedded tiny model: LoRA training lowers the held-out loss, writes a PEFT
// adapter and a complete CSV log; an svd-init run starts from given factors.
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { loadDataset } from "../../src/data/dataset.js";
import { loadAdapter } from "../../src/hf/peft.js";
import { EMBEDDED_EVAL, EMBEDDED_MODEL, EMBEDDED_TRAIN } from "../../src/paths.js";
import { readTrainingLog } from "../../src/train/log.js";
import { TRAIN_DEFAULTS, train } from "../../src/train/trainer.js";
import { dataSubset } from "../helpers.js";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "svdlora-train-"));
const subset = (from: string, n: number, name: string) => dataSubset(from, n, dir, name);
const trainData = subset(EMBEDDED_TRAIN, 16, "train.json");
const evalData = subset(EMBEDDED_EVAL, 16, "eval.json");
const base = {
  ...TRAIN_DEFAULTS,
  baseModel: EMBEDDED_MODEL,
  trainData,
  evalData,
  outputDir: dir,
  epochs: 2,
  batchSize: 4,
  learningRate: 1e-3,
  quiet: true,
};

test("LoRA training lowers the held-out loss and saves a PEFT adapter and a CSV log", async () => {
  const r = await train({ ...base, init: "random" });
  assert.equal(r.steps, 8);
  assert.equal(r.samples, 16);
  assert.equal(r.evalLosses.length, 3);
  const [first, , last] = r.evalLosses.map((e) => e.loss);
  assert.ok(last < first, `eval loss ${first} → ${last}`);

  const { config, weights } = loadAdapter(r.adapterDir);
  assert.equal(config.r, 16);
  assert.deepEqual([...config.target_modules].sort(), ["q_proj", "v_proj"]);
  assert.equal(weights.size, 4 * 2);
  const q0 = weights.get("model.layers.0.self_attn.q_proj")!;
  assert.deepEqual(q0.A.shape, [16, 256]);
  assert.deepEqual(q0.B.shape, [256, 16]);
  assert.ok(q0.B.abs().max().item() > 0, "B moved away from zero");

  const log = readTrainingLog(r.logPath);
  assert.deepEqual(
    log.train.map((row) => row.step),
    [1, 2, 3, 4, 5, 6, 7, 8],
  );
  assert.deepEqual(
    log.eval.map((row) => row.step),
    [0, 4, 8],
  );
  assert.equal(log.train[7].tokens, r.tokens);
  assert.ok(log.train.every((row) => row.lr > 0 && row.gradNorm! > 0));
  const summary = JSON.parse(fs.readFileSync(path.join(dir, "train_summary_random.json"), "utf8"));
  assert.equal(summary.result.finalLoss, r.finalLoss);
  assert.ok(Math.abs(log.train[7].loss - r.finalLoss) < 1e-6);
  assert.equal(loadDataset(trainData).length, 16);
});

test("svd init starts from the given factors: its first loss is the trained adapter's, not the base model's", async () => {
  const random = JSON.parse(fs.readFileSync(path.join(dir, "train_summary_random.json"), "utf8")).result;
  const r = await train({
    ...base,
    init: "svd",
    svdFactors: path.join(dir, "final_model_random"),
    epochs: 1,
    outputDir: path.join(dir, "svd"),
  });
  assert.equal(r.init, "svd");
  assert.ok(
    r.evalLosses[0].loss < random.evalLosses[0].loss - 1e-3,
    `svd-init eval start ${r.evalLosses[0].loss} vs base ${random.evalLosses[0].loss}`,
  );
  assert.ok(Math.abs(r.evalLosses[0].loss - random.evalLosses[2].loss) < 1e-4, "starts where the factors' run ended");
  await assert.rejects(train({ ...base, init: "svd", outputDir: path.join(dir, "x") }), /--init svd needs --svd-factors/);
  await assert.rejects(
    train({ ...base, init: "svd", svdFactors: path.join(dir, "final_model_random"), lora: { ...base.lora, rank: 8 } }),
    /has rank 16 but --lora-rank is 8/,
  );
});

test("a PiSSA run is saved as a plain LoRA of rank 2r that reproduces the trained model on the original base", async () => {
  const { loadCausalLM } = await import("../../src/model/loader.js");
  const { loadLora } = await import("../../src/model/lora.js");
  const torch = await import("../../src/torch/index.js");
  const out = path.join(dir, "pissa");
  const r = await train({ ...base, init: "pissa", epochs: 1, outputDir: out, lora: { ...base.lora, rank: 4, alpha: 8 } });
  const { config, weights } = loadAdapter(r.adapterDir);
  assert.equal(config.r, 8);
  assert.equal(config.lora_alpha, 16);
  // The saved adapter on the original base gives the held-out loss the run ended with.
  const model = loadCausalLM(EMBEDDED_MODEL);
  loadLora(model, config, weights, false);
  const { formatSamples } = await import("../../src/data/format.js");
  const { loadTokenizer } = await import("../../src/hf/tokenizer.js");
  const { evaluateLoss } = await import("../../src/train/evaluate.js");
  const tok = await loadTokenizer(EMBEDDED_MODEL);
  const { encoded } = formatSamples(loadDataset(evalData), tok, {
    systemPrompt: base.systemPrompt ?? undefined,
    maxLength: base.maxLength,
  });
  const loss = evaluateLoss(model, new Map(), encoded, { batchSize: 4, padId: tok.pad!.id, device: "cpu" });
  const ended = r.evalLosses[r.evalLosses.length - 1].loss;
  assert.ok(Math.abs(loss - ended) < 1e-4, `reloaded ${loss} vs end of run ${ended}`);
  assert.ok(Math.abs(ended - r.evalLosses[0].loss) > 1e-3, "training changed the model");
  torch.dispose([...weights.values()]);
});

test("gradient accumulation: one optimizer step per accumulated group, the last one shorter", async () => {
  const r = await train({
    ...base,
    init: "random",
    epochs: 1,
    batchSize: 2,
    gradientAccumulationSteps: 3,
    outputDir: path.join(dir, "accum"),
  });
  // 16 samples → 8 micro-batches of 2 → steps of 3, 3 and 2 micro-batches.
  assert.equal(r.steps, 3);
  const log = readTrainingLog(r.logPath);
  assert.deepEqual(
    log.train.map((row) => row.tokens > 0),
    [true, true, true],
  );
  assert.equal(log.train[2].tokens, r.tokens);
});
