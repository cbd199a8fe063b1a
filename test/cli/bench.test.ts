// `svdlora bench` on the CPU with the embedded tiny model: the printed result and its JSON, the
// PEFT reference skipped with its line when Python has no peft, the PEFT child's result and failure
// read back (a stand-in Python that checks its arguments with the real script's --plan), and
// refusals of bad input.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import type { BenchResult } from "../../src/pipeline/bench.js";
import { benchSteps, mfuPercent, samplesFor } from "../../src/train/bench.js";
import { loadDataset } from "../../src/data/dataset.js";
import { formatSamples } from "../../src/data/format.js";
import { loadTokenizer } from "../../src/hf/tokenizer.js";
import { EMBEDDED_MODEL, EMBEDDED_TRAIN } from "../../src/paths.js";
import { TRAINING } from "../../src/train/settings.js";
import { dataSubset, runCli, tempDir } from "../helpers.js";
import { smallModel } from "../small-model.js";

const dir = tempDir("bench");
// The smallest run: one sample per step, 3 warm-up steps and 1 timed.
const SMALL = ["--steps", "1", "--batch-size", "1", "--quiet"];
// Where the PEFT reference is what is tested, svdlora's side measures the small model.
const SMALL_MODEL = ["--base-model", smallModel(dir)];
const hasPython = !spawnSync("python3", ["--version"]).error;
const pythonHasPeft = hasPython && spawnSync("python3", ["-c", "import torch, transformers, peft"]).status === 0;

/** A stand-in for python3: imports "work", and a run checks its arguments with the real script's --plan, then prints `line`. */
function standIn(name: string, line: string, exitCode = 0): string {
  const file = path.join(dir, name);
  fs.writeFileSync(
    file,
    `#!/bin/sh
[ "$1" = "-c" ] && exit 0
python3 "$@" --plan > "${file}.plan" || exit 3
prev=""; for a in "$@"; do [ "$prev" = "--samples" ] && cp "$a" "${file}.samples"; prev="$a"; done
echo "stand-in: loading" >&2
echo 'not json'
echo '${line}'
exit ${exitCode}
`,
  );
  fs.chmodSync(file, 0o755);
  return file;
}

test("the result: what was measured, svdlora's row, and the PEFT reference skipped in one line when Python has no peft", async (t) => {
  if (pythonHasPeft) return t.skip("python3 here has peft: the skipped line is not printed");
  const r = await runCli("bench", ...SMALL);
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trim().split("\n");
  assert.match(
    lines[0],
    /^svdlora bench: .*tiny-prob \(4 layers\) on cpu, float32; LoRA r = 16 on q_proj,v_proj; batch 1, 1 steps timed after 3 warm-up steps$/,
  );
  assert.match(lines[1], /^samples: synthetic, 150–600 random tokens \(\d+ tokens on average\)$/);
  assert.match(lines[2], /real tok\/s\s+peak memory\s+MFU \(4N\)$/);
  assert.match(lines[3], /^svdlora \(checkpointing auto\)\s+[\d,]+\s+\d+\.\d\d GiB \(host RSS\)\s+n\/a$/);
  assert.match(
    r.stdout,
    hasPython
      ? /^PEFT reference skipped: python3 cannot import torch, transformers and peft \(.*No module named.*\): install them there, or point --python at a Python that has them$/m
      : /^PEFT reference skipped: python3 was not found: point --python at a Python with torch, transformers and peft$/m,
  );
  assert.match(r.stdout, /^MFU needs the device's peak: give --peak-tflops/m);
  assert.equal(r.stderr, "", "--quiet: no progress");
});

test("--json: the same result as data, MFU from --peak-tflops, and --no-peft says it was not asked for", async () => {
  const r = await runCli("bench", ...SMALL, "--json", "--no-peft", "--peak-tflops", "0.5", "--lora-rank", "4");
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout) as BenchResult;
  assert.deepEqual(j.lora, { rank: 4, alpha: 16, targets: ["q_proj", "v_proj"] });
  assert.deepEqual([j.device, j.deviceName, j.dtype, j.batchSize, j.steps, j.warmupSteps], ["cpu", "cpu", "float32", 1, 1, 3]);
  assert.deepEqual([j.flopsPerToken, j.peakTflops, j.peakSource], ["4N", 0.5, "given"]);
  assert.ok(j.model.matmulWeights > 3e6 && j.model.matmulWeights < 4e6, `${j.model.matmulWeights}`);
  const s = j.svdlora;
  assert.ok(s.realTokensPerSecond > 0 && s.tokensPerStep >= 150 && s.tokensPerStep <= 600, JSON.stringify(s));
  assert.equal(s.paddedTokensPerSecond, s.realTokensPerSecond, "one sample per step: no padding");
  assert.equal(s.mfuPercent, mfuPercent(s.realTokensPerSecond, j.model.matmulWeights, 0.5e12));
  assert.equal(j.peft, null);
  assert.equal(j.ratio, null);
});

test("the PEFT reference's line read back: its row and the ratio; the same steps of the same samples", async (t) => {
  if (!hasPython) return t.skip("python3 is not installed: the stand-in checks its arguments with it");
  const python = standIn(
    "peft-ok",
    '{"side":"peft","grad_ckpt":false,"timed_steps":1,"seconds":2,"real_tokens_per_s":100,"padded_tokens_per_s":100,"tokens_per_step":200,"peak_mem_gib":1.5,"memory_kind":"host resident","versions":{"peft":"0.0"}}',
  );
  const r = await runCli("bench", ...SMALL, ...SMALL_MODEL, "--python", python, "--peft-checkpointing", "off", "--json");
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout) as BenchResult;
  assert.ok(j.peft && "realTokensPerSecond" in j.peft, JSON.stringify(j.peft));
  assert.deepEqual(
    [j.peft.realTokensPerSecond, j.peft.peakMemoryGiB, j.peft.gradientCheckpointing, j.peft.versions],
    [100, 1.5, false, { peft: "0.0" }],
  );
  assert.equal(j.ratio, j.svdlora.realTokensPerSecond / 100);
  // The script got svdlora's samples file and was told to cut it into svdlora's steps.
  const plan = JSON.parse(fs.readFileSync(`${python}.plan`, "utf8"));
  assert.deepEqual(plan, [{ batch_size: 1, steps: benchSteps(samplesFor(1, 1), 1) }]);

  const text = await runCli("bench", ...SMALL, ...SMALL_MODEL, "--python", python);
  assert.match(text.stdout, /^PEFT \(checkpointing off\)\s+100\s+1\.50 GiB \(host RSS\)\s+n\/a$/m);
  assert.match(text.stdout, /^svdlora \/ PEFT: \d+\.\d\d× the real tokens per second$/m);
});

test("--train-data: the data set's samples as `svdlora train` formats them, cycled to fill the steps, and the same token ids for PEFT", async (t) => {
  if (!hasPython) return t.skip("python3 is not installed: the stand-in checks its arguments with it");
  const python = standIn(
    "peft-data",
    '{"side":"peft","grad_ckpt":true,"timed_steps":1,"seconds":2,"real_tokens_per_s":100,"padded_tokens_per_s":100,"tokens_per_step":200,"peak_mem_gib":1.5,"memory_kind":"host resident","versions":{}}',
  );
  const data = dataSubset(EMBEDDED_TRAIN, 5, dir, "five.json"); // 5 samples for 8 (4 steps of 2): the first three again
  const r = await runCli(
    "bench",
    "--steps",
    "1",
    "--batch-size",
    "2",
    "--quiet",
    "--json",
    "--python",
    python,
    "--train-data",
    data,
    "--max-length",
    "96",
  );
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout) as BenchResult;
  const tokenizer = await loadTokenizer(EMBEDDED_MODEL);
  const { encoded } = formatSamples(loadDataset(data), tokenizer, {
    systemPrompt: TRAINING.systemPrompt.default ?? undefined,
    maxLength: 96,
  });
  const want = Array.from({ length: samplesFor(1, 2) }, (_, i) => encoded[i % 5].ids);
  assert.deepEqual(JSON.parse(fs.readFileSync(`${python}.samples`, "utf8")), want);
  assert.ok(want.every((ids) => ids.length <= 96) && want.some((ids) => ids.length === 96), "--max-length applies");
  assert.equal(j.trainData, data);
  assert.equal(j.meanSampleTokens, want.reduce((n, ids) => n + ids.length, 0) / want.length);
});

test("a PEFT reference that runs out of memory or fails is a line of the result, not an error", async (t) => {
  if (!hasPython) return t.skip("python3 is not installed: the stand-in checks its arguments with it");
  const oom = standIn(
    "peft-oom",
    '{"side":"peft","grad_ckpt":true,"error":"out of memory: CUDA out of memory. Tried to allocate 2.00 GiB"}',
  );
  const r1 = await runCli("bench", ...SMALL, ...SMALL_MODEL, "--python", oom);
  assert.equal(r1.code, 0, r1.stderr);
  assert.match(r1.stdout, /^PEFT reference failed: out of memory: CUDA out of memory\. Tried to allocate 2\.00 GiB$/m);
  assert.doesNotMatch(r1.stdout, /svdlora \/ PEFT/);
  const crash = standIn("peft-crash", "", 1);
  const r2 = await runCli("bench", ...SMALL, ...SMALL_MODEL, "--python", crash);
  assert.equal(r2.code, 0, r2.stderr);
  assert.match(r2.stdout, /^PEFT reference failed: .*peft-crash scripts\/bench_peft\.py failed \(exit 1\): stand-in: loading$/m);
});

test("bad input: one line naming the flag, nothing measured", async () => {
  const cases: [string[], RegExp][] = [
    [["--base-model", path.join(dir, "nope")], /^svdlora: error: --base-model .*nope: no such directory$/],
    [["--max-memory", "10"], /^svdlora: error: --max-memory is a GPU memory budget: it has no effect with --device cpu; drop it$/],
    [["--no-peft", "--python", "python3"], /^svdlora: error: --python sets up the PEFT reference, which is turned off: drop one of them$/],
    [["--no-peft", "--peft-checkpointing", "off"], /^svdlora: error: --peft-checkpointing sets up the PEFT reference, which is turned off/],
    [["--steps", "0"], /^svdlora: error: option '--steps <n>' argument '0' is invalid\. expected an integer ≥ 1, got "0"/],
    [["--peak-tflops", "0"], /--peak-tflops <TFLOP\/s>' argument '0' is invalid\. expected a number > 0/],
    [["--peft-checkpointing", "maybe"], /expected one of on, off, got "maybe"/],
    [["--target-modules", "nothing_here", "--no-peft"], /^svdlora: error: no module matches the LoRA targets \["nothing_here"\]/],
    [
      ["--max-length", "64"],
      /^svdlora: error: --max-length formats the samples of --train-data, which is not given: give it, or drop --max-length$/,
    ],
    [["--train-data", path.join(dir, "none.json")], /^svdlora: error: .*none\.json/],
  ];
  for (const [args, pattern] of cases) {
    const r = await runCli("bench", "--quiet", ...args);
    assert.equal(r.code, 1, args.join(" "));
    assert.equal(r.stdout, "", args.join(" "));
    assert.equal(r.stderr.split("\n").filter((l) => !l.startsWith("(")).length, 1, r.stderr);
    assert.match(r.stderr, pattern);
  }
});
