// A non-finite loss stops training with one line naming the step (or is skipped and counted).
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { loadCausalLM } from "../../src/model/loader.js";
import { copyTokenizerFiles, saveCausalLM } from "../../src/model/save.js";
import { EMBEDDED_MODEL, EMBEDDED_TRAIN } from "../../src/paths.js";
import * as torch from "../../src/torch/index.js";

const bin = new URL("../../../bin/svdlora.js", import.meta.url).pathname;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "svdlora-nan-"));

// The embedded model with one NaN in its output layer: every loss is NaN from the first step.
const poisoned = path.join(dir, "model");
const model = loadCausalLM(EMBEDDED_MODEL);
torch.noGrad(() => model.lmHead.narrow(0, 7, 1).fill_(Number.NaN));
fs.mkdirSync(poisoned);
saveCausalLM(model, poisoned);
copyTokenizerFiles(EMBEDDED_MODEL, poisoned);
const trainData = path.join(dir, "train.json");
fs.writeFileSync(trainData, JSON.stringify(JSON.parse(fs.readFileSync(EMBEDDED_TRAIN, "utf8")).slice(0, 8)));
const run = (...extra: string[]) =>
  spawnSync(process.execPath, [bin, "train", "--base-model", poisoned, "--train-data", trainData, "--epochs", "1", "--quiet", ...extra], {
    encoding: "utf8",
  });

test("a NaN loss stops the run at that step with one line, and no adapter is written", () => {
  const out = path.join(dir, "stop");
  const r = run("--output-dir", out);
  assert.equal(r.status, 1);
  assert.match(
    r.stderr.trim(),
    /^svdlora: error: loss became NaN at step 1: lower --learning-rate \(now 0\.0002\) or set --skip-nonfinite; no checkpoint was saved yet$/,
  );
  assert.equal(fs.existsSync(path.join(out, "final_model_random")), false);
});

test("--skip-nonfinite skips and counts the bad steps", () => {
  const out = path.join(dir, "skip");
  const r = run("--output-dir", out, "--skip-nonfinite");
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /2 steps were skipped for a non-finite loss or gradient/);
  const summary = JSON.parse(fs.readFileSync(path.join(out, "train_summary_random.json"), "utf8"));
  assert.equal(summary.result.skippedSteps, 2);
  assert.match(fs.readFileSync(path.join(out, "training_log_random.csv"), "utf8"), /^1,0\.5,nan,/m);
});
