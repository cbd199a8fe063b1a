// A worker for test/train/concurrent.test.ts, run with one BLAS thread when the test's own process
// has more: trains the three runs of concurrent-runs.ts alone and together in folders under
// argv[2], and prints each run's comparison as one JSON line.
import { trainConcurrently } from "../../src/train/concurrent.js";
import { trainLora } from "../../src/train/trainer.js";
import { ARMS, cpuSettings, compareRuns, runFolders } from "./concurrent-runs.js";

const dir = process.argv[2];
const base = cpuSettings(dir);
const folder = runFolders(dir);
for (const [i, arm] of ARMS.entries()) await trainLora({ ...base, ...arm }, folder("alone", i));
await trainConcurrently(ARMS.map((arm, i) => ({ settings: { ...base, ...arm }, ...folder("together", i) })));
process.stdout.write(`${JSON.stringify(ARMS.map((_, i) => compareRuns(folder("alone", i).dir, folder("together", i).dir)))}\n`);
