// Downloading a model snapshot into the HF cache layout, as huggingface_hub does: metadata from a
// HEAD request without following redirects (X-Repo-Commit, X-Linked-Etag), content streamed into
// blobs/<etag> through a temp file, and snapshots/<sha>/<file> as a relative symlink to the blob.
// Only ever run where huggingface.co is reachable; tests point HF_ENDPOINT at a local server.
import * as fs from "node:fs";
import * as path from "node:path";
import { fsyncDirectory, tempPathFor } from "../util/atomic.js";
import { type HubId, repoFolderName, writeRef } from "./hub-cache.js";

export interface DownloadOptions {
  cacheDir: string;
  endpoint: string;
  token: string | undefined;
  log: (line: string) => void;
}

const MODEL_FILES = [
  "config.json",
  "generation_config.json",
  "tokenizer.json",
  "tokenizer_config.json",
  "special_tokens_map.json",
  "vocab.json",
  "merges.txt",
];
const REQUIRED = new Set(["config.json"]);

interface FileMeta {
  commit: string | undefined;
  etag: string;
  size: number | undefined;
}

/** Downloads config, tokenizer and safetensors weights of a model; returns the snapshot dir. */
export async function downloadSnapshot(id: HubId, o: DownloadOptions): Promise<string> {
  const spec = `${id.repoId}@${id.revision}`;
  const config = await headOrThrow(id, "config.json", o, spec);
  const commit = config?.commit ?? (/^[0-9a-f]{40}$/.test(id.revision) ? id.revision : undefined);
  if (!config || !commit)
    throw new Error(
      `${spec}: the hub did not say which commit "${id.revision}" is (no X-Repo-Commit header); pass a local directory instead`,
    );
  const repoDir = path.join(o.cacheDir, repoFolderName(id.repoId));
  const snapshot = path.join(repoDir, "snapshots", commit);
  // pin every later request to the commit, so a push in between cannot mix two versions
  const pinned: HubId = { repoId: id.repoId, revision: commit };

  const files = new Map<string, FileMeta>([["config.json", config]]);
  for (const name of MODEL_FILES.slice(1)) {
    const meta = await headOrThrow(pinned, name, o, spec);
    if (meta) files.set(name, meta);
  }
  const index = await headOrThrow(pinned, "model.safetensors.index.json", o, spec);
  if (index) {
    await fetchIntoCache(pinned, "model.safetensors.index.json", index, repoDir, snapshot, o);
    const weightMap = JSON.parse(fs.readFileSync(path.join(snapshot, "model.safetensors.index.json"), "utf8")).weight_map ?? {};
    for (const shard of new Set(Object.values(weightMap) as string[])) {
      if (shard !== path.basename(shard)) throw new Error(`${spec}: the index names shard ${JSON.stringify(shard)} outside the snapshot`);
      const meta = await headOrThrow(pinned, shard, o, spec);
      if (!meta) throw new Error(`${spec}: shard ${shard} is listed in the index but not on the hub`);
      files.set(shard, meta);
    }
  } else {
    const single = await headOrThrow(pinned, "model.safetensors", o, spec);
    if (!single)
      throw new Error(
        `${spec}: the repository has no model.safetensors or model.safetensors.index.json (svdlora reads safetensors weights only)`,
      );
    files.set("model.safetensors", single);
  }
  for (const [name, meta] of files) await fetchIntoCache(pinned, name, meta, repoDir, snapshot, o);
  writeRef(id, commit, o.cacheDir);
  return snapshot;
}

function fileUrl(id: HubId, file: string, o: DownloadOptions): string {
  return `${o.endpoint}/${id.repoId}/resolve/${encodeURIComponent(id.revision)}/${file}`;
}

function headers(o: DownloadOptions): Record<string, string> {
  return o.token ? { authorization: `Bearer ${o.token}`, "user-agent": "svdlora" } : { "user-agent": "svdlora" };
}

/** fetch, with network failures turned into the one line a user needs. */
async function request(url: string, init: RequestInit, spec: string): Promise<Response> {
  try {
    return await fetch(url, init);
  } catch (error) {
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    const why = cause?.code ?? cause?.message ?? (error as Error).message;
    throw new Error(
      `--base-model ${spec}: not in the local cache and the hub is unreachable: ${why} (${url}); download it where there is network or pass a local directory`,
    );
  }
}

/** Metadata of one file, or undefined when the repository does not have it (404). */
async function headOrThrow(id: HubId, file: string, o: DownloadOptions, spec: string): Promise<FileMeta | undefined> {
  const url = fileUrl(id, file, o);
  const init: RequestInit = { method: "HEAD", headers: { ...headers(o), "accept-encoding": "identity" }, redirect: "manual" };
  let res = await request(url, init, spec);
  // LFS files answer 302 to the CDN carrying the metadata; other redirects (renamed repos) are followed
  if (res.status >= 300 && res.status < 400 && !res.headers.has("x-linked-etag"))
    res = await request(url, { ...init, redirect: "follow" }, spec);
  if (res.status === 404) {
    // a 404 on config.json means the repository (or revision) itself is missing
    if (REQUIRED.has(file))
      throw new Error(`--base-model ${spec}: not found on the hub (no ${file} at revision ${id.revision}); check the id and revision`);
    return undefined;
  }
  if (res.status === 401 || res.status === 403) {
    throw new Error(
      `--base-model ${spec}: the hub refused access (HTTP ${res.status}); for gated or private models accept the license on huggingface.co and set HF_TOKEN`,
    );
  }
  if (res.status >= 400) throw new Error(`--base-model ${spec}: the hub answered HTTP ${res.status} for ${file}`);
  const etag = (res.headers.get("x-linked-etag") ?? res.headers.get("etag") ?? "").replace(/^W\//, "").replace(/"/g, "");
  if (!/^[\w.-]+$/.test(etag)) throw new Error(`--base-model ${spec}: the hub sent no usable ETag for ${file}`);
  const size = Number(res.headers.get("x-linked-size") ?? (res.status === 200 ? res.headers.get("content-length") : null) ?? NaN);
  return { commit: res.headers.get("x-repo-commit") ?? undefined, etag, size: Number.isFinite(size) ? size : undefined };
}

/** Streams a file into blobs/<etag> (skipped when already there) and links it into the snapshot. */
async function fetchIntoCache(
  id: HubId,
  file: string,
  meta: FileMeta,
  repoDir: string,
  snapshot: string,
  o: DownloadOptions,
): Promise<void> {
  const blob = path.join(repoDir, "blobs", meta.etag);
  const link = path.join(snapshot, file);
  if (fs.existsSync(link)) return;
  fs.mkdirSync(path.dirname(blob), { recursive: true });
  if (!fs.existsSync(blob)) {
    o.log(`downloading ${id.repoId}/${file}${meta.size ? ` (${(meta.size / 2 ** 20).toFixed(1)} MiB)` : ""}`);
    const res = await request(fileUrl(id, file, o), { headers: headers(o) }, `${id.repoId}@${id.revision}`);
    if (!res.ok || !res.body) throw new Error(`${id.repoId}: downloading ${file} failed with HTTP ${res.status}`);
    await streamToFileAtomic(res.body, blob, meta.size, file);
  }
  fs.mkdirSync(snapshot, { recursive: true });
  try {
    fs.symlinkSync(path.relative(snapshot, blob), link);
  } catch {
    fs.copyFileSync(blob, link); // file systems without symlinks: huggingface_hub copies too
  }
}

async function streamToFileAtomic(
  body: ReadableStream<Uint8Array>,
  target: string,
  expectedSize: number | undefined,
  file: string,
): Promise<void> {
  const temp = tempPathFor(target);
  const handle = await fs.promises.open(temp, "wx");
  try {
    let written = 0;
    for await (const chunk of body as unknown as AsyncIterable<Uint8Array>) {
      await handle.write(chunk);
      written += chunk.length;
    }
    if (expectedSize !== undefined && written !== expectedSize)
      throw new Error(`downloading ${file}: got ${written} bytes, expected ${expectedSize} (connection dropped?); run again to retry`);
    await handle.sync();
    await handle.close();
    fs.renameSync(temp, target);
    fsyncDirectory(path.dirname(target));
  } catch (error) {
    await handle.close().catch(() => {});
    fs.rmSync(temp, { force: true });
    throw error;
  }
}
