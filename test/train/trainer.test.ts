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

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "svdlora-train-"));
const subset = (from: string, n: number, name: string) => {
  const items = JSON.parse(fs.readFileSync(from, "utf8")).slice(0, n);
  const file = path.join(dir, name);
  fs.writeFileSync(file, JSON.stringify(items));
  return file;
};
const trainData = subset(EMBEDDED_TRAIN, 16, "train.json");
const evalData = subset(EMBEDDED_EVAL, 16, "eval.json");
const base = { ...TRAIN_DEFAULTS, baseModel: EMBEDDED_MODEL, trainData, evalData, outputDir: dir, epochs: 2, batchSize: 4, learningRate: 1e-3, quiet: true };

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
  assert.deepEqual(log.train.map((row) => row.step), [1, 2, 3, 4, 5, 6, 7, 8]);
  assert.deepEqual(log.eval.map((row) => row.step), [0, 4, 8]);
  assert.equal(log.train[7].tokens, r.tokens);
  assert.ok(log.train.every((row) => row.lr > 0 && row.gradNorm! > 0));
  const summary = JSON.parse(fs.readFileSync(path.join(dir, "train_summary_random.json"), "utf8"));
  assert.equal(summary.result.finalLoss, r.finalLoss);
  assert.ok(Math.abs(log.train[7].loss - r.finalLoss) < 1e-6);
  assert.equal(loadDataset(trainData).length, 16);
});

test("svd init starts from the given factors: its first loss is the trained adapter's, not the base model's", async () => {
  const random = JSON.parse(fs.readFileSync(path.join(dir, "train_summary_random.json"), "utf8")).result;
  const r = await train({ ...base, init: "svd", svdFactors: path.join(dir, "final_model_random"), epochs: 1, outputDir: path.join(dir, "svd") });
  assert.equal(r.init, "svd");
  assert.ok(r.evalLosses[0].loss < random.evalLosses[0].loss - 1e-3, `svd-init eval start ${r.evalLosses[0].loss} vs base ${random.evalLosses[0].loss}`);
  assert.ok(Math.abs(r.evalLosses[0].loss - random.evalLosses[2].loss) < 1e-4, "starts where the factors' run ended");
  await assert.rejects(train({ ...base, init: "svd", outputDir: path.join(dir, "x") }), /--init svd needs --svd-factors/);
  await assert.rejects(train({ ...base, init: "svd", svdFactors: path.join(dir, "final_model_random"), lora: { ...base.lora, rank: 8 } }), /has rank 16 but --lora-rank is 8/);
});
