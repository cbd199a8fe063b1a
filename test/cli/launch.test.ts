// The multi-GPU launcher: --gpus parsing, each rank's share of the batches, and launchWorkers
// end to end on the CPU (two workers that join a Gloo group through the variables it sets).
import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { distributed } from "../../src/torch/distributed.js";
import { LaunchError, gpusFlag, launchWorkers, shardIndices, withoutGpusFlag } from "../../src/cli/launch.js";

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
