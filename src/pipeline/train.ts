// Steps 1 and 3 (docs/experiment.md): one LoRA training run into a training folder, under the
// names the experiment uses (layout.ts: final_model_<run>/, training_log_<run>.csv,
// train_summary_<run>.json, plots/loss_curves_<run>.png). The run writes into a staging folder;
// its files replace an earlier run's only at the end, all together (util/outputs.ts), and only
// when that earlier run is svdlora's and replacing it was asked for. The run's checkpoint, kept
// for a resume while it trains, goes with the same commit: a finished run is its files alone.
import fs from "node:fs";
import path from "node:path";
import { lossCurvesChart, saveChart, svgPathFor } from "../report/index.js";
import type { DataParallel } from "../train/data-parallel.js";
import { hasCheckpoint } from "../train/checkpoint.js";
import { readTrainingLog } from "../train/log.js";
import type { LoopOptions } from "../train/loop.js";
import type { LoraTrainingSettings } from "../train/settings.js";
import { RUN_FILES, type TrainResult, trainLora } from "../train/trainer.js";
import { assertReplaceable } from "../util/atomic.js";
import { claimFolder, commitOutputs } from "../util/outputs.js";
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
  const outputDir = settings.outputDir ?? "training_results";
  const runName = o.runName ?? settings.init ?? "random";
  if (!/^[\w.+-]+$/.test(runName)) throw new Error(`run name ${JSON.stringify(runName)}: use letters, digits and . _ + - only`);
  const L = trainingLayout(outputDir);
  const staging = L.staging(runName);
  const outputs = {
    runName,
    adapterDir: L.adapter(runName),
    logPath: L.log(runName),
    summaryPath: L.summary(runName),
    plotFile: L.lossPlot(runName),
  };
  const run = { dir: staging, checkpointDir: L.checkpoint(runName), ...o };
  if (o.dataParallel && !o.dataParallel.isMain) return { ...(await trainLora(settings, run)), ...outputs }; // the main process writes

  const lock = claimFolder(outputDir, `training run ${runName}`, (line) => o.events?.note?.(line));
  try {
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
    await drawLossCurves(path.join(staging, "loss_curves.png"), path.join(staging, RUN_FILES.log), settings, result);
    const rel = (p: string) => path.relative(outputDir, p);
    commitOutputs(outputDir, runName, [
      { from: rel(path.join(staging, RUN_FILES.adapter)), to: rel(outputs.adapterDir) },
      { from: rel(path.join(staging, RUN_FILES.log)), to: rel(outputs.logPath) },
      { from: rel(path.join(staging, "loss_curves.png")), to: rel(outputs.plotFile) },
      { from: rel(path.join(staging, "loss_curves.svg")), to: rel(svgPathFor(outputs.plotFile)) },
      // The summary last: it is what says the run is complete.
      { from: rel(path.join(staging, RUN_FILES.summary)), to: rel(outputs.summaryPath) },
      { from: null, to: rel(run.checkpointDir) },
    ]);
    fs.rmSync(staging, { recursive: true, force: true });
    removeIfEmpty(path.dirname(run.checkpointDir)); // checkpoints/, once no run has one
    return { ...result, ...outputs };
  } finally {
    lock.release();
  }
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
  assertReplaceable(checkpointDir); // a checkpoint folder is svdlora's (it carries the marker), or refused
  const present = [outputs.adapterDir, outputs.logPath, outputs.plotFile, svgPathFor(outputs.plotFile), outputs.summaryPath].filter((p) =>
    fs.existsSync(p),
  );
  const owned = fs.existsSync(outputs.summaryPath) && madeBySvdlora(outputs.summaryPath);
  if (present.length > 0 && !owned)
    throw new Error(
      `${present[0]} exists but no svdlora run owns it (no complete ${path.basename(outputs.summaryPath)}): move it away or choose another output folder`,
    );
  if (owned && !overwrite && !resume)
    throw new Error(
      `a run named ${runName} is already in ${path.dirname(outputs.summaryPath)}: replace it with \`overwrite\`, or give this run another name or output folder`,
    );
  if (owned && resume && !overwrite && !hasCheckpoint(checkpointDir))
    throw new Error(
      `the run named ${runName} in ${path.dirname(outputs.summaryPath)} is complete: there is nothing to resume; replace it with \`overwrite\``,
    );
  if (!owned && fs.existsSync(checkpointDir) && !overwrite && !resume)
    throw new Error(
      `an unfinished run named ${runName} left a checkpoint in ${checkpointDir}: continue it with \`resume\`, or start afresh with \`overwrite\``,
    );
}

function removeIfEmpty(dir: string): void {
  try {
    fs.rmdirSync(dir);
  } catch {
    // not empty, or not there
  }
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
