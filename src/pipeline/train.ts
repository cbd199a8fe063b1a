// Steps 1 and 3 (docs/experiment.md): one LoRA training run into a training folder, under the
// names the experiment uses (layout.ts: final_model_<run>/, training_log_<run>.csv,
// train_summary_<run>.json, plots/loss_curves_<run>.png). The run writes into a staging folder;
// its files replace an earlier run's only at the end, all together (util/outputs.ts), and only
// when that earlier run is svdlora's and replacing it was asked for. trainRuns does the same for
// several runs trained together over one base model.
import fs from "node:fs";
import path from "node:path";
import { lossCurvesChart, saveChart, svgPathFor } from "../report/index.js";
import type { DataParallel } from "../train/data-parallel.js";
import { readTrainingLog } from "../train/log.js";
import type { LoopOptions } from "../train/loop.js";
import type { LoraTrainingSettings } from "../train/settings.js";
import { trainConcurrently } from "../train/concurrent.js";
import type { TrainingEvents } from "../train/events.js";
import { RUN_FILES, type TrainResult, trainLora } from "../train/trainer.js";
import { commitOutputs, lockFolder, recoverCommits } from "../util/outputs.js";
import { trainingLayout } from "./layout.js";

export interface TrainRunOptions extends LoopOptions {
  /** Names the run's files (default: its init). */
  runName?: string;
  dataParallel?: DataParallel;
}

export interface TrainRunResult extends TrainResult {
  runName: string;
  adapterDir: string;
  logPath: string;
  summaryPath: string;
  plotFile: string;
}

/** Trains a LoRA adapter into settings.outputDir; see the file comment for what it writes and when. */
export async function trainRun(settings: Partial<LoraTrainingSettings>, o: TrainRunOptions = {}): Promise<TrainRunResult> {
  const { outputDir, runName, staging, outputs, checkpointDir } = planRun(settings, o.runName);
  const run = { dir: staging, checkpointDir, ...o };
  if (o.dataParallel && !o.dataParallel.isMain) return { ...(await trainLora(settings, run)), ...outputs }; // the main process writes

  const lock = lockFolder(outputDir, `training run ${runName}`);
  if (lock.tookOverFrom) o.events?.note?.(`took over ${outputDir}'s lock from process ${lock.tookOverFrom.pid}, which is gone`);
  try {
    recoverCommits(outputDir);
    checkReplaceable(runName, outputs, run.checkpointDir, Boolean(settings.overwrite), Boolean(settings.resume));
    fs.rmSync(staging, { recursive: true, force: true });
    fs.mkdirSync(staging, { recursive: true });
    let result: TrainResult;
    try {
      result = await trainLora(settings, run);
    } catch (e) {
      // What the earlier run left stays as it was; a resume rebuilds the log from its checkpoint.
      fs.rmSync(staging, { recursive: true, force: true });
      throw e;
    }
    await commitRun(outputDir, staging, outputs, settings, result);
    return { ...result, ...outputs };
  } finally {
    lock.release();
  }
}

export interface ConcurrentRun {
  settings: Partial<LoraTrainingSettings>;
  /** Names the run's files (default: its init). */
  runName?: string;
  events?: TrainingEvents;
  label?: string;
}

/**
 * trainRun for several runs over one loaded base model (train/concurrent.ts): each run is staged
 * and its files swapped into place as trainRun does, as soon as its pass is done. Runs share
 * outputDir. Returns one result per run, in order; when some fail or the signal stops them, the
 * runs already done stay in place.
 */
export async function trainRuns(
  runs: ConcurrentRun[],
  o: {
    signal?: AbortSignal;
    concurrentArms?: number | "auto";
    note?: (line: string) => void;
    /** Called when a run's files are in place, before the next pass starts. */
    onRunDone?: (result: TrainRunResult) => void;
  } = {},
): Promise<TrainRunResult[]> {
  const plans = runs.map((r) => ({ ...r, ...planRun(r.settings, r.runName) }));
  const outputDir = plans[0].outputDir;
  const other = plans.find((p) => path.resolve(p.outputDir) !== path.resolve(outputDir));
  if (other)
    throw new Error(`runs trained together write one output folder: ${outputDir} and ${other.outputDir}; train them in separate calls`);
  const twice = plans.find((p, i) => plans.findIndex((q) => q.runName === p.runName) !== i);
  if (twice) throw new Error(`two runs are named ${twice.runName}: give each its own \`runName\``);

  const lock = lockFolder(outputDir, `training runs ${plans.map((p) => p.runName).join(", ")}`);
  if (lock.tookOverFrom) o.note?.(`took over ${outputDir}'s lock from process ${lock.tookOverFrom.pid}, which is gone`);
  const results: TrainRunResult[] = [];
  try {
    recoverCommits(outputDir);
    for (const p of plans)
      checkReplaceable(p.runName, p.outputs, p.checkpointDir, Boolean(p.settings.overwrite), Boolean(p.settings.resume));
    for (const p of plans) {
      fs.rmSync(p.staging, { recursive: true, force: true });
      fs.mkdirSync(p.staging, { recursive: true });
    }
    try {
      await trainConcurrently(
        plans.map((p) => ({
          settings: p.settings,
          dir: p.staging,
          checkpointDir: p.checkpointDir,
          label: p.label ?? `train ${p.runName}`,
          events: p.events,
        })),
        {
          signal: o.signal,
          concurrentArms: o.concurrentArms,
          note: o.note,
          onRunDone: async (i, result) => {
            const p = plans[i];
            await commitRun(outputDir, p.staging, p.outputs, p.settings, result);
            results[i] = { ...result, ...p.outputs };
            o.onRunDone?.(results[i]);
          },
        },
      );
    } finally {
      // What the earlier runs left stays as it was for the runs not done; a resume rebuilds their logs from their checkpoints.
      for (const p of plans) fs.rmSync(p.staging, { recursive: true, force: true });
    }
    return results;
  } finally {
    lock.release();
  }
}

/** Where a run of these settings writes: its staging folder, final names and checkpoints. */
function planRun(settings: Partial<LoraTrainingSettings>, name: string | undefined) {
  const outputDir = settings.outputDir ?? "training_results";
  const runName = name ?? settings.init ?? "random";
  if (!/^[\w.+-]+$/.test(runName)) throw new Error(`run name ${JSON.stringify(runName)}: use letters, digits and . _ + - only`);
  const L = trainingLayout(outputDir);
  const outputs = {
    runName,
    adapterDir: L.adapter(runName),
    logPath: L.log(runName),
    summaryPath: L.summary(runName),
    plotFile: L.lossPlot(runName),
  };
  return { outputDir, runName, staging: L.staging(runName), outputs, checkpointDir: L.checkpoint(runName) };
}

/** Draws the run's loss curves and moves its staged files into their names, all together. */
async function commitRun(
  outputDir: string,
  staging: string,
  outputs: Omit<TrainRunResult, keyof TrainResult>,
  settings: Partial<LoraTrainingSettings>,
  result: TrainResult,
): Promise<void> {
  await drawLossCurves(path.join(staging, "loss_curves.png"), path.join(staging, RUN_FILES.log), settings, result);
  const rel = (p: string) => path.relative(outputDir, p);
  commitOutputs(outputDir, outputs.runName, [
    { from: rel(path.join(staging, RUN_FILES.adapter)), to: rel(outputs.adapterDir) },
    { from: rel(path.join(staging, RUN_FILES.log)), to: rel(outputs.logPath) },
    { from: rel(path.join(staging, "loss_curves.png")), to: rel(outputs.plotFile) },
    { from: rel(path.join(staging, "loss_curves.svg")), to: rel(svgPathFor(outputs.plotFile)) },
    // The summary last: it is what says the run is complete.
    { from: rel(path.join(staging, RUN_FILES.summary)), to: rel(outputs.summaryPath) },
  ]);
  fs.rmSync(staging, { recursive: true, force: true });
}

/**
 * An earlier run of this name is replaced only when asked (overwrite, or resume of its own
 * checkpoint), and only when it is svdlora's: its summary says so. A file under one of the run's
 * names that no svdlora run owns is never touched.
 */
function checkReplaceable(
  runName: string,
  outputs: { adapterDir: string; logPath: string; summaryPath: string; plotFile: string },
  checkpointDir: string,
  overwrite: boolean,
  resume: boolean,
): void {
  const present = [outputs.adapterDir, outputs.logPath, outputs.plotFile, outputs.summaryPath].filter((p) => fs.existsSync(p));
  const owned = fs.existsSync(outputs.summaryPath) && madeBySvdlora(outputs.summaryPath);
  if (present.length > 0 && !owned)
    throw new Error(
      `${present[0]} exists but no svdlora run owns it (no complete ${path.basename(outputs.summaryPath)}): move it away or choose another output folder`,
    );
  if (owned && !overwrite && !resume)
    throw new Error(
      `a run named ${runName} is already in ${path.dirname(outputs.summaryPath)}: replace it with \`overwrite\`, or give this run another name or output folder`,
    );
  if (!owned && fs.existsSync(checkpointDir) && !overwrite && !resume)
    throw new Error(
      `an unfinished run named ${runName} left a checkpoint in ${checkpointDir}: continue it with \`resume\`, or start afresh with \`overwrite\``,
    );
}

function madeBySvdlora(summaryFile: string): boolean {
  try {
    return (JSON.parse(fs.readFileSync(summaryFile, "utf8")) as { made_by?: unknown }).made_by === "svdlora";
  } catch {
    return false;
  }
}

async function drawLossCurves(file: string, logFile: string, s: Partial<LoraTrainingSettings>, result: TrainResult): Promise<void> {
  const log = readTrainingLog(logFile);
  const evalByStep = new Map(log.eval.map((e) => [e.step, e.evalLoss]));
  const rows = [
    ...log.train.map((r) => ({ step: r.step, loss: r.loss, epoch: r.epoch, evalLoss: evalByStep.get(r.step) })),
    ...(evalByStep.has(0) ? [{ step: 0, loss: Number.NaN, epoch: 0, evalLoss: evalByStep.get(0) }] : []),
  ];
  const init = result.init === "svd" ? "SVD-initialized" : `${result.init}-init`;
  const what = log.eval.length > 0 ? "Training and held-out loss" : "Training loss";
  await saveChart(file, lossCurvesChart(rows, `${what}, ${init} LoRA (r = ${s.loraRank ?? 16}, α = ${s.loraAlpha ?? 16})`));
}
