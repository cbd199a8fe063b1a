// torch.profile: libtorch's profiler around a function. Builds with Kineto (PyTorch's own libtorch)
// write a Chrome trace of the ops; Debian's libtorch has none, and the call says so in one line.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import * as torch from "../../src/torch/index.js";
import { tempDir } from "../helpers.js";

const dir = tempDir("profile");

test("torch.profile returns fn's result and writes a trace of its ops, or says this build cannot", () => {
  const file = path.join(dir, "trace.json");
  const a = torch.randn([16, 16]);
  let sum: number;
  try {
    sum = torch.profile(file, { cuda: false }, () => torch.tidy(() => a.matmul(a).sum().item()));
  } catch (e) {
    assert.match((e as Error).message, /built without Kineto/);
    assert.equal(fs.existsSync(file), false);
    // The profiler is off again: a second run fails the same way, not with "already enabled".
    assert.throws(() => torch.profile(file, { cuda: false }, () => 1), /built without Kineto/);
    return;
  }
  assert.ok(Math.abs(sum - torch.tidy(() => a.matmul(a).sum().item())) < 1e-3);
  const names = JSON.parse(fs.readFileSync(file, "utf8")).traceEvents.map((e: { name: string }) => e.name);
  assert.ok(names.includes("aten::matmul"), `ops traced: ${names.slice(0, 20).join(", ")}`);
});

test("an error inside torch.profile is the one reported, and the profiler is off after it", () => {
  assert.throws(
    () =>
      torch.profile(path.join(dir, "failed.json"), { cuda: false }, () => {
        throw new Error("inside");
      }),
    /inside/,
  );
  assert.throws(
    () =>
      torch.profile(path.join(dir, "again.json"), { cuda: false }, () => {
        throw new Error("again");
      }),
    /again/,
  );
});
