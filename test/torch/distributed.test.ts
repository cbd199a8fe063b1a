// Multi-process collectives over libtorch's c10d: two Node processes join a Gloo group through a
// TCPStore (or a FileStore) and all-reduce, broadcast and wait at barriers; a rank that dies or
// stalls gives the other a one-line error within the timeout; fromEnv checks what launchers set.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import path from "node:path";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { distributed, fromEnv } from "../../src/torch/distributed.js";
import { freePort } from "../../src/cli/launch.js";
import { tempDir } from "../helpers.js";

const worker = fileURLToPath(new URL("./distributed-worker.js", import.meta.url));
const hasGloo = distributed.backends().includes("gloo");
const skip = hasGloo ? false : "this build has no Gloo backend (install libgloo-dev and rebuild)";

interface Result {
  rank: number;
  code: number | null;
  out: Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
  stderr: string;
  ms: number;
}

/** Runs the worker scenario on `n` ranks at once; resolves with each rank's exit and JSON line. */
async function runRanks(
  scenario: string,
  n: number,
  extraEnv: Record<string, string> = {},
  o: { limitMs?: number; untilRank0Exits?: boolean } = {},
): Promise<Result[]> {
  const port = await freePort();
  const t0 = Date.now();
  const children: ReturnType<typeof spawn>[] = [];
  return Promise.all(
    Array.from({ length: n }, (_, rank) => {
      const env = {
        ...process.env,
        RANK: String(rank),
        WORLD_SIZE: String(n),
        MASTER_ADDR: "127.0.0.1",
        MASTER_PORT: String(port),
        ...extraEnv,
      };
      const child = spawn(process.execPath, [worker, scenario], { env, stdio: ["ignore", "pipe", "pipe"] });
      children.push(child);
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (d) => (stdout += d));
      child.stderr.on("data", (d) => (stderr += d));
      const killer = setTimeout(() => child.kill("SIGKILL"), o.limitMs ?? 30000);
      return new Promise<Result>((resolve) =>
        child.on("close", (code) => {
          clearTimeout(killer);
          if (rank === 0 && o.untilRank0Exits) for (const c of children) if (c !== child) c.kill("SIGKILL");
          const line = stdout.trim().split("\n").filter(Boolean).pop();
          resolve({ rank, code, out: line ? JSON.parse(line) : {}, stderr, ms: Date.now() - t0 });
        }),
      );
    }),
  );
}

// The worker's tensors for rank r (see rankTensors in distributed-worker.ts), summed over ranks.
function expectedSums(n: number): number[][] {
  const sum = (f: (r: number) => number[]) =>
    Array.from({ length: n }, (_, rank) => f(rank + 1)).reduce((a, b) => a.map((v, i) => v + b[i]));
  return [
    sum((r) => [1, 2, 3].map((v) => v * r)),
    sum((r) => [1, 2, 3, 4, 5, 6].map((v) => v * 10 * r)),
    sum((r) => [0, 1, 2, 3, 4, 5, 6, 7].map((v) => v * r)),
    sum((r) => [1, 3, 5, 2, 4, 6].map((v) => v + r)), // the transposed [[1,2],[3,4],[5,6]] + r, read row by row
    sum((r) => [0.5 * r]),
    sum((r) => [r, 100 * r]),
    [],
  ];
}

function checkCollectives(results: Result[], n: number): void {
  for (const r of results) assert.equal(r.code, 0, `rank ${r.rank} exited with ${r.code}: ${r.stderr}`);
  const sums = expectedSums(n);
  for (const { rank, out } of results) {
    assert.equal(out.rank, rank);
    assert.equal(out.worldSize, n);
    assert.equal(out.isMain, rank === 0);
    assert.equal(out.backend, "gloo");
    assert.deepEqual(
      out.sum.map((t: { values: number[] }) => t.values),
      sums,
      `rank ${rank}: all-reduced sums`,
    );
    assert.deepEqual(
      out.sum.map((t: { shape: number[] }) => t.shape),
      [[3], [2, 3], [4, 1, 2], [2, 3], [1], [2], [0]],
      "shapes are kept",
    );
    assert.equal(out.sum[3].contiguous, false, "the transposed view is written back in place");
    const meanOf = (f: (r: number) => number) => Array.from({ length: n }, (_, k) => f(k)).reduce((a, b) => a + b) / n;
    assert.deepEqual(out.avg, [Array(4).fill(meanOf((k) => k + 1)), [meanOf((k) => 3 * k)]]);
    assert.deepEqual(out.max, [n - 1, 0]);
    assert.deepEqual(out.min, [0, -(n - 1)]);
    assert.deepEqual(out.numbers, [meanOf((k) => k + 1) * n, 0.25 * n]);
    assert.deepEqual(
      out.broadcast,
      [
        [10, 10, 10],
        [1, 1, 1, 1],
      ],
      "rank 1's values everywhere",
    );
    assert.match(out.intAvgError, /^distributed: allReduce: tensor 0 is not floating-point, which 'avg' needs$/);
    assert.deepEqual(out.afterDestroy, { initialized: false, rank: 0, worldSize: 1 });
  }
}

describe("distributed (Gloo, 2 processes)", { skip }, () => {
  test("all-reduce (sum, avg, max, min) of several shapes and dtypes, broadcast and barrier; TCPStore, then FileStore with 64-byte buckets", async () => {
    const dir = tempDir("dist");
    const results = await runRanks("collectives", 2, { DIST_TIMEOUT_MS: "20000", DIST_STORE_FILE: path.join(dir, "store") });
    for (const r of results) assert.equal(r.code, 0, `rank ${r.rank} exited with ${r.code}: ${r.stderr}`);
    for (const round of [0, 1])
      checkCollectives(
        results.map((r) => ({ ...r, out: r.out[round] })),
        2,
      );
  });

  test("a rank that dies: the other gets a one-line error, not a hang", async () => {
    const [r0, r1] = await runRanks("exit-early", 2, { DIST_TIMEOUT_MS: "3000" });
    assert.equal(r1.code, 0);
    assert.equal(r0.code, 0, r0.stderr);
    const { error, ms } = r0.out;
    assert.match(
      error,
      /^distributed: allReduce on rank 0: rank 1 (closed its connection \(did a process die\?\)|did not respond within 3 s)/,
    );
    assert.ok(!error.includes("\n"), "one line");
    assert.ok(ms < 3000 + 1500, `failed after ${ms} ms`);
  });

  test("a rank that stalls: the other times out after timeoutMs, then the group is unusable", async () => {
    const [r0] = await runRanks("stall", 2, { DIST_TIMEOUT_MS: "2000", DIST_STALL_MS: "20000" }, { untilRank0Exits: true });
    assert.equal(r0.code, 0, r0.stderr);
    const o = r0.out;
    assert.equal(
      o.error,
      "distributed: allReduce on rank 0: rank 1 did not respond within 2 s (did a process die, or stop calling allReduce?)",
    );
    assert.ok(o.ms >= 1900 && o.ms < 4000, `timed out after ${o.ms} ms`);
    assert.match(
      o.after,
      /^distributed: barrier: the process group is unusable after an earlier failure \(allReduce on rank 0: rank 1 did not respond/,
    );
    assert.ok(o.destroyMs < 1000, `destroy took ${o.destroyMs} ms`);
    assert.equal(o.initializedAfterDestroy, false);
  });
});

// In this process: init blocks it, so these run one after the other.
describe("distributed (Gloo, this process)", { skip }, () => {
  test("init: a missing rank, or no store to join, fails within the timeout", async () => {
    const port = await freePort();
    // Rank 0 alone: libtorch 2.x's TCPStore waits for the workers itself; 1.13's lets the Gloo
    // rendezvous time out (after about twice the timeout).
    let t0 = Date.now();
    assert.throws(
      () => distributed.init({ backend: "gloo", rank: 0, worldSize: 2, masterAddr: "127.0.0.1", masterPort: port, timeoutMs: 1000 }),
      (e: Error) =>
        /^distributed: init on rank 0: (not every rank reached the store at 127\.0\.0\.1:\d+ within 1 s \(1\/2 joined\)|rank 1 did not join the gloo group within 1 s)/.test(
          e.message,
        ) && !e.message.includes("\n"),
    );
    assert.ok(Date.now() - t0 < 6000, `${Date.now() - t0} ms`);
    assert.equal(distributed.isInitialized, false);
    // Rank 1 with nobody serving the store: retries until the timeout, then gives up.
    t0 = Date.now();
    assert.throws(
      () => distributed.init({ backend: "gloo", rank: 1, worldSize: 2, masterAddr: "127.0.0.1", masterPort: port, timeoutMs: 1000 }),
      /^Error: distributed: init on rank 1: cannot reach the store at 127\.0\.0\.1:\d+ within 1 s \(is rank 0 running, with the same MASTER_ADDR and MASTER_PORT\?\)$/,
    );
    const ms = Date.now() - t0;
    assert.ok(ms >= 700 && ms < 4000, `${ms} ms`);
    assert.equal(distributed.isInitialized, false);
  });

  test("one process alone is a valid group", () => {
    distributed.init({
      backend: "gloo",
      rank: 0,
      worldSize: 1,
      storeFile: path.join(tempDir("dist"), "s"),
      timeoutMs: 5000,
    });
    try {
      assert.deepEqual(distributed.allReduceNumbers([3, 4], "avg"), [3, 4]);
      assert.throws(
        () => distributed.init({ backend: "gloo", rank: 0, worldSize: 1, masterAddr: "127.0.0.1", masterPort: 1 }),
        /already initialized \(rank 0 of 1\)/,
      );
      assert.throws(() => distributed.broadcast([], 1), /^Error: distributed: broadcast: root 1 is not in 0\.\.0$/);
      distributed.barrier();
    } finally {
      distributed.destroy();
    }
  });
});

test("collectives before init, bad options and unknown backends are one-line errors", () => {
  assert.equal(distributed.isInitialized, false);
  assert.equal(distributed.rank, 0);
  assert.equal(distributed.worldSize, 1);
  assert.equal(distributed.isMain, true);
  assert.throws(() => distributed.allReduce([]), /^Error: distributed: allReduce: not initialized \(call distributed\.init\(\) first\)$/);
  assert.throws(() => distributed.barrier(), /^Error: distributed: barrier: not initialized/);
  distributed.destroy(); // a no-op
  const base = { backend: "gloo" as const, masterAddr: "127.0.0.1", masterPort: 29500 };
  assert.throws(
    () => distributed.init({ ...base, rank: 2, worldSize: 2 }),
    /^Error: distributed: rank must be a whole number in 0\.\.1, got 2$/,
  );
  assert.throws(() => distributed.init({ ...base, rank: 0, worldSize: 0 }), /worldSize must be a whole number ≥ 1, got 0/);
  assert.throws(
    () => distributed.init({ ...base, rank: 0, worldSize: 1, masterPort: 70000 }),
    /masterPort must be a whole number in 1\.\.65535, got 70000/,
  );
  assert.throws(
    () => distributed.init({ ...base, backend: "mpi" as "gloo", rank: 0, worldSize: 1 }),
    /unknown backend "mpi" \(gloo or nccl\)/,
  );
  assert.throws(
    () => distributed.init({ backend: "gloo", rank: 0, worldSize: 1, timeoutMs: 1000 }),
    /init needs masterAddr and masterPort, or storeFile/,
  );
  if (!hasGloo)
    assert.throws(
      () => distributed.init({ ...base, rank: 0, worldSize: 1 }),
      /^Error: distributed: this build has no Gloo backend \(its headers were not found/,
    );
  if (!distributed.backends().includes("nccl"))
    assert.throws(
      () => distributed.init({ ...base, backend: "nccl", rank: 0, worldSize: 1 }),
      /^Error: distributed: this build has no NCCL backend/,
    );
});

describe("fromEnv", () => {
  const full = { RANK: "1", WORLD_SIZE: "4", LOCAL_RANK: "1", MASTER_ADDR: "10.0.0.2", MASTER_PORT: "29501" };

  test("reads what torchrun sets", () => {
    assert.equal(fromEnv({}), null);
    assert.deepEqual(fromEnv(full), { rank: 1, worldSize: 4, localRank: 1, localWorldSize: 4, masterAddr: "10.0.0.2", masterPort: 29501 });
    assert.deepEqual(fromEnv({ ...full, RANK: "5", WORLD_SIZE: "8", LOCAL_RANK: "1", LOCAL_WORLD_SIZE: "4" })?.localWorldSize, 4);
    assert.equal(fromEnv({ ...full, LOCAL_RANK: undefined, RANK: "3" })?.localRank, 3, "LOCAL_RANK defaults to RANK on one node");
    assert.deepEqual(fromEnv({ RANK: "0", WORLD_SIZE: "1" }), {
      rank: 0,
      worldSize: 1,
      localRank: 0,
      localWorldSize: 1,
      masterAddr: "127.0.0.1",
      masterPort: 29500,
    });
    assert.equal(distributed.fromEnv(full)?.rank, 1);
  });

  test("reads what srun sets for each of several tasks, with MASTER_ADDR and MASTER_PORT from the batch script", () => {
    const slurm = {
      SLURM_PROCID: "5",
      SLURM_NTASKS: "8",
      SLURM_LOCALID: "1",
      SLURM_TASKS_PER_NODE: "4(x2)",
      MASTER_ADDR: "node1",
      MASTER_PORT: "29400",
    };
    assert.deepEqual(fromEnv(slurm), { rank: 5, worldSize: 8, localRank: 1, localWorldSize: 4, masterAddr: "node1", masterPort: 29400 });
    assert.equal(fromEnv({ ...slurm, SLURM_NTASKS_PER_NODE: "2", SLURM_LOCALID: "1" })?.localWorldSize, 2);
    assert.equal(fromEnv({ ...slurm, SLURM_NTASKS: "1", SLURM_PROCID: "0" }), null, "one task is a plain run");
    assert.equal(fromEnv({ ...slurm, ...full })?.worldSize, 4, "torchrun's variables win (torchrun under srun)");
    assert.throws(() => fromEnv({ ...slurm, SLURM_PROCID: "8" }), /^Error: distributed: SLURM_PROCID=8 is not below SLURM_NTASKS=8$/);
    assert.throws(
      () => fromEnv({ ...slurm, MASTER_ADDR: undefined }),
      /^Error: distributed: MASTER_ADDR is not set \(SLURM_NTASKS=8 needs the address of rank 0: in the batch script, export MASTER_ADDR=\$\(scontrol show hostnames/,
    );
  });

  test("bad values are one-line errors naming the variable", () => {
    const bad: [Record<string, string | undefined>, RegExp][] = [
      [{ ...full, RANK: undefined }, /^distributed: WORLD_SIZE is set but RANK is not/],
      [{ ...full, WORLD_SIZE: undefined }, /^distributed: RANK is set but WORLD_SIZE is not/],
      [{ ...full, RANK: "one" }, /^distributed: RANK="one" is not a whole number$/],
      [{ ...full, RANK: "-1" }, /^distributed: RANK="-1" is not a whole number$/],
      [{ ...full, RANK: "1.5" }, /RANK="1\.5" is not a whole number/],
      [{ ...full, RANK: "4" }, /^distributed: RANK=4 is not below WORLD_SIZE=4$/],
      [{ ...full, WORLD_SIZE: "0" }, /^distributed: WORLD_SIZE=0 must be at least 1$/],
      [{ ...full, LOCAL_RANK: "x" }, /LOCAL_RANK="x" is not a whole number/],
      [{ ...full, LOCAL_RANK: "2", LOCAL_WORLD_SIZE: "2" }, /^distributed: LOCAL_RANK=2 is not below LOCAL_WORLD_SIZE=2$/],
      [{ ...full, LOCAL_WORLD_SIZE: "5" }, /LOCAL_WORLD_SIZE=5 must be at most 4/],
      [{ ...full, MASTER_ADDR: undefined }, /^distributed: MASTER_ADDR is not set \(WORLD_SIZE=4 needs the address of rank 0\)$/],
      [{ ...full, MASTER_PORT: undefined }, /^distributed: MASTER_PORT is not set/],
      [{ ...full, MASTER_PORT: "0" }, /^distributed: MASTER_PORT=0 must be at least 1$/],
      [{ ...full, MASTER_PORT: "65536" }, /MASTER_PORT=65536 must be at most 65535/],
      [{ ...full, MASTER_PORT: "29500x" }, /MASTER_PORT="29500x" is not a whole number/],
      [{ ...full, MASTER_ADDR: "a b" }, /MASTER_ADDR="a b" is not a host name or address/],
    ];
    for (const [env, want] of bad)
      assert.throws(
        () => fromEnv(env),
        (e: Error) => want.test(e.message) && !e.message.includes("\n"),
        `${JSON.stringify(env)} should fail with ${want}`,
      );
  });
});
