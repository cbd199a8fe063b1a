// A worker for test/train/concurrent.test.ts, run with one BLAS thread: trains the three runs of
// concurrent-runs.ts on 8 samples (2 epochs of 2 steps) alone and together in folders under
// argv[2], and prints each run's comparison as one JSON line.
import path from "node:path";
import { trainConcurrently } from "../../src/train/concurrent.js";
import { trainLora } from "../../src/train/trainer.js";
import { ARMS, baseSettings, compareRuns } from "./concurrent-runs.js";

const dir = process.argv[2];
const base = baseSettings(dir, 8);
const folder = (what: string, i: number) => ({
  dir: path.join(dir, `${what}${i}`),
  checkpointDir: path.join(dir, `${what}${i}-checkpoint`),
});
for (const [i, arm] of ARMS.entries()) await trainLora({ ...base, ...arm }, folder("alone", i));
await trainConcurrently(ARMS.map((arm, i) => ({ settings: { ...base, ...arm }, ...folder("together", i) })));
process.stdout.write(`${JSON.stringify(ARMS.map((_, i) => compareRuns(folder("alone", i).dir, folder("together", i).dir)))}\n`);
