// --base-model resolution: a local directory, or a hub id ("org/name[@revision]") found in the
// Hugging Face cache (the layout huggingface_hub writes, so models downloaded by Python tools are
// reused as they are), or downloaded into that cache when the hub is reachable.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { displayPath, readInputText } from "../util/files.js";
import { downloadSnapshot } from "./hub-download.js";
import { findCachedModel, hubCacheDir, parseHubId } from "./hub-cache.js";

export { type HubId, findCachedModel, hubCacheDir, parseHubId, repoFolderName } from "./hub-cache.js";

export interface HubOptions {
  /** The hub cache root; default from HF_HUB_CACHE / HF_HOME / ~/.cache/huggingface/hub. */
  cacheDir?: string;
  /** Never touch the network (also set by HF_HUB_OFFLINE=1). */
  offline?: boolean;
  /** Bearer token for gated/private repos; default HF_TOKEN or the token saved by `huggingface-cli login`. */
  token?: string;
  /** The hub address; default HF_ENDPOINT or https://huggingface.co. */
  endpoint?: string;
  /** Progress lines while downloading. */
  log?: (line: string) => void;
}

const looksLikePath = (spec: string) => spec.startsWith(".") || spec.startsWith("/") || spec.startsWith("~") || path.isAbsolute(spec);

/** A local directory or a cached hub id → the model directory, without the network. */
export function resolveBaseModelLocally(spec: string, options: HubOptions = {}): string | undefined {
  const local = spec.startsWith("~/") ? path.join(os.homedir(), spec.slice(2)) : spec;
  if (fs.existsSync(local)) {
    if (!fs.statSync(local).isDirectory())
      throw new Error(`--base-model ${displayPath(spec)}: is a file; give the model's directory (with config.json)`);
    return local;
  }
  if (looksLikePath(spec)) throw new Error(`--base-model ${displayPath(spec)}: no such directory`);
  const id = parseHubId(spec);
  if (!id)
    throw new Error(`--base-model ${displayPath(spec)}: neither a directory nor a hub id like Qwen/Qwen2.5-0.5B-Instruct[@revision]`);
  return findCachedModel(id, options.cacheDir ?? hubCacheDir());
}

/**
 * Resolves --base-model to a directory: a local directory, a hub id in the HF cache, or (when
 * online) a hub id downloaded into the cache. The download path is real code but cannot be
 * exercised in our offline CI against huggingface.co; tests drive it against a local HTTP server.
 */
export async function resolveBaseModel(spec: string, options: HubOptions = {}): Promise<string> {
  const found = resolveBaseModelLocally(spec, options);
  if (found) return found;
  const id = parseHubId(spec)!;
  const cacheDir = options.cacheDir ?? hubCacheDir();
  if (options.offline ?? isTruthy(process.env.HF_HUB_OFFLINE)) {
    throw new Error(
      `--base-model ${displayPath(spec)}: not in the local cache (${displayPath(cacheDir)}) and HF_HUB_OFFLINE is set; download it where there is network or pass a local directory`,
    );
  }
  return downloadSnapshot(id, {
    cacheDir,
    endpoint: (options.endpoint ?? process.env.HF_ENDPOINT ?? "https://huggingface.co").replace(/\/+$/, ""),
    token: options.token ?? hubToken(),
    log: options.log ?? (() => {}),
  });
}

/** HF_TOKEN (or the legacy name), else the token file `huggingface-cli login` writes. */
export function hubToken(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const fromEnv = env.HF_TOKEN ?? env.HUGGING_FACE_HUB_TOKEN;
  if (fromEnv) return fromEnv.trim();
  const file = env.HF_TOKEN_PATH ?? path.join(env.HF_HOME ?? path.join(os.homedir(), ".cache", "huggingface"), "token");
  try {
    return readInputText(file, "token file", 1 << 16).trim() || undefined; // a FIFO or device there is ignored, not waited on
  } catch {
    return undefined;
  }
}

const isTruthy = (v: string | undefined) => v !== undefined && ["1", "true", "yes", "on"].includes(v.toLowerCase());
