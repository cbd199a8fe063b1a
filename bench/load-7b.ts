// Times loading a (sharded) Hugging Face checkpoint into a frozen CausalLM with loadCausalLM, as
// `svdlora train --base-model DIR --device cuda` does, and prints one JSON line.
//   node dist/bench/load-7b.js MODEL_DIR [cuda|cpu] [--dtype bfloat16] [--drop-cache]
// MODEL_DIR: e.g. one written by `python3 bench/write_checkpoint_7b.py /tmp/qwen7b-random`.
// Page cache: right after the checkpoint is written (or read), its shards are in the OS page cache
// and a load reads memory, not disk ("page_cache": "as found"). --drop-cache first asks the kernel
// to drop the shards' cached pages (fsync + posix_fadvise DONTNEED, through python3; no root needed,
// but pages other processes map stay): a cold-ish load from the disk. Root can instead run
// `sync; echo 1 > /proc/sys/vm/drop_caches` before a plain run.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { INDEX_FILE, SINGLE_FILE } from "../src/hf/checkpoint.js";
import { loadCausalLM } from "../src/model/loader.js";
import * as torch from "../src/torch/index.js";

torch.tuneHostAllocator(); // as the svdlora command does

const args = process.argv.slice(2);
const flag = (name: string) => {
  const i = args.indexOf(name);
  if (i < 0) return false;
  args.splice(i, 1);
  return true;
};
const option = (name: string, fallback: string) => {
  const i = args.indexOf(name);
  if (i < 0) return fallback;
  const [, value] = args.splice(i, 2);
  if (value === undefined) throw new Error(`${name} needs a value`);
  return value;
};
const dropCache = flag("--drop-cache");
const dtype = option("--dtype", "bfloat16") as torch.DType;
const [dir, deviceArg = "cuda"] = args;
if (!dir) {
  console.error("usage: node dist/bench/load-7b.js MODEL_DIR [cuda|cpu] [--dtype bfloat16] [--drop-cache]");
  process.exit(2);
}
const device = deviceArg === "cuda" ? "cuda:0" : deviceArg;
const onCuda = device.startsWith("cuda");

const shardFiles = fs.existsSync(path.join(dir, INDEX_FILE))
  ? [...new Set(Object.values(JSON.parse(fs.readFileSync(path.join(dir, INDEX_FILE), "utf8")).weight_map as Record<string, string>))]
  : [SINGLE_FILE];
const shardPaths = shardFiles.map((f) => path.join(dir, f));
const bytes = shardPaths.reduce((n, p) => n + fs.statSync(p).size, 0);

if (dropCache) {
  const py =
    "import os, sys\nfor f in sys.argv[1:]:\n  fd = os.open(f, os.O_RDONLY); os.fsync(fd); os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED); os.close(fd)";
  const r = spawnSync("python3", ["-c", py, ...shardPaths], { stdio: ["ignore", "inherit", "inherit"] });
  if (r.status !== 0) throw new Error(`--drop-cache: python3 posix_fadvise failed (${r.error?.message ?? `exit ${r.status}`})`);
}

// CUDA's context and allocator start outside the timed part, as they would before any real load
let cudaInitS: number | null = null;
if (onCuda) {
  const t = performance.now();
  torch.zeros([1], { device }).dispose();
  torch.cuda.synchronize();
  cudaInitS = (performance.now() - t) / 1000;
}
const gib = (n: number) => Number((n / 2 ** 30).toFixed(2));
const rssBefore = process.memoryUsage().rss;
const allocatedBefore = onCuda ? torch.cuda.memory().allocated : 0;

const t0 = performance.now();
const model = loadCausalLM(dir, { dtype, device });
if (onCuda) torch.cuda.synchronize();
const seconds = (performance.now() - t0) / 1000;

const params = [...model.namedWeights()].reduce((n, [, t]) => n + t.numel(), 0);
console.log(
  JSON.stringify({
    side: "svdlora",
    what: "load_7b_sharded",
    dir,
    device,
    dtype,
    seconds: Number(seconds.toFixed(2)),
    gb_per_s: Number((bytes / seconds / 1e9).toFixed(2)),
    checkpoint_gib: gib(bytes),
    shards: shardFiles.length,
    params,
    gib_on_gpu: onCuda ? gib(torch.cuda.memory().allocated - allocatedBefore) : null,
    host_rss_before_gib: gib(rssBefore),
    host_max_rss_gib: gib(process.resourceUsage().maxRSS * 1024),
    page_cache: dropCache ? "dropped (posix_fadvise DONTNEED)" : "as found",
    cuda_init_s: cudaInitS === null ? null : Number(cudaInitS.toFixed(2)),
    gpu: onCuda ? (torch.cuda.devices()[0]?.name ?? null) : null,
    torch: torch.buildInfo().torchVersion,
  }),
);
