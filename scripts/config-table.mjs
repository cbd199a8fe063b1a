// Writes docs/config.md from the settings schemas (src/cli/config-docs.ts), after `npx tsc -p .`.
// Usage: node scripts/config-table.mjs [--check]   (--check: exit 1 when the file is not current)
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const { configDocs } = await import(join(root, "dist", "src", "cli", "config-docs.js"));
const file = join(root, "docs", "config.md");
const text = configDocs();
if (process.argv.includes("--check")) {
  let current = "";
  try {
    current = readFileSync(file, "utf8");
  } catch {}
  if (current !== text) {
    console.error("docs/config.md is not current: run node scripts/config-table.mjs");
    process.exit(1);
  }
} else {
  writeFileSync(file, text);
  console.log(`wrote ${file}`);
}
