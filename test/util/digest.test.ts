// What identifies an input (util/digest.ts): folders by each file's sha256, weight files over 1 GiB
// by their size; an input is the same when every file still is (a size recorded by an earlier
// svdlora is compared as a size).
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { HASHED_WEIGHTS_BYTES, describeInput, sameInput } from "../../src/util/digest.js";
import { tempDir } from "../helpers.js";

const dir = tempDir("digest");

test("a folder: small files and weights up to 1 GiB by sha256, larger weights by size", () => {
  const model = path.join(dir, "model");
  fs.mkdirSync(model);
  fs.writeFileSync(path.join(model, "config.json"), "{}");
  fs.writeFileSync(path.join(model, "adapter_model.safetensors"), "weights");
  fs.writeFileSync(path.join(model, "model-00001.safetensors"), "");
  fs.truncateSync(path.join(model, "model-00001.safetensors"), HASHED_WEIGHTS_BYTES + 1); // sparse: no gigabyte written
  const d = describeInput(model);
  assert.match(String(d.files?.["config.json"]), /^[0-9a-f]{64}$/);
  assert.match(String(d.files?.["adapter_model.safetensors"]), /^[0-9a-f]{64}$/);
  assert.equal(d.files?.["model-00001.safetensors"], HASHED_WEIGHTS_BYTES + 1);
  assert.ok(sameInput(d));
  fs.writeFileSync(path.join(model, "adapter_model.safetensors"), "weighs"); // same size, other bytes
  assert.ok(!sameInput(d));
});

test("a file by its sha256; a size from an earlier record is compared as a size; a missing file is not the same", () => {
  const file = path.join(dir, "data.json");
  fs.writeFileSync(file, "[1]");
  const d = describeInput(file);
  assert.ok(sameInput(d));
  fs.writeFileSync(file, "[2]");
  assert.ok(!sameInput(d));
  const folder = path.join(dir, "old-record");
  fs.mkdirSync(folder);
  fs.writeFileSync(path.join(folder, "model.safetensors"), "abc");
  assert.ok(sameInput({ path: folder, files: { "model.safetensors": 3 } }));
  assert.ok(!sameInput({ path: folder, files: { "model.safetensors": 4 } }));
  assert.ok(!sameInput({ path: folder, files: {} }), "a file more than recorded");
  assert.ok(!sameInput({ path: path.join(dir, "nope"), sha256: d.sha256 }));
});
