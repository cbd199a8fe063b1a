// The command line: bad input gets one clear line on stderr and a non-zero exit.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";

const bin = new URL("../../../bin/svdlora.js", import.meta.url).pathname;
const golden = new URL("../../../test/fixtures/golden/", import.meta.url).pathname;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "svdlora-cli-"));

function svdlora(...args: string[]) {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: "utf8" });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr.trim() };
}

function assertOneLineError(r: ReturnType<typeof svdlora>, pattern: RegExp) {
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, pattern);
  // commander may add a hint in parentheses, e.g. "(Did you mean train?)".
  assert.equal(r.stderr.split("\n").filter((l) => !l.startsWith("(")).length, 1, `one line expected, got:\n${r.stderr}`);
  assert.match(r.stderr, /^svdlora: /);
}

test("info prints versions and --json is machine-readable", () => {
  const r = svdlora("info", "--json");
  assert.equal(r.code, 0);
  const info = JSON.parse(r.stdout);
  assert.match(info.libtorch, /^\d+\.\d+\.\d+$/);
  assert.equal(typeof info.cpu.cores, "number");
  assert.match(svdlora("info").stdout, /^svdlora\s+\d/m);
});

test("unknown commands, flags and bad flag values", () => {
  assertOneLineError(svdlora("trian"), /unknown command 'trian'/);
  assertOneLineError(svdlora("train", "--lora-rnk", "4"), /unknown option '--lora-rnk'/);
  assertOneLineError(svdlora("train", "--lora-rank", "0"), /--lora-rank.*expected an integer ≥ 1, got "0"/);
  assertOneLineError(svdlora("train", "--learning-rate", "-1"), /--learning-rate.*expected a number > 0/);
  assertOneLineError(svdlora("train", "--init", "magic"), /expected one of random, gaussian, svd, pissa/);
  assertOneLineError(svdlora("train", "--init", "pissa-niter-0"), /pissa-niter-N: N from 1 to 100\), got "pissa-niter-0"/);
  assertOneLineError(svdlora("train", "--device", "tpu"), /expected cpu, cuda or cuda:N/);
});

test("missing and malformed files", () => {
  assertOneLineError(
    svdlora("train", "--train-data", path.join(tmp, "nope.json")),
    /^svdlora: error: --train-data .*nope\.json: no such file/,
  );
  const bad = path.join(tmp, "bad.json");
  fs.writeFileSync(bad, '[{"question": "q", "answer": ');
  assertOneLineError(svdlora("train", "--train-data", bad, "--output-dir", tmp), /^svdlora: error: .*bad\.json/);
  assertOneLineError(svdlora("train", "--base-model", tmp, "--output-dir", tmp), /^svdlora: error: .*(tokenizer|config)/);
  assertOneLineError(svdlora("train", "--init", "svd", "--output-dir", tmp, "--quiet"), /--init svd needs --svd-factors/);
});

test("a rank too large for the model and an adapter for another model are refused", () => {
  assertOneLineError(svdlora("train", "--lora-rank", "300", "--output-dir", tmp, "--quiet"), /rank 300 is larger than .* allows/);
  assertOneLineError(
    svdlora("eval", "--adapter", path.join(golden, "qwen2-tiny-lora"), "--limit", "1", "--no-generate"),
    /adapter model\.layers\.0\.\S+: lora_A \[4,(64|176)\] \/ lora_B \[\d+,4\] do not fit the base layer \(want \[4,(256|704)\]/,
  );
});
