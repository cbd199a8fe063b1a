// Killed at any file-system change, a command leaves the earlier result exactly as it was, or —
// killed after its commit point — the new result whole once the next command has recovered the
// folder (docs/reliability.md, "Interrupted swaps"). For `train --overwrite`, `merge`, `run --steps
// 2 --force` and checkpoint saves: the command runs once in this process with a copy of its folder
// taken just before each change it makes (what SIGKILL at that change leaves on disk: the hook
// runs synchronously before the change), and each copy is recovered as the next command does and
// compared byte for byte. Then one real SIGKILL per command (SVDLORA_TEST_KILL_AT=k, at the most
// delicate change: mid-commit or mid-swap) checks that a killed process leaves the same files as
// the copy, and the real next command (a stale lock taken over) finishes the job.
// SVDLORA_TEST_ALL_KILLS=1 kills a real process at every change instead (a minute or two).
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { EMBEDDED_TRAIN } from "../../src/paths.js";
import { getNumThreads, setNumThreads } from "../../src/torch/index.js";
import { hasCheckpoint } from "../../src/train/checkpoint.js";
import { recoverDirectory } from "../../src/util/atomic.js";
import { MANIFEST, claimFolder, isComplete, onFilesystemChange, readManifest } from "../../src/util/outputs.js";
import { dataSubset, deadPid, runCli, sameTree, spawnCli, tempDir, treeFiles } from "../helpers.js";
import { smallModel } from "../small-model.js";

// As the child processes (OMP_NUM_THREADS=1): the same bits from the same run. Given back after, for
// the files that scripts/run-tests.mjs runs next in this process.
const threads = getNumThreads();
setNumThreads(1);
after(() => setNumThreads(threads));
const dir = tempDir("kill");
const trainData = dataSubset(EMBEDDED_TRAIN, 4, dir, "train.json");
const ALL = process.env.SVDLORA_TEST_ALL_KILLS === "1";
// The small model, samples cut at 128 tokens (every prompt fits): the files matter here, not the model's size or the samples' length.
const model = smallModel(dir);
const tiny = ["--base-model", model, "--train-data", trainData, "--epochs", "1", "--batch-size", "4", "--max-length", "128", "--quiet"];

interface Snapshot {
  /** The change a kill would have come before (1-based), and what it was. */
  k: number;
  what: string;
  dir: string;
  /** Its file names as the kill left them (before any recovery). */
  names: string[];
}

/** File names with the parts two runs pick differently blanked: temporary names, TensorBoard's time.host.pid. */
const names = (root: string) =>
  [...treeFiles(root).keys()]
    .map((f) => f.replace(/\.\d+-[a-z0-9]+\.tmp$/, ".PID-RANDOM.tmp").replace(/(events\.out\.tfevents)\.\d+\..+$/, "$1.TIME.HOST.PID"))
    .sort();

/** Runs fn, copying root just before each file-system change it makes. */
async function snapshotsOf(root: string, fn: () => Promise<{ code: number; stderr: string }>): Promise<Snapshot[]> {
  const base = fs.mkdtempSync(path.join(dir, "snapshots-"));
  const snaps: Snapshot[] = [];
  onFilesystemChange((k, what) => {
    const to = path.join(base, String(k));
    if (fs.existsSync(root)) fs.cpSync(root, to, { recursive: true });
    else fs.mkdirSync(to);
    snaps.push({ k, what: what.replace(root, "<root>"), dir: to, names: names(to) });
  });
  try {
    const r = await fn();
    assert.equal(r.code, 0, r.stderr);
  } finally {
    onFilesystemChange(null);
  }
  return snaps;
}

const gone = deadPid();

/** The copy as a killed process leaves it: its locks name a process that is gone. */
function asKilled(snapshot: string): void {
  const pid = gone;
  for (const rel of fs.readdirSync(snapshot, { recursive: true }).map(String))
    if (path.basename(rel) === ".svdlora.lock") {
      const file = path.join(snapshot, rel);
      fs.writeFileSync(file, JSON.stringify({ ...JSON.parse(fs.readFileSync(file, "utf8")), pid }));
    }
}

/** What the next command does first in a folder: take the (stale) lock and finish or undo what was interrupted. */
const recover = (root: string) => claimFolder(root, "recovery in a test").release();

const describeDiff = (a: Map<string, Buffer>, b: Map<string, Buffer>) =>
  [...new Set([...a.keys(), ...b.keys()])].filter((f) => !a.get(f)?.equals(b.get(f) ?? Buffer.alloc(0)) || !b.has(f)).join(", ");

/**
 * After recovery, each kill left the earlier result or the new one, byte for byte, and once the
 * new one the rest; both happen (the commit point lies inside the command).
 */
function assertEarlierThenNew(
  states: { k: number; what: string; tree: Map<string, Buffer> }[],
  earlier: Map<string, Buffer>,
  next: Map<string, Buffer>,
) {
  let firstNew: number | null = null;
  for (const { k, what, tree } of states) {
    if (sameTree(tree, earlier)) {
      assert.equal(firstNew, null, `killed before change ${k} (${what}): the earlier result is back after the new one was in place`);
      continue;
    }
    assert.ok(
      sameTree(tree, next),
      `killed before change ${k} (${what}): neither the earlier result nor the new one after recovery; differs from the new one in ${describeDiff(tree, next)}`,
    );
    firstNew ??= k;
  }
  assert.ok(firstNew !== null && firstNew > 1, `the commit point is inside the command (first new result after change ${firstNew})`);
  const commit = states.find((s) => s.k === firstNew - 1)!;
  return `${states.length} file-system changes; the new result is in place from a kill before change ${firstNew} on (the commit point: ${commit.what})`;
}

/** A real process killed just before change k of args leaves the same files as the copy taken there. */
async function realKill(args: string[], root: string, snapshot: Snapshot): Promise<void> {
  const r = await spawnCli(args, { SVDLORA_TEST_KILL_AT: String(snapshot.k) });
  assert.equal(r.signal, "SIGKILL", `killed before change ${snapshot.k} (${snapshot.what}): ${r.stderr}`);
  assert.deepEqual(names(root), snapshot.names, `killed before change ${snapshot.k} (${snapshot.what})`);
}

/** The kills to make with a real process: the chosen one, or every one (SVDLORA_TEST_ALL_KILLS=1). */
const realKills = (snaps: Snapshot[], chosen: (s: Snapshot) => boolean) => (ALL ? snaps : [snaps.find(chosen)!]);

const TOOK_OVER = /^svdlora: took over .*'s lock from process \d+ \(.*\), which is gone$/m;

describe("train --overwrite over an earlier run", () => {
  const out = path.join(dir, "train", "out");
  const earlierCopy = path.join(dir, "train", "earlier");
  const again = [...tiny, "--seed", "7", "--overwrite", "--output-dir"];
  let earlier: Map<string, Buffer>;
  let next: Map<string, Buffer>;
  let snaps: Snapshot[];

  before(async () => {
    const r = await runCli("train", ...tiny, "--output-dir", out);
    assert.equal(r.code, 0, r.stderr);
    earlier = treeFiles(out);
    fs.cpSync(out, earlierCopy, { recursive: true });
    snaps = await snapshotsOf(out, () => runCli("train", ...again, out));
    next = treeFiles(out);
  });

  it("leaves the earlier run or the new one whole, killed at any change (the run's own checkpoint aside)", (t) => {
    assert.ok(!sameTree(earlier, next), "the rerun (another seed) makes another adapter");
    assert.ok(![...earlier.keys(), ...next.keys()].some((f) => f.startsWith("checkpoints/")), "a finished run keeps no checkpoint");
    const states = snaps.map(({ k, what, dir: snap }) => {
      asKilled(snap);
      recover(snap);
      // The new run's checkpoint (for --resume) is the run in progress, not a result.
      return { k, what, tree: treeFiles(snap, /^checkpoints\//) };
    });
    t.diagnostic(assertEarlierThenNew(states, earlier, next));
  });

  it("a real kill mid-commit, then the next command: the new run whole", async () => {
    const journal = snaps.findIndex((s) => s.what.startsWith("write <root>/.svdlora-commit-"));
    for (const snap of realKills(snaps, (s) => s.k === snaps[journal].k + 1)) {
      const killed = path.join(dir, "train", `killed-${snap.k}`);
      fs.cpSync(earlierCopy, killed, { recursive: true });
      await realKill(["train", ...again, killed], killed, snap);
      const r = await runCli("train", ...again, killed);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, TOOK_OVER);
      // The same files as the uninterrupted rerun, byte for byte but for what records wall time.
      const timed = /summary|training_log|loss_curves|tensorboard/;
      assert.ok(sameTree(treeFiles(killed, timed), treeFiles(out, timed)));
      assert.deepEqual(names(killed), names(out));
    }
  });
});

describe("merge over an earlier merge", () => {
  const root = path.join(dir, "merge");
  const target = path.join(root, "merged");
  const merge = (adapter: string, output = target) => [
    "merge",
    "--base-model",
    model,
    "--adapter",
    path.join(dir, "train", adapter, "final_model_random"),
    "--output-dir",
    output,
  ];
  let earlier: Map<string, Buffer>;
  let next: Map<string, Buffer>;
  let snaps: Snapshot[];

  before(async () => {
    if (!fs.existsSync(path.join(dir, "train", "out"))) {
      // this block alone (--test-name-pattern): two adapters to merge
      for (const [name, seed] of [
        ["earlier", "42"],
        ["out", "7"],
      ])
        assert.equal((await runCli("train", ...tiny, "--seed", seed, "--output-dir", path.join(dir, "train", name))).code, 0);
    }
    const r = await runCli(...merge("earlier"));
    assert.equal(r.code, 0, r.stderr);
    earlier = treeFiles(root);
    snaps = await snapshotsOf(root, () => runCli(...merge("out")));
    next = treeFiles(root);
  });

  it("leaves the earlier merged model or the new one whole, killed at any change", (t) => {
    assert.ok(!sameTree(earlier, next));
    const states = snaps.map(({ k, what, dir: snap }) => {
      asKilled(snap);
      recover(snap);
      recoverDirectory(path.join(snap, "merged")); // what the next merge does before it checks its output
      return { k, what, tree: treeFiles(snap) };
    });
    t.diagnostic(assertEarlierThenNew(states, earlier, next));
  });

  it("a real kill mid-swap, then the next merge: the new model whole", async () => {
    const aside = snaps.findIndex((s) => s.what === "rename <root>/merged");
    for (const snap of realKills(snaps, (s) => s.k === snaps[aside].k + 1)) {
      const killedRoot = path.join(dir, `merge-killed-${snap.k}`);
      const killed = path.join(killedRoot, "merged");
      const r0 = await runCli(...merge("earlier", killed));
      assert.equal(r0.code, 0, r0.stderr);
      await realKill(merge("out", killed), killedRoot, snap);
      const r = await runCli(...merge("out", killed));
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, TOOK_OVER);
      assert.ok(sameTree(treeFiles(killedRoot), next), describeDiff(treeFiles(killedRoot), next));
    }
  });
});

describe("run --steps 2 --force over an earlier step 2", () => {
  const exp = path.join(dir, "exp");
  const run = (output: string, ...more: string[]) => ["run", "--steps", ...more, ...tiny, "--output-dir", output];
  const redo = (output: string) => run(output, "2", "--force", "--noise-scale", "0.2");
  let earlier: Map<string, Buffer>;
  let next: Map<string, Buffer>;
  let snaps: Snapshot[];

  before(async () => {
    const r = await runCli(...run(exp, "1,2"));
    assert.equal(r.code, 0, r.stderr);
    earlier = treeFiles(exp);
    fs.cpSync(exp, path.join(dir, "exp-earlier"), { recursive: true });
    snaps = await snapshotsOf(exp, () => runCli(...redo(exp)));
    next = treeFiles(exp);
  });

  it("leaves the earlier teacher and SVD or the new ones whole, killed at any change", (t) => {
    assert.ok(!sameTree(earlier, next));
    const states = snaps.map(({ k, what, dir: snap }) => {
      asKilled(snap);
      recover(snap);
      return { k, what, tree: treeFiles(snap) };
    });
    // Teacher, SVD factors, analysis, charts and the step's record change together.
    t.diagnostic(assertEarlierThenNew(states, earlier, next));
  });

  it("a real kill mid-commit, then the next run: the new step 2 whole", async () => {
    const journal = snaps.findIndex((s) => s.what.startsWith("write <root>/.svdlora-commit-"));
    for (const snap of realKills(snaps, (s) => s.k === snaps[journal].k + 1)) {
      const killed = path.join(dir, `exp-killed-${snap.k}`);
      fs.cpSync(path.join(dir, "exp-earlier"), killed, { recursive: true });
      await realKill(redo(killed), killed, snap);
      // The next run (without --force) recovers the folder first, then finds step 2 done with the
      // new settings (killed after the commit point), or refuses the earlier step 2, left as it was.
      const r = await runCli(...run(killed, "2", "--noise-scale", "0.2"));
      assert.match(r.stderr, TOOK_OVER);
      if (r.code !== 0) {
        assert.match(
          r.stderr,
          /^svdlora: error: step 2: the teacher of random was made with noiseScale 0\.1 \(now 0\.2\); rerun with --force/m,
        );
        assert.ok(sameTree(treeFiles(killed), earlier), `killed before change ${snap.k}: the earlier step 2 changed`);
        continue;
      }
      assert.match(r.stdout, /^step 2: .* — done with these settings, skipped/m);
      // Whole: the same files as the uninterrupted rerun, each of the size its folder's manifest records.
      assert.deepEqual([...treeFiles(killed).keys()], [...next.keys()]);
      for (const manifest of [...next.keys()].filter((f) => path.basename(f) === MANIFEST))
        for (const name of Object.keys(readManifest(path.join(killed, path.dirname(manifest)))))
          assert.ok(isComplete(path.join(killed, path.dirname(manifest), name)), `${name} is incomplete`);
    }
  });
});

describe("checkpoint saves", () => {
  const root = path.join(dir, "ckpt");
  const args = (output: string) => ["train", ...tiny, "--epochs", "2", "--batch-size", "2", "--save-steps", "1", "--output-dir", output];
  const checkpoint = (r: string) => path.join(r, "checkpoints", "random");
  const stepOf = (ckpt: string) => JSON.parse(fs.readFileSync(path.join(ckpt, "svdlora_state.json"), "utf8")).step as number;
  let finished: Map<string, Buffer>;
  let snaps: Snapshot[];

  before(async () => {
    snaps = await snapshotsOf(root, () => runCli(...args(root)));
    finished = treeFiles(root);
  });

  it("keep the last whole checkpoint, killed at any change; once the run is committed, the run whole", (t) => {
    // Every checkpoint that was ever complete in place (no swap under way).
    const swapping = (snap: string) =>
      fs.existsSync(path.join(snap, "checkpoints")) && fs.readdirSync(path.join(snap, "checkpoints")).some((f) => f.startsWith(".random."));
    const versions = snaps.filter((s) => fs.existsSync(checkpoint(s.dir)) && !swapping(s.dir)).map((s) => treeFiles(checkpoint(s.dir)));
    assert.ok(new Set(versions.map((v) => v.get("svdlora_state.json")?.toString())).size >= 3, "several saves seen");
    let lastStep = 0;
    let committed = false;
    for (const { k, what, dir: snap } of snaps) {
      asKilled(snap);
      recover(snap);
      const kept = hasCheckpoint(checkpoint(snap)); // what --resume does
      const at = `killed before change ${k} (${what})`;
      if (sameTree(treeFiles(snap), finished)) {
        committed = true;
        continue;
      }
      assert.ok(!committed, `${at}: the finished run was undone`);
      if (!kept) {
        assert.equal(lastStep, 0, `${at}: the checkpoint of step ${lastStep} was lost`);
        continue;
      }
      const tree = treeFiles(checkpoint(snap));
      assert.ok(
        versions.some((v) => sameTree(v, tree)),
        `${at}: the checkpoint is not one that was complete`,
      );
      assert.ok(stepOf(checkpoint(snap)) >= lastStep, `${at}: an older checkpoint came back`);
      lastStep = stepOf(checkpoint(snap));
    }
    assert.ok(committed && lastStep > 1);
    t.diagnostic(`${snaps.length} file-system changes, ${versions.length} of them with a whole checkpoint in place`);
  });

  it("--resume finds the checkpoint that a real kill left mid-swap, and ends as the uninterrupted run", async () => {
    // Killed between moving the step-1 checkpoint aside and moving the step-2 one in: neither is in place.
    const chosen = snaps.find((_, i) => i > 0 && snaps[i - 1].what === "rename <root>/checkpoints/random");
    assert.ok(chosen, "a save that replaces an earlier checkpoint");
    const adapter = (d: string) => fs.readFileSync(path.join(d, "final_model_random", "adapter_model.safetensors"));
    for (const snap of ALL ? snaps : [chosen]) {
      const killed = path.join(dir, `ckpt-killed-${snap.k}`);
      await realKill(args(killed), killed, snap);
      const r = await runCli(...args(killed), "--resume");
      assert.match(r.stderr, TOOK_OVER);
      if (r.code !== 0) {
        // Killed after the run's commit point: the next command finished it; there is nothing to resume.
        assert.match(r.stderr, /the run named random in .* is complete: there is nothing to resume; replace it with --overwrite$/);
        const timed = /summary|training_log|loss_curves|tensorboard/;
        assert.ok(sameTree(treeFiles(killed, timed), treeFiles(root, timed)));
        continue;
      }
      if (snap === chosen) assert.match(r.stdout, /^resumed from the checkpoint at step 2$/m);
      assert.ok(adapter(killed).equals(adapter(root)), `killed before change ${snap.k}: the resumed adapter differs`);
    }
  });
});
