// Pretraining a model of the embedded model's kind (pipeline/pretrain.ts), at a toy size: it writes
// a model folder, and frees the model it trained.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { pretrainTinyModel } from "../../src/pipeline/pretrain.js";
import { PRETRAIN } from "../../src/pipeline/settings.js";
import * as torch from "../../src/torch/index.js";
import { defaults } from "../../src/util/settings.js";
import { settledMemory, tempDir } from "../helpers.js";

const dir = tempDir("pretrain");

test("pretraining writes a model folder and leaves no tensor behind", async () => {
  const outputDir = path.join(dir, "toy");
  const toy = {
    samples: 8,
    merges: 8,
    hidden: 16,
    layers: 1,
    heads: 2,
    kvHeads: 1,
    intermediate: 32,
    epochs: 1,
    batchSize: 4,
    maxLength: 64,
  };
  const before = await settledMemory();
  const summary = await pretrainTinyModel({
    ...(defaults(PRETRAIN) as Parameters<typeof pretrainTinyModel>[0]),
    ...toy,
    outputDir,
    quiet: true,
  });
  assert.equal((summary.training as { steps: number }).steps, 2);
  assert.ok(fs.statSync(path.join(outputDir, "model.safetensors")).size > 0);
  assert.deepEqual(torch.memory(), before);
});
