// The Hugging Face hub cache layout, shared with huggingface_hub:
//   <cache>/models--ORG--NAME/refs/<revision>      a commit sha
//   <cache>/models--ORG--NAME/snapshots/<sha>/...  the files (usually symlinks into blobs/)
//   <cache>/models--ORG--NAME/blobs/<etag>         the content
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { writeFileAtomic } from "../util/atomic.js";
import { readInputText } from "../util/files.js";

export interface HubId {
  repoId: string;
  revision: string;
}

const hubIdPattern = /^[A-Za-z0-9][\w.-]*(\/[\w.-]+)?$/;
const commitPattern = /^[0-9a-f]{40}$/;

/** The cache root as huggingface_hub computes it. */
export function hubCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.HF_HUB_CACHE) return env.HF_HUB_CACHE;
  if (env.HUGGINGFACE_HUB_CACHE) return env.HUGGINGFACE_HUB_CACHE; // the older name
  if (env.HF_HOME) return path.join(env.HF_HOME, "hub");
  return path.join(os.homedir(), ".cache", "huggingface", "hub");
}

/** "org/name@rev" → {repoId: "org/name", revision: "rev"}; undefined when it is not a hub id. */
export function parseHubId(spec: string): HubId | undefined {
  const at = spec.indexOf("@");
  const repoId = at < 0 ? spec : spec.slice(0, at);
  const revision = at < 0 ? "main" : spec.slice(at + 1);
  if (!hubIdPattern.test(repoId) || repoId.includes("..") || repoId.includes("--")) return undefined;
  if (revision === "" || revision.includes("..") || revision.startsWith("/")) return undefined;
  return { repoId, revision };
}

/** models--org--name, as huggingface_hub names a model repo's cache folder. */
export function repoFolderName(repoId: string): string {
  return `models--${repoId.split("/").join("--")}`;
}

/**
 * The snapshot directory of a cached model at a revision (a branch/tag name from refs/, or a
 * commit sha), or undefined when it is not cached with a config.json.
 */
export function findCachedModel(id: HubId, cacheDir = hubCacheDir()): string | undefined {
  const repo = path.join(cacheDir, repoFolderName(id.repoId));
  let commit = id.revision;
  if (!commitPattern.test(commit)) {
    try {
      commit = readInputText(path.join(repo, "refs", id.revision), "hub cache ref", 1 << 10).trim();
    } catch {
      return undefined;
    }
    if (!commitPattern.test(commit)) return undefined;
  }
  const snapshot = path.join(repo, "snapshots", commit);
  return fs.existsSync(path.join(snapshot, "config.json")) ? snapshot : undefined;
}

/** Records that a revision name points at a commit (refs/<revision>), as huggingface_hub does. */
export function writeRef(id: HubId, commit: string, cacheDir: string): void {
  if (id.revision === commit) return;
  const ref = path.join(cacheDir, repoFolderName(id.repoId), "refs", id.revision);
  fs.mkdirSync(path.dirname(ref), { recursive: true });
  writeFileAtomic(ref, commit);
}
