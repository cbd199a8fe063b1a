// `svdlora run`: without a terminal it needs --steps; on one, its menu shows the settings and
// each step's state (to do, done, stale and why) before asking.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { main } from "../../src/cli/main.js";
import { runCli, tempDir } from "../helpers.js";

const dir = tempDir("run-menu");

test("without a terminal, run needs --steps", async () => {
  const r = await runCli("run", "--output-dir", path.join(dir, "none"));
  assert.equal(r.code, 1);
  assert.equal(r.stderr, "svdlora: error: run needs --steps when it is not on a terminal: --steps all, or step numbers such as 1,2");
  assert.equal(fs.existsSync(path.join(dir, "none")), false);
});

test("the menu shows the settings and each step's state, and q quits", async () => {
  const out = path.join(dir, "exp");
  const training = path.join(out, "training_results");
  fs.mkdirSync(training, { recursive: true });
  fs.writeFileSync(path.join(training, "train_summary_random.json"), JSON.stringify({ made_by: "someone else" }));
  fs.writeFileSync(path.join(out, "report.html"), "<html></html>");
  let stdout = "";
  const asked: string[] = [];
  const code = await main(["run", "--output-dir", out, "--epochs", "2", "--lora-rank", "8"], {
    io: {
      stdout: { write: (s: string) => (stdout += s) },
      stderr: { write: () => true },
      interactive: true,
      ask: async (prompt: string) => {
        asked.push(prompt);
        return asked.length === 1 ? "7" : "q";
      },
    },
  });
  assert.equal(code, 0);
  const lines = stdout.split("\n");
  assert.equal(lines[0], `svdlora experiment in ${out}`);
  assert.match(lines[1], /^ {2}base_model .*, epochs 2, .*lora_rank 8, .*target_modules q_proj,v_proj/);
  assert.match(
    stdout,
    /^ {2}1 {2}train the random-init LoRA baseline \(every seed and learning rate\) {2}\[stale: .*train_summary_random\.json was not written by this svdlora\]$/m,
  );
  assert.match(stdout, /^ {2}2 {2}.* {2}\[to do\]$/m);
  // A report.html alone is not a done step 4: svdlora_report.json must record what it was made from.
  assert.match(stdout, /^ {2}4 {2}compare the arms, paired by seed, and write report\.html {2}\[to do\]$/m);
  assert.match(stdout, /^please answer A, 1, 2, 3, 4 or q$/m);
  assert.deepEqual(asked, ["> ", "> "]);
});
