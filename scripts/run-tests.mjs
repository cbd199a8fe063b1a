// Runs the compiled test files (dist/<dir>/**/*.test.js).
// Usage: node scripts/run-tests.mjs [dir=test] [name filter…]
// - A test process pays about a second before its first test (libtorch and the modules load), so
//   files share processes: scripts/test-files.mjs runs a process's files one after another, each as
//   a suite of its own (its before/after hooks, its temporary folders, then the next file).
// - The files are dealt into processes by their seconds in <dir>/durations.json (from an earlier
//   run on a 2-core machine; a file not listed counts UNKNOWN_SECONDS), longest first: each process
//   takes files until it holds a share of what is left (guided self-scheduling), so the processes
//   come larger first, then smaller and smaller, and the slots that take them as they come free end
//   together. SVDLORA_TEST_DURATIONS=write rewrites that file after a whole run that passed.
// - Processes run two or more at a time (SVDLORA_TEST_CONCURRENCY; default: the cores less one, at
//   least 2), each with its share of the cores for libtorch (OMP_NUM_THREADS, unless set): much of
//   a file's time is start-up and single-threaded work, and more threads than cores only spin.
//   A process's output is printed whole when it ends, with its wall time.
// - The tests get a temporary folder of their own (TMPDIR, so os.tmpdir() in every test process):
//   whatever a test leaves there fails the run, named.
// - At the end: the slowest files, the failed ones, and the total time with the machine's load.
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

/** A process takes files until it holds this share of the seconds left per slot, or MIN_SECONDS. */
const SHARE = 1 / 2;
const MIN_SECONDS = 5;
/** Seconds assumed for a file that durations.json does not list (a new one may be slow). */
const UNKNOWN_SECONDS = 5;

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const [dir = "test", ...filters] = process.argv.slice(2);
const distDir = join("dist", dir);
const files = fs
  .readdirSync(join(root, distDir), { recursive: true })
  .map(String)
  .filter((f) => f.endsWith(".test.js") && (filters.length === 0 || filters.some((w) => f.includes(w))))
  .sort();
if (files.length === 0) {
  console.error(`no test files under ${distDir} match ${filters.join(" ") || "*.test.js"}`);
  process.exit(1);
}

const durationsFile = join(root, dir, "durations.json");
const durations = fs.existsSync(durationsFile) ? JSON.parse(fs.readFileSync(durationsFile, "utf8")) : {};
const estimate = (file) => durations[file] ?? UNKNOWN_SECONDS;

const cores = os.availableParallelism();
const concurrency = Math.min(files.length, Number(process.env.SVDLORA_TEST_CONCURRENCY ?? Math.max(2, cores - 1)));
const threads = process.env.OMP_NUM_THREADS ?? String(Math.max(1, Math.floor(cores / concurrency)));
const tmp = fs.mkdtempSync(join(os.tmpdir(), "svdlora-tests-"));
const results = fs.mkdtempSync(join(os.tmpdir(), "svdlora-test-results-"));
const env = { ...process.env, TMPDIR: tmp, OMP_NUM_THREADS: threads };

// Deal the files, longest first, into processes of decreasing size (see the file comment).
const jobs = [];
let secondsLeft = files.reduce((sum, f) => sum + estimate(f), 0);
let target = 0;
for (const file of [...files].sort((a, b) => estimate(b) - estimate(a))) {
  if (jobs.length === 0 || jobs.at(-1).seconds >= target) {
    target = Math.max((SHARE * secondsLeft) / concurrency, MIN_SECONDS);
    jobs.push({ files: [], seconds: 0 });
  }
  jobs.at(-1).files.push(file);
  jobs.at(-1).seconds += estimate(file);
  secondsLeft -= estimate(file);
}

/** Runs one process's files; resolves with its exit code, wall seconds, output and each file's result. */
function run(job, index) {
  const started = performance.now();
  const resultFile = join(results, `${index}.jsonl`);
  const child = spawn(
    process.execPath,
    [
      "--test-reporter=spec",
      "--test-reporter-destination=stdout",
      `--test-reporter=${join(root, "scripts/test-files-reporter.mjs")}`,
      `--test-reporter-destination=${resultFile}`,
      join(root, "scripts/test-files.mjs"),
      ...job.files.map((f) => join(distDir, f)),
    ],
    { cwd: root, env },
  );
  const out = [];
  child.stdout.on("data", (d) => out.push(d));
  child.stderr.on("data", (d) => out.push(d));
  return new Promise((resolve) =>
    child.on("close", (code, signal) => {
      const lines = fs.existsSync(resultFile) ? fs.readFileSync(resultFile, "utf8").trim().split("\n").filter(Boolean) : [];
      const byFile = new Map(lines.map((l) => JSON.parse(l)).map((r) => [relative(distDir, r.file), r]));
      resolve({
        files: job.files.map((f) => ({ ok: false, seconds: 0, ...byFile.get(f), file: f, finished: byFile.has(f) })),
        code: code ?? signal,
        seconds: (performance.now() - started) / 1000,
        output: Buffer.concat(out).toString(),
      });
    }),
  );
}

const started = performance.now();
const done = [];
const queue = jobs.map((job, i) => [job, i]);
await Promise.all(
  Array.from({ length: Math.min(concurrency, jobs.length) }, async () => {
    for (let next = queue.shift(); next; next = queue.shift()) {
      const r = await run(...next);
      done.push(r);
      const what = r.files.length === 1 ? join(distDir, r.files[0].file) : `${r.files.length} files in one process`;
      process.stdout.write(`\n── ${what} (${r.seconds.toFixed(1)} s${r.code === 0 ? "" : `, exit ${r.code}`})\n${r.output}`);
    }
  }),
);
const seconds = (performance.now() - started) / 1000;

const perFile = done.flatMap((r) => r.files);
const failed = perFile.filter((f) => !f.ok);
// A process that failed with every one of its files passed (an error outside their tests).
const broken = done.filter((r) => r.code !== 0 && r.files.every((f) => f.ok));
console.log(`\nslowest test files (wall seconds in their process, ${concurrency} processes at a time):`);
for (const f of [...perFile].sort((a, b) => b.seconds - a.seconds).slice(0, 12))
  console.log(`${f.seconds.toFixed(1).padStart(6)}  ${join(distDir, f.file)}`);
console.log(
  `\n${files.length} test files in ${jobs.length} processes in ${seconds.toFixed(1)} s, ${concurrency} at a time with ${threads} libtorch thread(s) each ` +
    `(${cores} cores; load average ${os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(", ")})`,
);
const unlisted = files.filter((f) => durations[f] === undefined);
if (unlisted.length > 0)
  console.log(
    `${unlisted.length} files are not in ${relative(root, durationsFile)}: SVDLORA_TEST_DURATIONS=write after a whole run adds them`,
  );

const left = fs.readdirSync(tmp);
fs.rmSync(tmp, { recursive: true, force: true });
fs.rmSync(results, { recursive: true, force: true });
if (left.length > 0)
  console.error(
    `the tests left ${left.length} entries in their temporary folder (each test file must remove what it makes): ${left.join(", ")}`,
  );
if (failed.length > 0)
  console.error(`failed: ${failed.map((f) => join(distDir, f.file) + (f.finished ? "" : " (did not finish)")).join(", ")}`);
for (const r of broken)
  console.error(`a process exited with ${r.code} after its files passed: ${r.files.map((f) => join(distDir, f.file)).join(", ")}`);
if (process.env.SVDLORA_TEST_DURATIONS === "write" && filters.length === 0 && failed.length + broken.length + left.length === 0) {
  const measured = Object.fromEntries(perFile.map((f) => [f.file, Math.round(f.seconds * 10) / 10]).sort(([a], [b]) => (a < b ? -1 : 1)));
  fs.writeFileSync(durationsFile, `${JSON.stringify(measured, null, 2)}\n`);
  console.log(`wrote ${relative(root, durationsFile)}`);
}
process.exit(failed.length + broken.length + left.length > 0 ? 1 : 0);
