import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../../", import.meta.url));

/** The version in package.json (dist/src/version.js sits two levels below the package root). */
export function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { version: string };
  return pkg.version;
}

/** The package version, and the git commit when svdlora runs from a checkout ("0.1.0+3f2a1bc"). */
export function codeVersion(): string {
  const commit = gitCommit();
  return commit ? `${packageVersion()}+${commit.slice(0, 12)}` : packageVersion();
}

// Read from .git directly (no git process): HEAD, then the ref it names, loose or packed.
function gitCommit(): string | null {
  try {
    let gitDir = join(root, ".git");
    if (!existsSync(gitDir)) return null;
    if (statSync(gitDir).isFile())
      gitDir = readFileSync(gitDir, "utf8")
        .replace(/^gitdir:\s*/, "")
        .trim(); // a worktree
    const head = readFileSync(join(gitDir, "HEAD"), "utf8").trim();
    if (!head.startsWith("ref: ")) return head;
    const ref = head.slice(5);
    const common = existsSync(join(gitDir, "commondir")) ? join(gitDir, readFileSync(join(gitDir, "commondir"), "utf8").trim()) : gitDir;
    for (const dir of [gitDir, common]) if (existsSync(join(dir, ref))) return readFileSync(join(dir, ref), "utf8").trim();
    const packed = readFileSync(join(common, "packed-refs"), "utf8")
      .split("\n")
      .find((l) => l.endsWith(` ${ref}`));
    return packed?.split(" ")[0] ?? null;
  } catch {
    return null;
  }
}
