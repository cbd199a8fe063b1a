#!/usr/bin/env node
// Entry point of the `svdlora` command; the CLI itself is TypeScript compiled to dist/.
import { existsSync } from "node:fs";

const bin = new URL("../dist/src/cli/bin.js", import.meta.url);
if (!existsSync(bin)) {
  console.error("svdlora: not built yet: run `npm run setup` in the svdlora directory");
  process.exit(1);
}
await import(bin.href);
