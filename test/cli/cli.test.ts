// The command line: bad input gets one clear line on stderr and a non-zero exit. The commands run
// in this process (runCli), except `info`, which checks the real bin/svdlora.js end to end.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { runCli, tempDir } from "../helpers.js";

const bin = new URL("../../../bin/svdlora.js", import.meta.url).pathname;
const golden = new URL("../../../test/fixtures/golden/", import.meta.url).pathname;
const tmp = tempDir("cli");

const svdlora = runCli;

function assertOneLineError(r: { code: number; stderr: string }, pattern: RegExp) {
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, pattern);
  // commander may add a hint in parentheses, e.g. "(Did you mean train?)".
  assert.equal(r.stderr.split("\n").filter((l) => !l.startsWith("(")).length, 1, `one line expected, got:\n${r.stderr}`);
  assert.match(r.stderr, /^svdlora: /);
}

test("info prints versions and --json is machine-readable (bin/svdlora.js in a process of its own)", async () => {
  const r = spawnSync(process.execPath, [bin, "info", "--json"], { encoding: "utf8" });
  assert.equal(r.status, 0);
  const info = JSON.parse(r.stdout);
  assert.match(info.libtorch, /^\d+\.\d+\.\d+$/);
  assert.equal(typeof info.cpu.cores, "number");
  assert.match((await svdlora("info")).stdout, /^svdlora\s+\d/m);
});

test("unknown commands, flags and bad flag values", async () => {
  assertOneLineError(await svdlora("trian"), /unknown command 'trian'/);
  assertOneLineError(await svdlora("train", "--lora-rnk", "4"), /unknown option '--lora-rnk'/);
  assertOneLineError(await svdlora("train", "--lora-rank", "0"), /--lora-rank.*expected an integer ≥ 1, got "0"/);
  assertOneLineError(await svdlora("train", "--learning-rate", "-1"), /--learning-rate.*expected a number > 0/);
  assertOneLineError(await svdlora("train", "--init", "magic"), /expected one of random, gaussian, svd, pissa/);
  assertOneLineError(await svdlora("train", "--init", "pissa-niter-0"), /pissa-niter-N: N from 1 to 100\), got "pissa-niter-0"/);
  assertOneLineError(await svdlora("train", "--device", "tpu"), /expected cpu, cuda or cuda:N/);
});

test("missing and malformed files", async () => {
  assertOneLineError(
    await svdlora("train", "--train-data", path.join(tmp, "nope.json")),
    /^svdlora: error: --train-data .*nope\.json: no such file/,
  );
  const bad = path.join(tmp, "bad.json");
  fs.writeFileSync(bad, '[{"question": "q", "answer": ');
  assertOneLineError(await svdlora("train", "--train-data", bad, "--output-dir", tmp), /^svdlora: error: .*bad\.json/);
  assertOneLineError(await svdlora("train", "--base-model", tmp, "--output-dir", tmp), /^svdlora: error: .*(tokenizer|config)/);
  assertOneLineError(await svdlora("train", "--init", "svd", "--output-dir", tmp, "--quiet"), /--init svd needs --svd-factors/);
});

test("a rank too large for the model and an adapter for another model are refused", async () => {
  assertOneLineError(await svdlora("train", "--lora-rank", "300", "--output-dir", tmp, "--quiet"), /rank 300 is larger than .* allows/);
  assertOneLineError(
    await svdlora("eval", "--adapter", path.join(golden, "qwen2-tiny-lora"), "--limit", "1", "--no-generate"),
    /adapter model\.layers\.0\.\S+: lora_A \[4,(64|176)\] \/ lora_B \[\d+,4\] do not fit the base layer \(want \[4,(256|704)\]/,
  );
});
