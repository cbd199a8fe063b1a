// A non-finite loss stops training with one line naming the step (or is skipped and counted), and
// the stopped run frees its model and adapter at once.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { loadCausalLM } from "../../src/model/loader.js";
import { copyTokenizerFiles, saveCausalLM } from "../../src/model/save.js";
import { EMBEDDED_MODEL, EMBEDDED_TRAIN } from "../../src/paths.js";
import * as torch from "../../src/torch/index.js";
import { runCli, settledMemory, tempDir } from "../helpers.js";

const dir = tempDir("nan");

// The embedded model with one row of its output layer at 3e38: finite, so the loader takes it (a
// NaN in base weights is refused when the model is read), but the logits overflow and every loss
// is NaN from the first step.
const poisoned = path.join(dir, "model");
const model = loadCausalLM(EMBEDDED_MODEL);
torch.noGrad(() => model.lmHead.narrow(0, 7, 1).fill_(3e38));
fs.mkdirSync(poisoned);
saveCausalLM(model, poisoned);
copyTokenizerFiles(EMBEDDED_MODEL, poisoned);
const trainData = path.join(dir, "train.json");
fs.writeFileSync(trainData, JSON.stringify(JSON.parse(fs.readFileSync(EMBEDDED_TRAIN, "utf8")).slice(0, 8)));
const run = (...extra: string[]) =>
  runCli("train", "--base-model", poisoned, "--train-data", trainData, "--epochs", "1", "--quiet", ...extra);

test("a NaN loss stops the run at that step with one line, no adapter is written, and the model and adapter are freed", async () => {
  const out = path.join(dir, "stop");
  // Freed at once: an experiment records a diverged run and goes on to the next one in this process.
  const before = await settledMemory();
  const r = await run("--output-dir", out);
  assert.deepEqual(torch.memory(), before, "live tensors before and after the stopped run");
  assert.equal(r.code, 1);
  assert.match(
    r.stderr,
    /^svdlora: error: loss became NaN at step 1: lower --learning-rate \(now 0\.0002\) or set --skip-nonfinite; no checkpoint was saved yet$/,
  );
  assert.equal(fs.existsSync(path.join(out, "final_model_random")), false);
});

test("--skip-nonfinite skips and counts the bad steps", async () => {
  const out = path.join(dir, "skip");
  const r = await run("--output-dir", out, "--skip-nonfinite");
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /2 steps were skipped for a non-finite loss or gradient/);
  const summary = JSON.parse(fs.readFileSync(path.join(out, "train_summary_random.json"), "utf8"));
  assert.equal(summary.result.skippedSteps, 2);
  assert.match(fs.readFileSync(path.join(out, "training_log_random.csv"), "utf8"), /^1,0\.5,nan,/m);
});

test("train-full: a NaN loss stops the run and frees its model", async () => {
  const before = await settledMemory();
  const r = await runCli(
    "train-full",
    "--base-model",
    poisoned,
    "--train-data",
    trainData,
    "--epochs",
    "1",
    "--batch-size",
    "1",
    "--quiet",
    "--output-dir",
    path.join(dir, "full"),
  );
  assert.deepEqual(torch.memory(), before, "live tensors before and after the stopped run");
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^svdlora: error: loss became NaN at step 1: /);
});
