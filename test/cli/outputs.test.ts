// Output paths are checked before any work: every command that writes refuses, in one line, an
// output under a regular file (where no folder can be made) before it loads a model or trains.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { runCli, tempDir } from "../helpers.js";

const dir = tempDir("outputs");
const file = path.join(dir, "a-file");
fs.writeFileSync(file, "not a folder\n");
const under = (name: string) => path.join(file, name);
const golden = new URL("../../../test/fixtures/golden/", import.meta.url).pathname;
const adapter = path.join(golden, "qwen2-tiny-lora");

const CASES: [string[], string][] = [
  [["train", "--quiet", "--output-dir", under("t")], "training folder"],
  [["train-full", "--quiet", "--output-dir", under("m")], "fine-tuned model folder"],
  [["svd", "--lora-adapter", adapter, "--rank", "4", "--output-dir", under("s")], "SVD results folder"],
  [["synthesize-teacher", "--lora-adapter", adapter, "--output-dir", under("t")], "teacher folder"],
  [["merge", "--base-model", path.join(golden, "qwen2-tiny"), "--adapter", adapter, "--output-dir", under("m")], "merged model folder"],
  [["eval", "--limit", "1", "--no-generate", "--output", under("r.json")], "results file"],
  [["compare", "--training-dir", file], "comparison report folder"],
  [["pretrain", "--samples", "10", "--output-dir", under("p")], "model folder"],
  [["run", "--steps", "1", "--output-dir", under("e")], "experiment folder"],
];

for (const [args, what] of CASES)
  test(`${args[0]}: an output under a file is refused before any work`, async () => {
    const r = await runCli(...args);
    assert.equal(r.code, 1, r.stderr);
    const target = args[args.length - 1];
    assert.equal(r.stderr, `svdlora: error: ${target}: cannot write the ${what}: ${file} is a file, not a folder`);
    assert.deepEqual(fs.readdirSync(dir), ["a-file"], "nothing written");
  });

test("pretrain refuses a folder it did not write before training, not after", async () => {
  const mine = path.join(dir, "mine");
  fs.mkdirSync(mine);
  fs.writeFileSync(path.join(mine, "notes.txt"), "keep\n");
  const r = await runCli("pretrain", "--samples", "10", "--quiet", "--output-dir", mine);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^svdlora: error: .*mine is a folder that svdlora did not write .*: move it away or choose another output path$/);
  assert.deepEqual(fs.readdirSync(mine), ["notes.txt"]);
  fs.rmSync(mine, { recursive: true });
});
