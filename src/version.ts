import { readFileSync } from "node:fs";

/** The version in package.json (dist/src/version.js sits two levels below the package root). */
export function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string };
  return pkg.version;
}
