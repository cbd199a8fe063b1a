// Steps 1 and 3 (docs/experiment.md): one LoRA training run into a training folder, under the
// names the experiment uses (layout.ts: final_model_<run>/, training_log_<run>.csv and .jsonl,
// tensorboard/<run>/, train_summary_<run>.json, plots/loss_curves_<run>.png). The run writes into a staging folder;
// its files replace an earlier run's only at the end, all together (util/outputs.ts), and only
// when that earlier run is svdlora's and replacing it was asked for. The run's checkpoint, kept
// for a resume while it trains, goes with the same commit: a finished run is its files alone.
// trainRuns does the same for several runs trained together over one base model.
// With `recordDivergence` (a learning-rate grid), a run whose loss or gradient stops being finite
// is a result, not an error: a record of it, diverged_<run>.json, and the CSV log of the steps it
// made before (training_log_<run>.csv, when it logged a row) replace the run's files and
// checkpoint by the same kind of commit.
import fs from "node:fs";
import path from "node:path";
import { lossCurvesChart, saveChart, svgPathFor } from "../report/index.js";
import { type DataParallel, singleProcess } from "../train/data-parallel.js";
import { hasCheckpoint } from "../train/checkpoint.js";
import { RunsFailedError, trainConcurrently } from "../train/concurrent.js";
import { readTrainingLog } from "../train/log.js";
import { type LoopOptions, NonFiniteError } from "../train/loop.js";
import { runLogFiles } from "../train/run-log.js";
import { LORA_TRAINING, type LoraTrainingSettings } from "../train/settings.js";
import { RUN_FILES, type TrainResult, provenance, resolveSettings, trainLora } from "../train/trainer.js";
import { assertReplaceable, writeFileAtomic } from "../util/atomic.js";
import { checkOutputDir } from "../util/files.js";
import { claimFolder, commitOutputs } from "../util/outputs.js";
import { codeVersion } from "../version.js";
import { trainingLayout } from "./layout.js";

export interface TrainRunOptions extends LoopOptions {
  /** Names the run's files (default: its init). */
  runName?: string;
  dataParallel?: DataParallel;
  /** Where the run stands in an experiment, recorded in its summary for the comparison. */
  experiment?: ExperimentRecord;
  /**
   * A run whose loss or gradient stops being finite is recorded as diverged and returned as such
   * (DivergedRun), instead of being an error: a learning rate of a grid that diverges loses.
   */
  recordDivergence?: boolean;
}

/** A run's place in an experiment: its arm, and the compute it counts beside its own. */
export interface ExperimentRecord {
  arm: string;
  /** Runs in the same training folder it depends on (the svd arm: its seed's random run). */
  dependsOn: string[];
  /** Compute outside the training folder it depends on (a teacher's synthesis and SVD, a full fine-tune). */
  external: { what: string; tokens: number; seconds: number }[];
  /** Trained on other data only to make another arm's teacher (svd-xfit's half-data run): counted, not compared. */
  sourceOnly?: boolean;
}

export interface TrainRunResult extends TrainResult {
  runName: string;
  adapterDir: string;
  logPath: string;
  jsonlPath: string;
  tensorboardDir: string;
  summaryPath: string;
  plotFile: string;
}

/** A run that stopped because its loss or gradient was no longer finite, as its record says. */
export interface DivergedRun {
  diverged: true;
  runName: string;
  /** diverged_<run>.json in the training folder. */
  recordPath: string;
  /** training_log_<run>.csv: the rows it logged before it stopped; null when it logged none. */
  logPath: string | null;
  /** The optimizer step whose loss or gradient was not finite (from 1). */
  step: number;
  /** What happened: "loss became NaN at step 2". */
  message: string;
}

/** diverged_<run>.json: the run, where it stopped, and what made it (its identity and inputs, as a summary records them). */
export interface DivergedRecord {
  made_by: "svdlora";
  kind: "diverged LoRA training run";
  code: string;
  run: string;
  arm: string;
  seed: number;
  learningRate: number;
  step: number;
  message: string;
  /** The file name of its log in the training folder (training_log_<run>.csv), or null when it logged no row. */
  log: string | null;
  settings: LoraTrainingSettings;
  identity: ReturnType<typeof provenance>["identity"];
  inputs: ReturnType<typeof provenance>["inputs"];
  experiment?: ExperimentRecord;
}

/** Trains a LoRA adapter into settings.outputDir; see the file comment for what it writes and when. */
export function trainRun(
  settings: Partial<LoraTrainingSettings>,
  o?: TrainRunOptions & { recordDivergence?: false },
): Promise<TrainRunResult>;
export function trainRun(settings: Partial<LoraTrainingSettings>, o: TrainRunOptions): Promise<TrainRunResult | DivergedRun>;
export async function trainRun(settings: Partial<LoraTrainingSettings>, o: TrainRunOptions = {}): Promise<TrainRunResult | DivergedRun> {
  const plan = planRun(settings, o.runName);
  const { outputDir, runName, staging, files, outputs, checkpointDir } = plan;
  const run = { dir: staging, checkpointDir, ...o };
  if (o.dataParallel && !o.dataParallel.isMain) return { ...(await trainLora(settings, run)), ...outputs }; // the main process writes

  const lock = claimFolder(outputDir, `training run ${runName}`, (line) => o.events?.note?.(line));
  try {
    checkReplaceable(runName, files, plan.diverged, checkpointDir, Boolean(settings.overwrite), Boolean(settings.resume));
    fs.rmSync(staging, { recursive: true, force: true });
    fs.mkdirSync(staging, { recursive: true });
    let result: TrainResult;
    try {
      result = await trainLora(settings, run);
    } catch (e) {
      if (o.recordDivergence && e instanceof NonFiniteError) return commitDivergence(plan, settings, e, o.experiment, o.dataParallel);
      // What the earlier run left stays as it was; a resume rebuilds the log from its checkpoint.
      fs.rmSync(staging, { recursive: true, force: true });
      throw e;
    }
    await commitRun(plan, settings, result, o.experiment);
    return { ...result, ...outputs };
  } finally {
    lock.release();
  }
}

/** One of the runs trainRuns trains together: its settings and what trainRun takes beside them. */
export interface ConcurrentRun extends Pick<TrainRunOptions, "runName" | "events" | "label" | "experiment"> {
  settings: Partial<LoraTrainingSettings>;
}

/**
 * trainRun for several runs over one loaded base model (train/concurrent.ts): each run is staged
 * and its files swapped into place as trainRun does, as soon as its pass is done. Runs share
 * outputDir. Returns one result per run, in order; when some fail or the signal stops them, the
 * runs already done stay in place. With `recordDivergence`, a run whose loss or gradient stops
 * being finite is recorded and its result says so (the others' failures are still thrown).
 */
export async function trainRuns(
  runs: ConcurrentRun[],
  o: {
    signal?: AbortSignal;
    concurrentArms?: number | "auto";
    note?: (line: string) => void;
    /** Called when a run's files (or its record of diverging) are in place, before the next pass starts. */
    onRunDone?: (result: TrainRunResult | DivergedRun) => void;
    recordDivergence?: boolean;
  } = {},
): Promise<(TrainRunResult | DivergedRun)[]> {
  const plans = runs.map((r) => ({ ...r, ...planRun(r.settings, r.runName) }));
  const outputDir = plans[0].outputDir;
  const other = plans.find((p) => path.resolve(p.outputDir) !== path.resolve(outputDir));
  if (other)
    throw new Error(`runs trained together write one output folder: ${outputDir} and ${other.outputDir}; train them in separate calls`);
  const twice = plans.find((p, i) => plans.findIndex((q) => q.runName === p.runName) !== i);
  if (twice) throw new Error(`two runs are named ${twice.runName}: give each its own \`runName\``);

  const lock = claimFolder(outputDir, `training runs ${plans.map((p) => p.runName).join(", ")}`, (line) => o.note?.(line));
  const results: (TrainRunResult | DivergedRun)[] = [];
  try {
    for (const p of plans)
      checkReplaceable(p.runName, p.files, p.diverged, p.checkpointDir, Boolean(p.settings.overwrite), Boolean(p.settings.resume));
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
            await commitRun(p, p.settings, result, p.experiment);
            results[i] = { ...result, ...p.outputs };
            o.onRunDone?.(results[i]);
          },
          onRunFailed: (i, error) => {
            const p = plans[i];
            if (!o.recordDivergence || !(error instanceof NonFiniteError)) return;
            results[i] = commitDivergence(p, p.settings, error, p.experiment);
            o.onRunDone?.(results[i]);
          },
        },
      );
    } catch (e) {
      // The runs recorded as diverged are results; any other run that stopped by itself is still an error.
      if (!(e instanceof RunsFailedError)) throw e;
      const failed = e.failures.filter((f) => !results[f.index]);
      if (failed.length > 0) throw failed.length === e.failures.length ? e : new RunsFailedError(failed);
    } finally {
      // What the earlier runs left stays as it was for the runs not done; a resume rebuilds their logs from their checkpoints.
      for (const p of plans) fs.rmSync(p.staging, { recursive: true, force: true });
    }
    return results;
  } finally {
    lock.release();
  }
}

/** Where a run of these settings writes: its staging folder, final names and checkpoint (bad settings refused first). */
function planRun(settings: Partial<LoraTrainingSettings>, name: string | undefined) {
  const outputDir = settings.outputDir ?? "training_results";
  const runName = name ?? settings.init ?? "random";
  if (!/^[\w.+-]+$/.test(runName)) throw new Error(`run name ${JSON.stringify(runName)}: use letters, digits and . _ + - only`);
  checkOutputDir(outputDir, "training folder");
  resolveSettings(LORA_TRAINING, settings); // bad values and combinations are refused before the folder is touched
  const L = trainingLayout(outputDir);
  const files = {
    adapterDir: L.adapter(runName),
    logPath: L.log(runName),
    jsonlPath: L.jsonl(runName),
    tensorboardDir: L.tensorboard(runName),
    summaryPath: L.summary(runName),
    plotFile: L.lossPlot(runName),
  };
  return {
    outputDir,
    runName,
    staging: L.staging(runName),
    files,
    outputs: { runName, ...files },
    diverged: L.diverged(runName),
    checkpointDir: L.checkpoint(runName),
  };
}

type RunPlan = ReturnType<typeof planRun>;

/**
 * Records the run's place in the experiment, draws its loss curves and moves its staged files into
 * their names, all together; an earlier record of the name diverging and the checkpoint go.
 */
async function commitRun(
  { outputDir, staging, checkpointDir, outputs, diverged }: RunPlan,
  settings: Partial<LoraTrainingSettings>,
  result: TrainResult,
  experiment: ExperimentRecord | undefined,
): Promise<void> {
  if (experiment) {
    const file = path.join(staging, RUN_FILES.summary);
    writeFileAtomic(file, `${JSON.stringify({ ...JSON.parse(fs.readFileSync(file, "utf8")), experiment }, null, 2)}\n`);
  }
  const log = runLogFiles(staging);
  await drawLossCurves(path.join(staging, "loss_curves.png"), log.csv, settings, result);
  const rel = (p: string) => path.relative(outputDir, p);
  commitOutputs(outputDir, outputs.runName, [
    { from: rel(path.join(staging, RUN_FILES.adapter)), to: rel(outputs.adapterDir) },
    { from: rel(log.csv), to: rel(outputs.logPath) },
    { from: rel(log.jsonl), to: rel(outputs.jsonlPath) },
    { from: rel(log.tensorboard), to: rel(outputs.tensorboardDir) },
    { from: rel(path.join(staging, "loss_curves.png")), to: rel(outputs.plotFile) },
    { from: rel(path.join(staging, "loss_curves.svg")), to: rel(svgPathFor(outputs.plotFile)) },
    // The summary last: it is what says the run is complete.
    { from: rel(path.join(staging, RUN_FILES.summary)), to: rel(outputs.summaryPath) },
    { from: null, to: rel(diverged) },
    { from: null, to: rel(checkpointDir) },
  ]);
  fs.rmSync(staging, { recursive: true, force: true });
  removeIfEmpty(path.dirname(checkpointDir)); // checkpoints/, once no run has one
}

/**
 * Writes the record of a run that diverged and swaps it and the CSV log of its steps before (the
 * staged one, when it has a row) in, in one commit, for the files of an earlier run of the name
 * and for the run's checkpoint: a diverged run leaves nothing to resume. The loop logs a step only
 * once its loss and gradient are finite, so the log ends at the last finite step.
 */
function commitDivergence(
  { outputDir, runName, staging, files, diverged, checkpointDir }: RunPlan,
  settings: Partial<LoraTrainingSettings>,
  error: NonFiniteError,
  experiment: ExperimentRecord | undefined,
  dp?: DataParallel,
): DivergedRun {
  const s = resolveSettings<LoraTrainingSettings>(LORA_TRAINING, settings);
  const message = `${error.what} at step ${error.step}`;
  const stagedLog = runLogFiles(staging).csv;
  const logPath = hasRows(stagedLog) ? files.logPath : null;
  const record: DivergedRecord = {
    made_by: "svdlora",
    kind: "diverged LoRA training run",
    code: codeVersion(),
    run: runName,
    arm: experiment?.arm ?? s.init,
    seed: s.seed,
    learningRate: s.learningRate,
    step: error.step,
    message,
    log: logPath && path.basename(logPath),
    settings: s,
    ...provenance(LORA_TRAINING, s, dp ?? singleProcess(s.device)),
    ...(experiment ? { experiment } : {}),
  };
  const staged = path.join(staging, path.basename(diverged));
  fs.mkdirSync(staging, { recursive: true });
  writeFileAtomic(staged, `${JSON.stringify(record, null, 2)}\n`);
  const rel = (p: string) => path.relative(outputDir, p);
  commitOutputs(outputDir, runName, [
    ...runFilePaths(files).map((f) => ({ from: f === logPath ? rel(stagedLog) : null, to: rel(f) })),
    // The record last: it is what says the run diverged.
    { from: rel(staged), to: rel(diverged) },
    { from: null, to: rel(checkpointDir) },
  ]);
  fs.rmSync(staging, { recursive: true, force: true });
  removeIfEmpty(path.dirname(checkpointDir));
  return { diverged: true, runName, recordPath: diverged, logPath, step: error.step, message };
}

/** Every file a finished run of the plan leaves under the experiment's names, its loss plot's SVG included. */
const runFilePaths = (files: RunPlan["files"]) => [...Object.values(files), svgPathFor(files.plotFile)];

/** Whether a training log is there with at least one row (a step's or an evaluation's). */
function hasRows(file: string): boolean {
  if (!fs.existsSync(file)) return false;
  const log = readTrainingLog(file);
  return log.train.length + log.eval.length > 0;
}

/**
 * An earlier run of this name is replaced only when asked (overwrite, or resume of its own
 * checkpoint), and only when it is svdlora's: its summary says so. A file under one of the run's
 * names that no svdlora run owns is never touched.
 */
function checkReplaceable(
  runName: string,
  files: Omit<TrainRunResult, keyof TrainResult | "runName">,
  diverged: string,
  checkpointDir: string,
  overwrite: boolean,
  resume: boolean,
): void {
  assertReplaceable(checkpointDir); // a checkpoint folder is svdlora's (it carries the marker), or refused
  const present = [...runFilePaths(files), diverged].filter((p) => fs.existsSync(p));
  // A run is svdlora's when its summary says so, or (a run that diverged) its record does.
  const owned = madeBySvdlora(files.summaryPath) || madeBySvdlora(diverged);
  if (present.length > 0 && !owned)
    throw new Error(
      `${present[0]} exists but no svdlora run owns it (no complete ${path.basename(files.summaryPath)}): move it away or choose another output folder`,
    );
  if (owned && !overwrite && !resume)
    throw new Error(
      `a run named ${runName} is already in ${path.dirname(files.summaryPath)}: replace it with \`overwrite\`, or give this run another name or output folder`,
    );
  if (owned && resume && !overwrite && !hasCheckpoint(checkpointDir))
    throw new Error(
      `the run named ${runName} in ${path.dirname(files.summaryPath)} is complete: there is nothing to resume; replace it with \`overwrite\``,
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

function madeBySvdlora(file: string): boolean {
  try {
    return (JSON.parse(fs.readFileSync(file, "utf8")) as { made_by?: unknown }).made_by === "svdlora";
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
