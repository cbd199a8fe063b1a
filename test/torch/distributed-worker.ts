// A worker process for test/torch/distributed.test.ts and test/train/launch.test.ts:
// `node distributed-worker.js <scenario>` with RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT (or
// DIST_STORE_FILE) and DIST_TIMEOUT_MS in the environment. Prints one JSON line on stdout.
import * as torch from "../../src/torch/index.js";
import { distributed, fromEnv } from "../../src/torch/distributed.js";

const scenario = process.argv[2];
const env = fromEnv();
if (!env) throw new Error("worker: RANK and WORLD_SIZE are not set");
const timeoutMs = Number(process.env.DIST_TIMEOUT_MS ?? 10000);
const report = (value: unknown) => process.stdout.write(`${JSON.stringify(value)}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function init(extra: { bucketBytes?: number; storeFile?: string } = {}): void {
  if (extra.storeFile) distributed.init({ backend: "gloo", rank: env!.rank, worldSize: env!.worldSize, timeoutMs, ...extra });
  else distributed.init({ backend: "gloo", ...env!, timeoutMs, ...extra });
}

const values = (t: torch.Tensor) => Array.from(t.data() as ArrayLike<number | bigint>, Number);

// Tensors of several shapes and dtypes whose values depend on the rank; one is a transposed
// (non-contiguous) view. The test computes the expected sums from the same formula.
function rankTensors(rank: number): torch.Tensor[] {
  const r = rank + 1;
  return [
    torch.tensor([1, 2, 3].map((v) => v * r)),
    torch.tensor(
      [
        [1, 2, 3],
        [4, 5, 6],
      ].map((row) => row.map((v) => v * 10 * r)),
    ),
    torch.arange(0, 8, 1, { dtype: "float32" }).reshape(4, 1, 2).mul(r),
    torch
      .tensor(
        [
          [1, 2],
          [3, 4],
          [5, 6],
        ].map((row) => row.map((v) => v + r)),
      )
      .transpose(0, 1),
    torch.tensor([0.5 * r], { dtype: "float64" }),
    torch.tensor([r, 100 * r], { dtype: "int64" }),
    torch.zeros([0]),
  ];
}

function collectives(o: { bucketBytes?: number; storeFile?: string }): Record<string, unknown> {
  init(o);
  const out: Record<string, unknown> = {
    rank: distributed.rank,
    worldSize: distributed.worldSize,
    isMain: distributed.isMain,
    backend: distributed.backend,
  };
  const sum = rankTensors(env!.rank);
  distributed.allReduce(sum, "sum");
  out.sum = sum.map((t) => ({ shape: t.shape, values: values(t), contiguous: t.isContiguous() }));
  const avg = [torch.full([2, 2], env!.rank + 1, { dtype: "float32" }), torch.tensor([env!.rank * 3], { dtype: "float64" })];
  distributed.allReduce(avg, "avg");
  out.avg = avg.map(values);
  const mx = [torch.tensor([env!.rank, -env!.rank])];
  distributed.allReduce(mx, "max");
  const mn = [torch.tensor([env!.rank, -env!.rank])];
  distributed.allReduce(mn, "min");
  out.max = values(mx[0]);
  out.min = values(mn[0]);
  out.numbers = distributed.allReduceNumbers([env!.rank + 1, 0.25], "sum");
  const b = [torch.full([3], 10 * env!.rank), torch.full([2, 2], env!.rank, { dtype: "int64" }).transpose(0, 1)];
  distributed.broadcast(b, 1);
  out.broadcast = b.map(values);
  distributed.barrier();
  try {
    distributed.allReduce([torch.ones([2], { dtype: "int64" })], "avg");
  } catch (e) {
    out.intAvgError = (e as Error).message;
  }
  distributed.barrier();
  distributed.destroy();
  out.afterDestroy = { initialized: distributed.isInitialized, rank: distributed.rank, worldSize: distributed.worldSize };
  return out;
}

async function main(): Promise<void> {
  switch (scenario) {
    case "collectives": {
      // Twice: through the TCPStore with the default buckets, then through a FileStore with
      // 64-byte buckets (many collectives per call).
      report([collectives({}), collectives({ storeFile: process.env.DIST_STORE_FILE, bucketBytes: 64 })]);
      return;
    }
    case "exit-early": {
      init();
      if (env!.rank === 1) process.exit(0); // dies without a word to the others
      await sleep(200);
      const t0 = Date.now();
      try {
        distributed.allReduce([torch.ones([4])]);
        report({ error: null });
      } catch (e) {
        report({ error: (e as Error).message, ms: Date.now() - t0 });
      }
      return;
    }
    case "stall": {
      init();
      if (env!.rank === 1) {
        await sleep(Number(process.env.DIST_STALL_MS ?? 6000)); // alive, but never joins the all-reduce
        report({ stalled: true });
        process.exit(0);
      }
      const t0 = Date.now();
      const out: Record<string, unknown> = {};
      try {
        distributed.allReduce([torch.ones([4]), torch.ones([2, 2])]);
      } catch (e) {
        out.error = (e as Error).message;
        out.ms = Date.now() - t0;
      }
      try {
        distributed.barrier();
      } catch (e) {
        out.after = (e as Error).message;
      }
      const t1 = Date.now();
      distributed.destroy();
      out.destroyMs = Date.now() - t1;
      out.initializedAfterDestroy = distributed.isInitialized;
      report(out);
      process.exit(0);
      return;
    }
    case "launched": {
      // Started by launchWorkers: the environment it set, then a real all-reduce through it.
      init();
      const t = torch.tensor([env!.rank + 1]);
      distributed.allReduce([t]);
      distributed.barrier();
      distributed.destroy();
      report({
        rank: env!.rank,
        worldSize: env!.worldSize,
        localRank: env!.localRank,
        masterAddr: env!.masterAddr,
        masterPort: env!.masterPort,
        cudaVisibleDevices: process.env.CUDA_VISIBLE_DEVICES ?? null,
        nvls: process.env.NCCL_NVLS_ENABLE ?? null,
        args: process.argv.slice(3),
        sum: values(t)[0],
      });
      console.error(`rank ${env!.rank} done`);
      return;
    }
    case "fail-rank1": {
      if (env!.rank === 1) {
        console.error("rank 1 gives up");
        process.exit(3);
      }
      await sleep(60000);
      return;
    }
    default:
      throw new Error(`worker: unknown scenario ${scenario}`);
  }
}

await main();
