// Runs the compiled test files (dist/<dir>/**/*.test.js) with Node's test runner.
// Usage: node scripts/run-tests.mjs [dir=test] [name filter…]
import { spawnSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const [dir = "test", ...filters] = process.argv.slice(2);
const files = readdirSync(join(root, "dist", dir), { recursive: true })
  .map(String)
  .filter((f) => f.endsWith(".test.js") && (filters.length === 0 || filters.some((w) => f.includes(w))))
  .sort()
  .map((f) => join("dist", dir, f));
if (files.length === 0) {
  console.error(`no test files under dist/${dir} match ${filters.join(" ") || "*.test.js"}`);
  process.exit(1);
}
const r = spawnSync(process.execPath, ["--test", "--test-reporter=spec", ...files], { cwd: root, stdio: "inherit" });
process.exit(r.status ?? 1);
