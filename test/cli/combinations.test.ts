// Flags that would have no effect in the combination given are refused in one line that names
// them and what to do, before anything is read or written; "none" on the command line is null.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { EMBEDDED_TRAIN } from "../../src/paths.js";
import { dataSubset, runCli, tempDir } from "../helpers.js";

const dir = tempDir("combinations");
const train = dataSubset(EMBEDDED_TRAIN, 4, dir, "train.json"); // not the embedded set: no held-out data by default
const out = path.join(dir, "out");

const CASES: [string[], RegExp][] = [
  [["train", "--max-memory", "4"], /^--max-memory is a GPU memory budget: it has no effect with --device cpu; drop it$/],
  [
    ["train", "--eval-data", "none", "--eval-steps", "3"],
    /^--eval-steps sets how often the held-out loss is measured, but there is no held-out data: give --eval-data, or drop --eval-steps$/,
  ],
  [["train", "--train-data", train, "--eval-limit", "3"], /^--eval-limit limits the held-out samples, but there is no held-out data/],
  [
    ["train", "--train-data", train, "--accuracy-samples", "3"],
    /^--accuracy-samples answers held-out questions, but there is no held-out data/,
  ],
  [
    ["train", "--resume", "--overwrite"],
    /^--resume continues the run's checkpoint and --overwrite starts the run afresh: give one of them$/,
  ],
  [["train", "--max-new-tokens", "10"], /^--max-new-tokens bounds the answers generated for --accuracy-samples, and none are asked for/],
  [["train", "--svd-factors", dir], /^--svd-factors is used only with --init svd: add --init svd, or drop --svd-factors$/],
  [
    ["train-full", "--no-eval-data", "--eval-steps", "2"],
    /^--eval-steps sets how often the held-out loss is measured, but there is no held-out data/,
  ],
  [["train-full", "--resume", "--overwrite"], /^--resume continues the run's checkpoint and --overwrite starts the run afresh/],
  [
    ["eval", "--no-generate", "--max-new-tokens", "5"],
    /^--max-new-tokens bounds generated answers, and --no-generate turns generation off: drop one of them$/,
  ],
  [["svd", "--lora-adapter", dir, "--target-modules", "q_proj"], /^--target-modules picks the modules of --finetuned-model/],
  [["run", "--steps", "1", "--max-memory", "3"], /^--max-memory is a GPU memory budget: it has no effect with --device cpu; drop it$/],
  [["run", "--steps", "1", "--max-new-tokens", "5"], /^--max-new-tokens bounds the answers generated for --accuracy-samples/],
];

for (const [args, expect] of CASES)
  test(`${args.join(" ")}: refused`, async () => {
    const r = await runCli(...args, ...(["eval", "svd"].includes(args[0]) ? [] : ["--quiet", "--output-dir", out]));
    assert.equal(r.code, 1, r.stderr);
    assert.equal(r.stderr.split("\n").length, 1, r.stderr);
    assert.match(r.stderr.replace(/^svdlora: error: /, ""), expect);
    assert.equal(fs.existsSync(out), false, "nothing written");
  });

test("train-full keeps float32 weights: another dtype is refused with the reason", async () => {
  const r = await runCli("train-full", "--dtype", "bfloat16", "--output-dir", out);
  assert.equal(r.code, 1);
  assert.match(
    r.stderr,
    /expected float32: a full fine-tune keeps float32 weights \(AdamW on bfloat16 ones loses small updates\), got "bfloat16"/,
  );
  const config = path.join(dir, "full.yaml");
  fs.writeFileSync(config, "bf16: true\n");
  const fromFile = await runCli("train-full", "--config", config, "--output-dir", out);
  assert.equal(fromFile.code, 1);
  assert.equal(
    fromFile.stderr,
    `svdlora: error: ${config}: bf16 must be false (float32: a full fine-tune keeps float32 weights (AdamW on bfloat16 ones loses small updates)), got true`,
  );
});
