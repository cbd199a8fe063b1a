// docs/config.md is what the schemas generate (so it cannot go stale), and config files in the
// spellings of Hugging Face / PEFT / LLaMA-Factory read as svdlora settings; a well-known key
// svdlora has no setting for is refused with its reason, unless its value asks for what svdlora does.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { configDocs } from "../../src/cli/config-docs.js";
import { readConfigFile } from "../../src/cli/settings.js";
import { PACKAGE_ROOT } from "../../src/paths.js";
import { EXPERIMENT } from "../../src/pipeline/settings.js";
import { LORA_TRAINING, NO_SETTING } from "../../src/train/settings.js";
import { readSettings } from "../../src/util/settings.js";
import { tempDir } from "../helpers.js";

const dir = tempDir("config-docs");

test("docs/config.md is what the settings schemas generate", () => {
  const committed = fs.readFileSync(path.join(PACKAGE_ROOT, "docs", "config.md"), "utf8");
  assert.ok(committed === configDocs(), "docs/config.md is not current: run `npx tsc -p . && node scripts/config-table.mjs` and commit it");
});

test("the docs list every setting of every command and every key svdlora has no setting for", () => {
  const docs = configDocs();
  for (const key of Object.keys(EXPERIMENT))
    assert.ok(docs.includes(`| \`${key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)}\` |`), key);
  for (const [key, { why }] of Object.entries(NO_SETTING)) assert.ok(docs.includes(`| \`${key}\` | no setting: ${why}`), key);
  assert.ok(!docs.includes(PACKAGE_ROOT), "no path of this checkout");
});

test("a LLaMA-Factory LoRA config reads as svdlora settings", () => {
  const file = path.join(dir, "llamafactory.yaml");
  fs.writeFileSync(
    file,
    [
      "model_name_or_path: Qwen/Qwen2.5-Math-7B-Instruct",
      "stage: sft",
      "do_train: true",
      "finetuning_type: lora",
      "lora_target: all",
      "lora_rank: 8",
      "lora_alpha: 16",
      "cutoff_len: 2048",
      "overwrite_cache: true",
      "output_dir: saves/qwen-lora",
      "logging_steps: 1",
      "plot_loss: true",
      "overwrite_output_dir: true",
      "report_to: none",
      "per_device_train_batch_size: 1",
      "gradient_accumulation_steps: 8",
      "learning_rate: 1.0e-4",
      "num_train_epochs: 3.0",
      "lr_scheduler_type: cosine",
      "warmup_ratio: 0.1",
      "bf16: true",
      "",
    ].join("\n"),
  );
  // LLaMA-Factory writes epochs as a float: 3.0 is the integer 3 in YAML.
  assert.deepEqual(readConfigFile(file, LORA_TRAINING), {
    baseModel: "Qwen/Qwen2.5-Math-7B-Instruct",
    targetModules: "all-linear",
    loraRank: 8,
    loraAlpha: 16,
    maxLength: 2048,
    outputDir: "saves/qwen-lora",
    overwrite: true,
    batchSize: 1,
    gradientAccumulationSteps: 8,
    learningRate: 1e-4,
    epochs: 3,
    lrScheduler: "cosine",
    warmupRatio: 0.1,
    dtype: "bfloat16",
  });
});

test("PEFT and Trainer spellings with mapped values", () => {
  const read = (mapping: Record<string, unknown>) => readSettings(LORA_TRAINING, mapping, "c.json", NO_SETTING);
  assert.deepEqual(read({ r: 4, init_lora_weights: true, use_rslora: true, bias: "none", task_type: "CAUSAL_LM" }), {
    loraRank: 4,
    init: "random",
    rslora: true,
  });
  assert.deepEqual(read({ init_lora_weights: "pissa", resume_from_checkpoint: true, disable_tqdm: true }), {
    init: "pissa",
    resume: true,
    quiet: true,
  });
  assert.throws(
    () => read({ init_lora_weights: "corda" }),
    /^SettingError: c\.json: init_lora_weights must be true, "gaussian", "pissa", "pissa_niter_N", "olora", "eva" or "loftq", got "corda"$/,
  );
  assert.deepEqual(read({ init_lora_weights: "pissa_niter_16", use_dora: true }), { init: "pissa-niter-16", dora: true });
  assert.throws(
    () => read({ resume_from_checkpoint: "out/checkpoint-500" }),
    /resume_from_checkpoint must be true or false: a run resumes from its own checkpoint, got "out\/checkpoint-500"/,
  );
});

test("a key svdlora has no setting for is refused with its reason, all of them in one line", () => {
  const read = (mapping: Record<string, unknown>) => readSettings(LORA_TRAINING, mapping, "c.yaml", NO_SETTING);
  assert.throws(
    () => read({ epochs: 2, logging_steps: 10 }),
    (e: Error) =>
      e.message ===
      "c.yaml: svdlora has no setting for logging_steps (svdlora logs every optimizer step, to CSV, JSONL and TensorBoard): remove the key (docs/config.md lists what maps to what)",
  );
  assert.throws(
    () => read({ layers_to_transform: [0], report_to: "wandb", max_steps: 100 }),
    /^Error: c\.yaml: svdlora has no setting for layers_to_transform \(every layer.s targeted modules get a LoRA\); report_to \(.*\); max_steps \(.*\): remove these keys/,
  );
  // Values that ask for what svdlora does anyway are accepted and ignored.
  for (const [key, { same }] of Object.entries(NO_SETTING))
    for (const value of same ?? []) assert.deepEqual(read({ [key]: value }), {}, `${key}: ${JSON.stringify(value)}`);
  // A typo is still a typo, with the nearest setting.
  assert.throws(() => read({ lerning_rate: 1 }), /unknown setting "lerning_rate" \(did you mean learning_rate\?\)/);
});
