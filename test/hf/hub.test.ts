import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import { SafetensorsCheckpoint } from "../../src/hf/checkpoint.js";
import { findCachedModel, hubCacheDir, parseHubId, repoFolderName, resolveBaseModel, resolveBaseModelLocally } from "../../src/hf/hub.js";
import { f32Bytes, safetensorsBytes, tempDir } from "./fixtures.js";

const SHA = "0123456789abcdef0123456789abcdef01234567";
const OTHER_SHA = "fedcba9876543210fedcba9876543210fedcba98";

/** A cache laid out as huggingface_hub leaves it: refs, blobs, and symlinked snapshot files. */
function fakeCache(root: string): string {
  const repo = path.join(root, "hub", repoFolderName("Qwen/Tiny-Math"));
  fs.mkdirSync(path.join(repo, "refs"), { recursive: true });
  fs.mkdirSync(path.join(repo, "blobs"));
  fs.writeFileSync(path.join(repo, "refs", "main"), SHA); // huggingface_hub writes no newline
  fs.writeFileSync(path.join(repo, "refs", "v1"), `${OTHER_SHA}\n`);
  for (const sha of [SHA, OTHER_SHA]) {
    const blob = path.join(repo, "blobs", `etag-${sha}`);
    fs.writeFileSync(blob, JSON.stringify({ model_type: "qwen2", revision: sha }));
    fs.mkdirSync(path.join(repo, "snapshots", sha), { recursive: true });
    fs.symlinkSync(path.join("..", "..", "blobs", `etag-${sha}`), path.join(repo, "snapshots", sha, "config.json"));
  }
  return path.join(root, "hub");
}

describe("hub ids and the cache location", () => {
  it("finds the cache root as huggingface_hub does", () => {
    assert.equal(hubCacheDir({ HF_HUB_CACHE: "/a", HF_HOME: "/b" }), "/a");
    assert.equal(hubCacheDir({ HF_HOME: "/b" }), "/b/hub");
    assert.match(hubCacheDir({}), /\.cache\/huggingface\/hub$/);
  });

  it("parses ids with and without a revision, and rejects what is not an id", () => {
    assert.deepEqual(parseHubId("Qwen/Qwen2.5-Math-7B-Instruct"), { repoId: "Qwen/Qwen2.5-Math-7B-Instruct", revision: "main" });
    assert.deepEqual(parseHubId("Qwen/Tiny@v1.0"), { repoId: "Qwen/Tiny", revision: "v1.0" });
    assert.deepEqual(parseHubId("gpt2"), { repoId: "gpt2", revision: "main" });
    for (const bad of ["a/b/c", "../x", "org/..", "org/na--me", "org/name@", "org/name@../../x", "", "/abs/path"]) {
      assert.equal(parseHubId(bad), undefined, bad);
    }
    assert.equal(repoFolderName("Qwen/Qwen2.5-Math-7B-Instruct"), "models--Qwen--Qwen2.5-Math-7B-Instruct");
  });
});

describe("resolving --base-model from the cache", () => {
  const root = tempDir();
  const cacheDir = fakeCache(root);
  const snapshot = (sha: string) => path.join(cacheDir, "models--Qwen--Tiny-Math", "snapshots", sha);

  it("follows refs/main, a named ref, or a commit sha to the snapshot", () => {
    assert.equal(findCachedModel({ repoId: "Qwen/Tiny-Math", revision: "main" }, cacheDir), snapshot(SHA));
    assert.equal(findCachedModel({ repoId: "Qwen/Tiny-Math", revision: "v1" }, cacheDir), snapshot(OTHER_SHA));
    assert.equal(findCachedModel({ repoId: "Qwen/Tiny-Math", revision: OTHER_SHA }, cacheDir), snapshot(OTHER_SHA));
    const config = JSON.parse(fs.readFileSync(path.join(snapshot(SHA), "config.json"), "utf8"));
    assert.equal(config.revision, SHA, "the symlink resolves into blobs/");
  });

  it("treats unknown repos, refs and incomplete snapshots as not cached", () => {
    assert.equal(findCachedModel({ repoId: "Qwen/Other", revision: "main" }, cacheDir), undefined);
    assert.equal(findCachedModel({ repoId: "Qwen/Tiny-Math", revision: "v2" }, cacheDir), undefined);
    assert.equal(findCachedModel({ repoId: "Qwen/Tiny-Math", revision: "a".repeat(40) }, cacheDir), undefined);
    const repo = path.join(cacheDir, "models--Qwen--Partial");
    fs.mkdirSync(path.join(repo, "snapshots", SHA), { recursive: true });
    fs.mkdirSync(path.join(repo, "refs"));
    fs.writeFileSync(path.join(repo, "refs", "main"), SHA);
    fs.writeFileSync(path.join(repo, "snapshots", SHA, "tokenizer.json"), "{}");
    assert.equal(findCachedModel({ repoId: "Qwen/Partial", revision: "main" }, cacheDir), undefined, "no config.json yet");
    fs.writeFileSync(path.join(repo, "refs", "main"), "not a sha");
    assert.equal(findCachedModel({ repoId: "Qwen/Partial", revision: "main" }, cacheDir), undefined);
  });

  it("prefers a local directory, and resolves hub ids and @revisions in the cache", async () => {
    const local = path.join(root, "my-model");
    fs.mkdirSync(local);
    assert.equal(resolveBaseModelLocally(local, { cacheDir }), local);
    assert.equal(await resolveBaseModel("Qwen/Tiny-Math", { cacheDir, offline: true }), snapshot(SHA));
    assert.equal(await resolveBaseModel("Qwen/Tiny-Math@v1", { cacheDir, offline: true }), snapshot(OTHER_SHA));
    const saved = process.env.HF_HUB_CACHE;
    process.env.HF_HUB_CACHE = cacheDir;
    try {
      assert.equal(resolveBaseModelLocally("Qwen/Tiny-Math"), snapshot(SHA), "HF_HUB_CACHE is honoured");
    } finally {
      if (saved === undefined) delete process.env.HF_HUB_CACHE;
      else process.env.HF_HUB_CACHE = saved;
    }
  });

  it("gives clear errors for missing paths, files, non-ids and offline misses", async () => {
    assert.throws(() => resolveBaseModelLocally("./no/such/dir", { cacheDir }), /--base-model \.\/no\/such\/dir: no such directory/);
    const file = path.join(root, "file.txt");
    fs.writeFileSync(file, "");
    assert.throws(() => resolveBaseModelLocally(file, { cacheDir }), /is a file; give the model's directory/);
    assert.throws(() => resolveBaseModelLocally("a/b/c", { cacheDir }), /neither a directory nor a hub id/);
    await assert.rejects(
      resolveBaseModel("Qwen/Missing", { cacheDir, offline: true }),
      /Qwen\/Missing: not in the local cache .* and HF_HUB_OFFLINE is set/,
    );
  });

  it("fails with one line when the hub is unreachable", async () => {
    const server = http.createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as AddressInfo;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await assert.rejects(
      resolveBaseModel("Qwen/Missing", { cacheDir, offline: false, endpoint: `http://127.0.0.1:${port}` }),
      (error: Error) => {
        assert.match(error.message, /^--base-model Qwen\/Missing@main: not in the local cache and the hub is unreachable: ECONNREFUSED/);
        assert.ok(!error.message.includes("\n"));
        return true;
      },
    );
  });
});

/**
 * A stand-in for huggingface.co's resolve endpoint: regular files answer HEAD with ETag and
 * X-Repo-Commit; LFS files (*.safetensors) answer 302 to a CDN path with X-Linked-Etag/-Size.
 */
function fakeHub(repos: Record<string, Record<string, Buffer>>, commit: string) {
  const requests: { method: string; url: string; auth: string | undefined }[] = [];
  const server = http.createServer((req, res) => {
    requests.push({ method: req.method!, url: req.url!, auth: req.headers.authorization });
    if (req.headers.authorization === "Bearer wrong") return res.writeHead(401).end();
    const cdn = /^\/cdn\/(.+)$/.exec(req.url!);
    if (cdn) {
      const blob = Object.values(repos)
        .flatMap((files) => Object.values(files))
        .find((b) => sha256(b) === cdn[1]);
      return blob
        ? res.writeHead(200, { "content-length": blob.length }).end(req.method === "HEAD" ? undefined : blob)
        : res.writeHead(404).end();
    }
    const m = /^\/(.+?\/.+?)\/resolve\/([^/]+)\/(.+)$/.exec(req.url!);
    const file = m && (m[2] === "main" || m[2] === commit) ? repos[m[1]]?.[m[3]] : undefined;
    if (!file) return res.writeHead(404, { "x-error-code": "EntryNotFound" }).end();
    if (m![3].endsWith(".safetensors")) {
      return res
        .writeHead(302, {
          location: `/cdn/${sha256(file)}`,
          "x-repo-commit": commit,
          "x-linked-etag": `"${sha256(file)}"`,
          "x-linked-size": file.length,
        })
        .end();
    }
    res.writeHead(200, { "x-repo-commit": commit, etag: `"${sha1(file)}"`, "content-length": file.length });
    res.end(req.method === "HEAD" ? undefined : file);
  });
  return { server, requests };
}
const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");
const sha1 = (b: Buffer) => createHash("sha1").update(b).digest("hex");

describe("downloading into the cache (against a local fake hub)", () => {
  const shard1 = safetensorsBytes(JSON.stringify({ a: { dtype: "F32", shape: [2], data_offsets: [0, 8] } }), f32Bytes(1, 2));
  const shard2 = safetensorsBytes(JSON.stringify({ b: { dtype: "F32", shape: [1], data_offsets: [0, 4] } }), f32Bytes(3));
  const config = Buffer.from(JSON.stringify({ model_type: "qwen2" }));
  const hub = fakeHub(
    {
      "org/sharded": {
        "config.json": config,
        "tokenizer.json": Buffer.from("{}"),
        "model.safetensors.index.json": Buffer.from(
          JSON.stringify({ weight_map: { a: "model-00001-of-00002.safetensors", b: "model-00002-of-00002.safetensors" } }),
        ),
        "model-00001-of-00002.safetensors": shard1,
        "model-00002-of-00002.safetensors": shard2,
      },
      "org/single": { "config.json": config, "model.safetensors": shard1 },
      "org/nopickle": { "config.json": config, "pytorch_model.bin": Buffer.from("x") },
    },
    SHA,
  );
  let endpoint = "";
  before(async () => {
    await new Promise<void>((resolve) => hub.server.listen(0, "127.0.0.1", resolve));
    endpoint = `http://127.0.0.1:${(hub.server.address() as AddressInfo).port}`;
  });
  after(() => hub.server.close());
  const cacheDir = path.join(tempDir(), "hub");

  it("downloads a sharded model into blobs/ + snapshots/ + refs/, sending the token", async () => {
    const lines: string[] = [];
    const dir = await resolveBaseModel("org/sharded", { cacheDir, endpoint, token: "secret", offline: false, log: (l) => lines.push(l) });
    const repo = path.join(cacheDir, "models--org--sharded");
    assert.equal(dir, path.join(repo, "snapshots", SHA));
    assert.equal(fs.readFileSync(path.join(repo, "refs", "main"), "utf8"), SHA);
    assert.deepEqual(fs.readdirSync(dir).sort(), [
      "config.json",
      "model-00001-of-00002.safetensors",
      "model-00002-of-00002.safetensors",
      "model.safetensors.index.json",
      "tokenizer.json",
    ]);
    assert.equal(fs.readlinkSync(path.join(dir, "model-00002-of-00002.safetensors")), path.join("..", "..", "blobs", sha256(shard2)));
    assert.ok(fs.existsSync(path.join(repo, "blobs", sha1(config))), "regular files are stored under their git ETag");
    assert.deepEqual(
      fs.readdirSync(path.join(repo, "blobs")).filter((f) => f.includes(".tmp")),
      [],
      "no temp files left",
    );
    const ckpt = SafetensorsCheckpoint.open(dir);
    const b = ckpt.read("b");
    assert.deepEqual(b.toArray(), [3]);
    b.dispose();
    ckpt.close();
    assert.ok(hub.requests.every((r) => r.url.startsWith("/cdn/") || r.auth === "Bearer secret"));
    assert.ok(
      hub.requests.some((r) => r.url === `/org/sharded/resolve/${SHA}/model-00001-of-00002.safetensors`),
      "files after the first are pinned to the commit",
    );
    assert.ok(lines.some((l) => /downloading org\/sharded\/model-00001-of-00002.safetensors/.test(l)));

    const count = hub.requests.length;
    assert.equal(await resolveBaseModel("org/sharded", { cacheDir, endpoint, offline: false }), dir);
    assert.equal(hub.requests.length, count, "a cached model needs no request");
  });

  it("downloads a single-file model, and reports pickle-only repos, missing repos and refused tokens", async () => {
    const dir = await resolveBaseModel("org/single", { cacheDir, endpoint, offline: false });
    assert.deepEqual(fs.readdirSync(dir).sort(), ["config.json", "model.safetensors"]);
    await assert.rejects(
      resolveBaseModel("org/nopickle", { cacheDir, endpoint, offline: false }),
      /has no model.safetensors or model.safetensors.index.json/,
    );
    await assert.rejects(resolveBaseModel("org/absent", { cacheDir, endpoint, offline: false }), /org\/absent@main: not found on the hub/);
    await assert.rejects(
      resolveBaseModel("org/other", { cacheDir, endpoint, token: "wrong", offline: false }),
      /refused access \(HTTP 401\).*set HF_TOKEN/,
    );
  });
});
