// Runs the compiled test files (dist/<dir>/**/*.test.js) with Node's test runner.
// Usage: node scripts/run-tests.mjs [dir=test] [name filter…]
// The tests get a temporary folder of their own (TMPDIR, so os.tmpdir() in every test process):
// whatever a test leaves there fails the run, named. The files that took longest are listed last.
import { spawnSync } from "node:child_process";
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
const tmp = fs.mkdtempSync(join(os.tmpdir(), "svdlora-tests-"));
const times = join(tmp, ".test-times.txt"); // the reporter's, not a test's
const started = performance.now();
const r = spawnSync(
  process.execPath,
  [
    "--test",
    "--test-reporter=spec",
    "--test-reporter-destination=stdout",
    `--test-reporter=${join(root, "scripts", "test-times.mjs")}`,
    `--test-reporter-destination=${times}`,
    ...files,
  ],
  { cwd: root, stdio: "inherit", env: { ...process.env, TMPDIR: tmp } },
);
const seconds = (performance.now() - started) / 1000;
if (fs.existsSync(times)) {
  const slowest = fs.readFileSync(times, "utf8").trimEnd().split("\n").slice(0, 10);
  console.log(`\nslowest test files (wall seconds):\n${slowest.join("\n")}`);
  fs.rmSync(times);
}
console.log(
  `${files.length} test files in ${seconds.toFixed(1)} s (load average ${os
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(", ")})`,
);
const left = fs.readdirSync(tmp);
fs.rmSync(tmp, { recursive: true, force: true });
if (left.length > 0) {
  console.error(
    `the tests left ${left.length} entries in their temporary folder (each test file must remove what it makes): ${left.join(", ")}`,
  );
  process.exit(1);
}
process.exit(r.status ?? 1);
