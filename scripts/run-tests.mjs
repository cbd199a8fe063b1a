// Runs the compiled test files (dist/<dir>/**/*.test.js), each in a process of its own.
// Usage: node scripts/run-tests.mjs [dir=test] [name filter…]
// - Files run two or more at a time (SVDLORA_TEST_CONCURRENCY; default: the cores less one, at
//   least 2), each with its share of the cores for libtorch (OMP_NUM_THREADS, unless set): much of
//   a file's time is start-up and single-threaded work, and more threads than cores only spin.
//   A file's output is printed whole when it ends, with its wall time.
// - The tests get a temporary folder of their own (TMPDIR, so os.tmpdir() in every test process):
//   whatever a test leaves there fails the run, named.
// - At the end: the slowest files, the failed ones, and the total time with the machine's load.
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const [dir = "test", ...filters] = process.argv.slice(2);
const files = fs
  .readdirSync(join(root, "dist", dir), { recursive: true })
  .map(String)
  .filter((f) => f.endsWith(".test.js") && (filters.length === 0 || filters.some((w) => f.includes(w))))
  .sort()
  .map((f) => join("dist", dir, f));
if (files.length === 0) {
  console.error(`no test files under dist/${dir} match ${filters.join(" ") || "*.test.js"}`);
  process.exit(1);
}

const cores = os.availableParallelism();
const concurrency = Math.min(files.length, Number(process.env.SVDLORA_TEST_CONCURRENCY ?? Math.max(2, cores - 1)));
const threads = process.env.OMP_NUM_THREADS ?? String(Math.max(1, Math.floor(cores / concurrency)));
const tmp = fs.mkdtempSync(join(os.tmpdir(), "svdlora-tests-"));
const env = { ...process.env, TMPDIR: tmp, OMP_NUM_THREADS: threads };

/** Runs one file; resolves with its exit code, wall seconds and everything it printed. */
function run(file) {
  const started = performance.now();
  const child = spawn(process.execPath, ["--test-reporter=spec", file], { cwd: root, env });
  const out = [];
  child.stdout.on("data", (d) => out.push(d));
  child.stderr.on("data", (d) => out.push(d));
  return new Promise((resolve) =>
    child.on("close", (code, signal) =>
      resolve({ file, code: code ?? signal, seconds: (performance.now() - started) / 1000, output: Buffer.concat(out).toString() }),
    ),
  );
}

const started = performance.now();
const results = [];
const queue = [...files];
await Promise.all(
  Array.from({ length: concurrency }, async () => {
    for (let file = queue.shift(); file; file = queue.shift()) {
      const r = await run(file);
      results.push(r);
      process.stdout.write(`\n── ${r.file} (${r.seconds.toFixed(1)} s${r.code === 0 ? "" : `, exit ${r.code}`})\n${r.output}`);
    }
  }),
);
const seconds = (performance.now() - started) / 1000;

const failed = results.filter((r) => r.code !== 0);
const slowest = [...results].sort((a, b) => b.seconds - a.seconds).slice(0, 12);
console.log(`\nslowest test files (wall seconds, ${concurrency} at a time):`);
for (const r of slowest) console.log(`${r.seconds.toFixed(1).padStart(6)}  ${r.file}`);
console.log(
  `\n${files.length} test files in ${seconds.toFixed(1)} s, ${concurrency} at a time with ${threads} libtorch thread(s) each ` +
    `(${cores} cores; load average ${os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(", ")})`,
);
const left = fs.readdirSync(tmp);
fs.rmSync(tmp, { recursive: true, force: true });
if (left.length > 0)
  console.error(
    `the tests left ${left.length} entries in their temporary folder (each test file must remove what it makes): ${left.join(", ")}`,
  );
if (failed.length > 0) console.error(`failed: ${failed.map((r) => r.file).join(", ")}`);
process.exit(failed.length > 0 || left.length > 0 ? 1 : 0);
