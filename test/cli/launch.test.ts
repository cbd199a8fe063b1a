// The multi-GPU launcher: --gpus parsing, each rank's share of the batches, and launchWorkers
// end to end on the CPU (two workers that join a Gloo group through the variables it sets).
import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { distributed } from "../../src/torch/distributed.js";
import { LaunchError, freePort, gpusFlag, launchPlan, launchWorkers, shardIndices, withoutGpusFlag } from "../../src/cli/launch.js";

const worker = fileURLToPath(new URL("../torch/distributed-worker.js", import.meta.url));

class Capture extends Writable {
  text = "";
  _write(chunk: Buffer, _enc: BufferEncoding, done: () => void): void {
    this.text += chunk.toString();
    done();
  }
}

test("--gpus N and --gpus=N are found and taken out of the workers' arguments", () => {
  assert.equal(gpusFlag(["train", "--epochs", "2"]), null);
  assert.equal(gpusFlag(["train", "--gpus", "4", "--epochs", "2"]), 4);
  assert.equal(gpusFlag(["train", "--gpus=2"]), 2);
  assert.equal(gpusFlag(["train", "--", "--gpus", "3"]), null, "after -- it is not ours");
  assert.throws(() => gpusFlag(["--gpus", "0"]), /^Error: --gpus must be a whole number ≥ 1, got "0"$/);
  assert.throws(() => gpusFlag(["--gpus", "two"]), /--gpus must be a whole number ≥ 1, got "two"/);
  assert.throws(() => gpusFlag(["--gpus"]), /--gpus must be a whole number ≥ 1, got ""/);
  assert.deepEqual(withoutGpusFlag(["train", "--gpus", "4", "--epochs", "2", "--gpus=3", "--", "--gpus", "1"]), [
    "train",
    "--epochs",
    "2",
    "--",
    "--gpus",
    "1",
  ]);
});

describe("launchPlan", () => {
  const twoMachines = { NNODES: "2", NODE_RANK: "1", MASTER_ADDR: "10.0.0.2", MASTER_PORT: "29400" };
  // What svdlora's launcher (or torchrun --nnodes 2 --nproc-per-node 2) sets for rank 3.
  const worker = { ...twoMachines, RANK: "3", WORLD_SIZE: "4", LOCAL_RANK: "1", LOCAL_WORLD_SIZE: "2", GROUP_RANK: "1" };

  test("one process alone, --gpus N on one machine, and one machine of several", () => {
    assert.equal(launchPlan(null, {}), null);
    assert.equal(launchPlan(1, {}), null);
    assert.deepEqual(launchPlan(4, {}), { gpus: 4, nodes: 1, nodeRank: 0, master: null });
    assert.deepEqual(launchPlan(2, twoMachines), { gpus: 2, nodes: 2, nodeRank: 1, master: { addr: "10.0.0.2", port: 29400 } });
    assert.deepEqual(launchPlan(null, twoMachines)?.gpus, 1, "one worker per machine without --gpus");
    assert.deepEqual(launchPlan(3, { NNODES: "1" }), { gpus: 3, nodes: 1, nodeRank: 0, master: null });
  });

  test("a process that torchrun, srun or this launcher started starts nothing", () => {
    assert.equal(launchPlan(null, worker), null);
    assert.equal(launchPlan(2, worker), null, "--gpus equal to the processes on this machine");
    assert.equal(launchPlan(null, { SLURM_PROCID: "1", SLURM_NTASKS: "2", MASTER_ADDR: "n1", MASTER_PORT: "29400" }), null);
  });

  test("inconsistent variables are one-line errors", () => {
    const bad: [number | null, Record<string, string>, RegExp][] = [
      [null, { NODE_RANK: "1" }, /^NODE_RANK=1 is set but NNODES is not: set NNODES to the number of machines$/],
      [null, { ...twoMachines, NODE_RANK: "2" }, /^NODE_RANK=2 is not below NNODES=2$/],
      [
        null,
        { ...twoMachines, NODE_RANK: "" },
        /^NNODES=2 needs NODE_RANK on each machine: 0 on the one at MASTER_ADDR, 1 to 1 on the others$/,
      ],
      [null, { ...twoMachines, MASTER_PORT: "" }, /^NNODES=2 needs MASTER_ADDR and MASTER_PORT, the same on every machine/],
      [null, { ...twoMachines, NNODES: "two" }, /^NNODES="two" must be a whole number ≥ 1$/],
      [null, { ...twoMachines, MASTER_PORT: "70000" }, /^MASTER_PORT=70000 must be at most 65535$/],
      [4, worker, /^--gpus 4, but this process is one of 2 that a launcher \(torchrun, srun\) started on this machine/],
      [null, { ...worker, NNODES: "3" }, /^NNODES=3 disagrees with the launcher's 4 processes, 2 per machine/],
      [null, { ...worker, NODE_RANK: "0" }, /^NODE_RANK=0 disagrees with torchrun's GROUP_RANK=1/],
      [null, { ...worker, RANK: "4" }, /^distributed: RANK=4 is not below WORLD_SIZE=4$/],
    ];
    for (const [gpus, env, want] of bad)
      assert.throws(
        () => launchPlan(gpus, env),
        (e: Error) => want.test(e.message) && !e.message.includes("\n"),
        `${gpus} ${JSON.stringify(env)} should fail with ${want}`,
      );
  });
});

describe("shardIndices", () => {
  // torch.utils.data.DistributedSampler(shuffle=False, drop_last=False), written as Python does it.
  function samplerIndices(n: number, rank: number, ws: number): number[] {
    let indices = Array.from({ length: n }, (_, i) => i);
    const total = Math.ceil(n / ws) * ws;
    const padding = total - n;
    if (padding <= indices.length) indices = indices.concat(indices.slice(0, padding));
    else
      indices = indices.concat(
        Array.from({ length: Math.ceil(padding / n) }, () => indices)
          .flat()
          .slice(0, padding),
      );
    return indices.filter((_, i) => i % ws === rank);
  }

  test("equals DistributedSampler without shuffling: equal counts, every item, wrap-around padding", () => {
    for (const ws of [1, 2, 3, 4, 8])
      for (const n of [1, 2, 3, 5, 7, 8, 16, 81]) {
        const shards = Array.from({ length: ws }, (_, r) => shardIndices(n, r, ws));
        for (let r = 0; r < ws; r++) assert.deepEqual(shards[r], samplerIndices(n, r, ws), `n=${n} ws=${ws} rank=${r}`);
        const per = Math.ceil(n / ws);
        assert.ok(
          shards.every((s) => s.length === per),
          "every rank gets the same count",
        );
        assert.deepEqual(
          [...new Set(shards.flat())].sort((a, b) => a - b),
          Array.from({ length: n }, (_, i) => i),
          "every item is used",
        );
        if (n % ws === 0) assert.equal(new Set(shards.flat()).size, n, "no padding: the shares are disjoint");
      }
  });

  test("a global step of all ranks covers the same positions as one process with the whole batch", () => {
    const n = 24,
      ws = 3,
      B = 2;
    const shards = Array.from({ length: ws }, (_, r) => shardIndices(n, r, ws));
    for (let step = 0; step < n / (B * ws); step++) {
      const covered = shards.flatMap((s) => s.slice(step * B, step * B + B)).sort((a, b) => a - b);
      assert.deepEqual(
        covered,
        Array.from({ length: B * ws }, (_, i) => step * B * ws + i),
      );
    }
  });

  test("edge cases and bad arguments", () => {
    assert.deepEqual(shardIndices(0, 0, 2), []);
    assert.deepEqual(shardIndices(1, 1, 2), [0], "fewer items than ranks: wrapped");
    assert.throws(() => shardIndices(3, 1, 1), /^Error: shardIndices: rank must be in 0\.\.0, got 1$/);
    assert.throws(() => shardIndices(-1, 0, 1), /n must be a whole number ≥ 0, got -1/);
    assert.throws(() => shardIndices(4, 0, 0), /worldSize must be a whole number ≥ 1, got 0/);
  });
});

describe("launchWorkers", { skip: distributed.backends().includes("gloo") ? false : "no Gloo backend in this build" }, () => {
  test("starts N copies of the command with RANK, WORLD_SIZE, LOCAL_RANK, MASTER_*, one GPU each; prefixes rank > 0", async () => {
    const stdout = new Capture();
    const stderr = new Capture();
    await launchWorkers(2, ["launched", "--gpus", "2", "--epochs", "1"], {
      script: worker,
      execArgv: [],
      env: { ...process.env, DIST_TIMEOUT_MS: "20000", CUDA_VISIBLE_DEVICES: "3,5" },
      inheritMain: false,
      stdout,
      stderr,
    });
    const lines = stdout.text.trim().split("\n");
    const ranks = lines.map((line) => {
      const m = /^\[rank (\d)\] (\{.*\})$/.exec(line);
      assert.ok(m, `unexpected line ${line}`);
      return { prefix: Number(m[1]), out: JSON.parse(m[2]) };
    });
    assert.deepEqual(ranks.map((r) => r.prefix).sort(), [0, 1]);
    for (const { prefix, out } of ranks) {
      assert.equal(out.rank, prefix);
      assert.equal(out.worldSize, 2);
      assert.equal(out.localRank, prefix);
      assert.equal(out.masterAddr, "127.0.0.1");
      assert.ok(out.masterPort > 0);
      assert.equal(out.cudaVisibleDevices, prefix === 0 ? "3" : "5", "one of this process's GPUs each");
      assert.equal(out.nvls, "0");
      assert.deepEqual(out.args, ["--epochs", "1"], "the same command without --gpus");
      assert.equal(out.sum, 3, "the workers found each other");
    }
    assert.match(stderr.text, /^\[rank 1\] rank 1 done$/m);
  });

  test("two machines: each launcher starts its share of the ranks, and they form one group", async () => {
    const masterPort = await freePort();
    const machine = async (nodeRank: number) => {
      const stdout = new Capture();
      await launchWorkers(2, ["launched", "--gpus", "2"], {
        script: worker,
        execArgv: [],
        env: { ...process.env, DIST_TIMEOUT_MS: "20000", CUDA_VISIBLE_DEVICES: "" },
        nodes: 2,
        nodeRank,
        masterAddr: "127.0.0.1",
        masterPort,
        inheritMain: false,
        stdout,
        stderr: new Capture(),
      });
      return stdout.text
        .trim()
        .split("\n")
        .map((line) => JSON.parse(line.replace(/^\[rank \d\] /, "")));
    };
    const [first, second] = await Promise.all([machine(0), machine(1)]);
    const byRank = [...first, ...second].sort((a, b) => a.rank - b.rank);
    assert.deepEqual(
      byRank.map((r) => [r.rank, r.localRank, r.worldSize, r.masterPort, r.cudaVisibleDevices]),
      [
        [0, 0, 4, masterPort, "0"],
        [1, 1, 4, masterPort, "1"],
        [2, 0, 4, masterPort, "0"],
        [3, 1, 4, masterPort, "1"],
      ],
    );
    assert.deepEqual(first.map((r) => r.rank).sort(), [0, 1], "machine 0 runs ranks 0 and 1");
    assert.ok(
      byRank.every((r) => r.sum === 10),
      "1 + 2 + 3 + 4 across both machines",
    );
    await assert.rejects(launchWorkers(1, [], { nodes: 2, nodeRank: 0 }), /several machines need masterAddr and masterPort/);
  });

  test("a failing worker stops the others and the launch fails naming its rank", async () => {
    const stderr = new Capture();
    const t0 = Date.now();
    await assert.rejects(
      launchWorkers(2, ["fail-rank1"], {
        script: worker,
        execArgv: [],
        inheritMain: false,
        stdout: new Capture(),
        stderr,
        killAfterMs: 2000,
      }),
      (e: LaunchError) => {
        assert.ok(e instanceof LaunchError);
        assert.equal(e.message, "rank 1 exited with code 3; stopped the other ranks");
        assert.equal(e.rank, 1);
        assert.equal(e.exitCode, 3);
        return true;
      },
    );
    assert.ok(Date.now() - t0 < 15000, "rank 0 (sleeping for a minute) was stopped");
    assert.match(stderr.text, /^\[rank 1\] rank 1 gives up$/m);
  });

  test("bad arguments", async () => {
    await assert.rejects(launchWorkers(0, []), /launchWorkers: the number of workers must be a whole number ≥ 1, got 0/);
    await assert.rejects(
      launchWorkers(3, [], { script: worker, env: { CUDA_VISIBLE_DEVICES: "0,1" } }),
      /3 workers need 3 GPUs, but only 2 are listed \(0,1\)/,
    );
  });
});
