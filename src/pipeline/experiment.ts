// The whole experiment as four steps over one folder (docs/experiment.md), from an experiment's
// settings (pipeline/settings.ts):
//   1. the random-init baseline (and, for the cross-fitted control, a random run on half the data);
//   2. a teacher synthesized from each of those runs, and its SVD (and full fine-tunes' real ΔW);
//   3. every other arm: svd from its seed's teacher, the controls, and the other inits;
//   4. the comparison (paired by seed) and report.html.
// Every run is repeated for each seed and each learning rate of the grid; run k of every arm uses
// seed k, so runs are paired. Every run and step records the settings and inputs that made it; a
// step counts as done only when its outputs are all there and were made with the settings it
// would use now.
import fs from "node:fs";
import path from "node:path";
import { loadDataset } from "../data/dataset.js";
import { Random } from "../data/probability/random.js";
import { EMBEDDED_ACCURACY, EMBEDDED_TRAIN } from "../paths.js";
import { canShareBase, trainsTogether } from "../train/concurrent.js";
import { LORA_TRAINING, type LoraTrainingSettings, NO_SETTING } from "../train/settings.js";
import { resolveSettings } from "../train/trainer.js";
import { writeFileAtomic } from "../util/atomic.js";
import { describeInput, fileDigest, sameInput } from "../util/digest.js";
import { checkOutputDir } from "../util/files.js";
import { claimFolder, isComplete, isOurFolder, writeOutputs } from "../util/outputs.js";
import { differences, identityOf, parseConfigText, readSettings, showValue } from "../util/settings.js";
import { measureAccuracy } from "./accuracy.js";
import { compareRuns, comparisonOutputs, writeComparisonInto } from "./compare.js";
import { firstTeacherSuffix, gridded, layout, learningRates, suffix, teacherLayout } from "./layout.js";
import { renderExperimentReport } from "./report.js";
import { EXPERIMENT, type ExperimentConfig } from "./settings.js";
import { svdFiles, svdInto } from "./svd.js";
import { synthesisFiles, synthesizeInto } from "./synthesize.js";
import { type DivergedRun, type TrainRunOptions, type TrainRunResult, trainRun, trainRuns } from "./train.js";
import { fullFinetuneBaseline, fullFinetuneLayout } from "./train-full.js";

export { EXPERIMENT, type ExperimentConfig };

/** Reads a JSON or YAML experiment file: every name must be a setting (or its Hugging Face / LLaMA-Factory spelling). */
export function readExperimentFile(text: string, file: string): Partial<ExperimentConfig> {
  return readSettings(EXPERIMENT, parseConfigText(text, file), file, NO_SETTING);
}

export type StepId = 1 | 2 | 3 | 4;
export const STEP_NAMES: Record<StepId, string> = {
  1: "train the random-init LoRA baseline (every seed and learning rate)",
  2: "synthesize a teacher ΔW from each baseline run and analyse it with SVD (and full fine-tunes' real ΔW)",
  3: "train the SVD-initialized LoRA, the controls and the other arms",
  4: "compare the arms, paired by seed, and write report.html",
};

export const experimentLayout = (c: ExperimentConfig) =>
  layout(c.outputDir, { targetRank: c.targetRank, rank: c.loraRank, teacherSuffix: firstTeacherSuffix(c) });

// ---- the plan ------------------------------------------------------------------------------------

const seedsOf = (c: ExperimentConfig) => Array.from({ length: c.seeds }, (_, k) => k);

/** Run names: the arm, then the suffix. */
export const runName = (c: ExperimentConfig, arm: string, lr: number, k: number) => `${arm}${suffix(c, lr, k)}`;

/** A teacher: synthesized from a random run ("svd") or from the half-data random run ("xfit"). */
const teacherSuffix = (c: ExperimentConfig, from: "random" | "random-half", lr: number, k: number) =>
  `${from === "random" ? "" : "-xfit"}${suffix(c, lr, k)}`;
const teacherOf = (c: ExperimentConfig, from: "random" | "random-half", lr: number, k: number) =>
  teacherLayout(c.outputDir, teacherSuffix(c, from, lr, k), c);

const fullLayout = (c: ExperimentConfig, k: number) => fullFinetuneLayout(c.outputDir, c.loraRank, k === 0 ? "" : `-s${k + 1}`);

/** The arms run in step 1 (their runs are the teachers' sources). */
const sourceArms = (c: ExperimentConfig): ("random" | "random-half")[] =>
  c.arms.includes("svd-xfit") ? ["random", "random-half"] : ["random"];
/** The arms run in step 3. */
const laterArms = (c: ExperimentConfig): string[] => ["svd", ...c.arms];
const needsFullFinetune = (c: ExperimentConfig, k: number) => c.arms.includes("svd-full") || (c.fullFinetune && k === 0);
/** A full fine-tune is done when its model and its SVD analysis are there and complete. */
const fullFinetuneDone = (c: ExperimentConfig, k: number) => isComplete(fullLayout(c, k).model) && isComplete(fullLayout(c, k).analysis);

/**
 * The training data of the cross-fitted teacher's run: half of the training set, drawn with the
 * seed. The file is the experiment's own; it is rewritten whenever it does not hold that half (the
 * training data or the seed changed), so a run never trains on a stale half.
 */
function halfData(c: ExperimentConfig, k: number): string {
  const file = path.join(c.outputDir, "data", `train_half${k === 0 ? "" : `-s${k + 1}`}.json`);
  const samples = loadDataset(c.trainData);
  const order = new Random(c.seed + k).shuffle(samples.map((_, i) => i));
  const half = order.slice(0, Math.floor(samples.length / 2)).sort((a, b) => a - b);
  const text = `${JSON.stringify(
    half.map((i) => ({ messages: samples[i].messages })),
    null,
    1,
  )}\n`;
  if (!fs.existsSync(file) || fs.readFileSync(file, "utf8") !== text) {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    writeFileAtomic(file, text);
  }
  return file;
}

/** What a run of arm at (lr, k) starts from and depends on. */
interface Planned {
  name: string;
  arm: string;
  /** Its learning rate and seed index. */
  lr: number;
  k: number;
  settings: Partial<LoraTrainingSettings>;
  /** Runs (in the training folder) whose compute this one counts. */
  dependsOn: string[];
  /** Compute outside the training folder it counts: teacher synthesis and SVD, a full fine-tune. */
  external: () => { what: string; tokens: number; seconds: number }[];
  /** Only a teacher's source, trained on other data: not an arm of the comparison. */
  sourceOnly?: boolean;
}

const seconds = (file: string) => (fs.existsSync(file) ? (JSON.parse(fs.readFileSync(file, "utf8")) as { seconds: number }).seconds : 0);
const teacherCost = (T: ReturnType<typeof teacherLayout>) => [
  { what: `teacher synthesis (${path.basename(T.teacher)})`, tokens: 0, seconds: seconds(T.synthesisTiming) },
  { what: `teacher SVD (${path.basename(T.svd)})`, tokens: 0, seconds: seconds(T.svdTiming) },
];

/** The run of arm at learning rate lr and seed index k. */
export function plan(c: ExperimentConfig, arm: string, lr: number, k: number): Planned {
  const {
    arms: _a,
    seeds: _s,
    targetRank: _t,
    noiseScale: _n,
    decay: _d,
    factorSplit: _f,
    fullFinetune: _ff,
    lrGrid: _g,
    primary: _p,
    // Accuracy is measured after training, for the runs the comparison uses (step 4): not the runs' business.
    accuracyData: _ad,
    accuracySamples: _as,
    maxNewTokens: _mn,
    generationBatchSize: _gb,
    concurrentArms: _c,
    outputDir,
    ...shared
  } = c;
  const base: Partial<LoraTrainingSettings> = {
    ...shared,
    learningRate: lr,
    validationFraction: gridded(c) ? c.validationFraction : 0,
    outputDir: experimentLayout(c).training,
    init: "random",
    seed: c.seed + k,
    overwrite: true, // the experiment owns its runs: a step that reruns replaces them
  };
  const name = runName(c, arm, lr, k);
  const run = { name, arm, lr, k };
  const from = (init: LoraTrainingSettings["init"], svdFactors?: string) => ({ ...base, init, svdFactors });
  const none = () => [];
  switch (arm) {
    case "random":
      return { ...run, settings: base, dependsOn: [], external: none };
    case "random-half":
      return { ...run, settings: { ...base, trainData: halfData(c, k) }, dependsOn: [], external: none, sourceOnly: true };
    case "svd":
    case "svd-xfit": {
      const source = arm === "svd" ? "random" : "random-half";
      const T = teacherOf(c, source, lr, k);
      return { ...run, settings: from("svd", T.factors), dependsOn: [runName(c, source, lr, k)], external: () => teacherCost(T) };
    }
    case "svd-full": {
      const F = fullLayout(c, k);
      return {
        ...run,
        settings: from("svd", F.factors),
        dependsOn: [],
        external: () => {
          const full = fs.existsSync(F.summary)
            ? (JSON.parse(fs.readFileSync(F.summary, "utf8")) as { result: { tokens: number; seconds: number } }).result
            : null;
          return [
            { what: `full fine-tune (${path.basename(F.root)})`, tokens: full?.tokens ?? 0, seconds: full?.seconds ?? 0 },
            { what: `its SVD`, tokens: 0, seconds: seconds(F.svdTiming) },
          ];
        },
      };
    }
    case "random-continued": {
      // The random run of the same seed trained again from its own adapter: the svd arm's compute without the teacher.
      const source = runName(c, "random", lr, k);
      return { ...run, settings: from("svd", experimentLayout(c).adapter(source)), dependsOn: [source], external: none };
    }
    default:
      return { ...run, settings: from(arm as LoraTrainingSettings["init"]), dependsOn: [], external: none };
  }
}

const runsOf = (c: ExperimentConfig, arms: readonly string[]) =>
  arms.flatMap((arm) => learningRates(c).flatMap((lr) => seedsOf(c).map((k) => plan(c, arm, lr, k))));

// ---- what is done ------------------------------------------------------------------------------

/** Whether a step's outputs are there, complete and made with these settings; if not, why. */
export type StepState = { done: true } | { done: false; why: string; stale: boolean };
/** A run's state: done as the grid search's result that it diverged, too. */
type RunState = StepState | { done: true; diverged: true };

function readJson(file: string): Record<string, unknown> | null {
  try {
    return JSON.parse(fs.readFileSync(file, "utf8")) as Record<string, unknown>;
  } catch {
    return null;
  }
}

const describeChanges = (changed: Map<string, [unknown, unknown]>) =>
  [...changed].map(([key, [then, now]]) => `${key} ${showValue(then)} (now ${showValue(now)})`).join(", ");

/** How an input recorded as `recorded` (describeInput) differs from what is at its path now; null when it does not. */
function inputChange(key: string, recorded: RecordedInput | undefined): string | null {
  if (!recorded?.path) return null;
  if (!fs.existsSync(recorded.path)) return `its ${key} ${recorded.path} is gone`;
  return sameInput({ ...recorded, path: recorded.path }) ? null : `its ${key} ${recorded.path} has changed since it ran`;
}

type RecordedInput = { path?: string; sha256?: string; files?: Record<string, string | number> };

/**
 * A run's state: its summary, adapter and log are there and complete — or, with a learning-rate
 * grid, its record of diverging is there, with the log it names — and the summary (the record)
 * records the same identity (training and evaluation) and the same inputs (their digests) as now.
 */
function runState(c: ExperimentConfig, p: Planned): RunState {
  const L = experimentLayout(c);
  const diverged = gridded(c) && !fs.existsSync(L.summary(p.name)) && fs.existsSync(L.diverged(p.name));
  const file = diverged ? L.diverged(p.name) : L.summary(p.name);
  const summary = readJson(file) as {
    made_by?: string;
    identity?: { training: object; evaluation: object };
    inputs?: Record<string, RecordedInput>;
    /** A diverged run's log, when it logged a row. */
    log?: string | null;
  } | null;
  if (!summary) return { done: false, why: `${p.name} has not run`, stale: false };
  if (summary.made_by !== "svdlora" || !summary.identity)
    return { done: false, why: `${file} was not written by this svdlora`, stale: true };
  if (!diverged && !isOurFolder(L.adapter(p.name)))
    return { done: false, why: `${p.name} is incomplete: ${L.adapter(p.name)} is missing`, stale: true };
  if ((!diverged || summary.log) && !fs.existsSync(L.log(p.name)))
    return { done: false, why: `${p.name} is incomplete: ${L.log(p.name)} is missing`, stale: true };
  const s = resolveSettings<LoraTrainingSettings>(LORA_TRAINING, p.settings);
  const want = { ...identityOf(LORA_TRAINING, s), ...identityOf(LORA_TRAINING, s, { evaluation: true }) };
  const have = { ...summary.identity.training, ...summary.identity.evaluation } as Record<string, unknown>;
  const changed = differences(have, want, ["gpus", "ranks"]);
  if (changed.size > 0) return { done: false, why: `${p.name} was made with ${describeChanges(changed)}`, stale: true };
  for (const [key, recorded] of Object.entries(summary.inputs ?? {})) {
    const change = inputChange(key, recorded);
    if (change) return { done: false, why: `${p.name}: ${change}`, stale: true };
  }
  return diverged ? { done: true, diverged: true } : { done: true };
}

const hasDiverged = (c: ExperimentConfig, p: Planned) => "diverged" in runState(c, p);

/** The run of step 1 that p starts from (a teacher's source, or the run it continues), if it diverged: p cannot be trained. */
function divergedSource(c: ExperimentConfig, p: Planned): string | undefined {
  const source = sourceArms(c).find((from) => p.dependsOn.includes(runName(c, from, p.lr, p.k)));
  return source && hasDiverged(c, plan(c, source, p.lr, p.k)) ? runName(c, source, p.lr, p.k) : undefined;
}

/** The teacher step's record: what it was made from and with. */
function teacherRecord(c: ExperimentConfig, from: "random" | "random-half", lr: number, k: number) {
  const adapter = experimentLayout(c).adapter(runName(c, from, lr, k));
  return {
    made_by: "svdlora",
    step: 2,
    settings: {
      targetRank: c.targetRank,
      noiseScale: c.noiseScale,
      decay: c.decay,
      seed: c.seed + k,
      rank: c.loraRank,
      alpha: c.loraAlpha,
      rslora: c.rslora,
      factorSplit: c.factorSplit,
    },
    inputs: { adapter: isOurFolder(adapter) ? describeInput(path.join(adapter, "adapter_model.safetensors")).sha256 : null },
  };
}

/** A teacher's outputs, relative to the experiment folder: the teacher's files, the SVD's, and the record last. */
function teacherOutputs(c: ExperimentConfig, from: "random" | "random-half", lr: number, k: number) {
  const T = teacherOf(c, from, lr, k);
  const rel = (p: string) => path.relative(c.outputDir, p);
  return {
    teacher: Object.values(synthesisFiles(c.targetRank)).map((f) => rel(path.join(T.teacher, f))),
    svd: Object.values(svdFiles(c.loraRank)).map((f) => rel(path.join(T.svd, f))),
    record: rel(T.record),
  };
}

function teacherState(c: ExperimentConfig, from: "random" | "random-half", lr: number, k: number): StepState {
  if (hasDiverged(c, plan(c, from, lr, k))) return { done: true }; // a run that diverged has no teacher
  const T = teacherOf(c, from, lr, k);
  const what = `the teacher of ${runName(c, from, lr, k)}`;
  const have = readJson(T.record);
  if (!have) return { done: false, why: `${what} has not been made`, stale: false };
  const want = teacherRecord(c, from, lr, k);
  const changed = differences({ ...(have.settings as object), ...(have.inputs as object) }, { ...want.settings, ...want.inputs });
  if (changed.size > 0) return { done: false, why: `${what} was made with ${describeChanges(changed)}`, stale: true };
  const missing = [T.delta, T.factors, T.analysis, T.record].find((p) => !isComplete(p));
  return missing ? { done: false, why: `${missing} is missing or incomplete`, stale: true } : { done: true };
}

/**
 * What report.html and the comparison were made from: the digest of every run's summary, log and
 * accuracy record, of each teacher's record, analysis and timings, and of the full fine-tunes' analyses.
 */
function reportInputs(c: ExperimentConfig): Record<string, string> {
  const L = experimentLayout(c);
  const files = fs.existsSync(L.training)
    ? fs
        .readdirSync(L.training)
        .filter((f) => /^(train_summary_.+\.json|training_log_.+\.csv|accuracy_.+\.json|diverged_.+\.json)$/.test(f))
        .map((f) => path.join(L.training, f))
    : [];
  for (const from of sourceArms(c))
    for (const lr of learningRates(c))
      for (const k of seedsOf(c)) {
        const T = teacherOf(c, from, lr, k);
        files.push(
          T.record,
          T.analysis,
          path.join(T.teacher, synthesisFiles(c.targetRank).timing),
          path.join(T.svd, svdFiles(c.loraRank).timing),
        );
      }
  for (const k of seedsOf(c)) if (needsFullFinetune(c, k)) files.push(fullLayout(c, k).analysis);
  return Object.fromEntries(
    files
      .filter((f) => fs.existsSync(f))
      .sort()
      .map((f) => [path.relative(c.outputDir, f), fileDigest(f)]),
  );
}

function reportState(c: ExperimentConfig): StepState {
  const L = experimentLayout(c);
  const record = readJson(L.reportRecord) as { made_by?: string; inputs?: Record<string, string> } | null;
  if (!record || !fs.existsSync(L.html)) return { done: false, why: "no report yet", stale: false };
  const incomplete = [L.html, L.comparisonJson, L.reportRecord].find((p) => !isComplete(p));
  if (incomplete) return { done: false, why: `${incomplete} is missing or incomplete`, stale: false };
  const now = reportInputs(c);
  const was = record.inputs ?? {};
  const changed = [...new Set([...Object.keys(now), ...Object.keys(was)])].find((f) => now[f] !== was[f]);
  if (changed === undefined) return { done: true };
  const what = !(changed in was) ? "is new" : !(changed in now) ? "is gone" : "has changed";
  return { done: false, why: `${changed} ${what} since the report was made`, stale: false };
}

export function stepState(c: ExperimentConfig, step: StepId): StepState {
  const first = (states: StepState[]): StepState => states.find((s) => !s.done) ?? { done: true };
  switch (step) {
    case 1:
      return first(runsOf(c, sourceArms(c)).map((p) => runState(c, p)));
    case 2: {
      const teachers = first(
        sourceArms(c).flatMap((from) => learningRates(c).flatMap((lr) => seedsOf(c).map((k) => teacherState(c, from, lr, k)))),
      );
      if (!teachers.done) return teachers;
      const fullMissing = seedsOf(c).find((k) => needsFullFinetune(c, k) && !fullFinetuneDone(c, k));
      return fullMissing === undefined
        ? { done: true }
        : { done: false, why: `the full fine-tune of seed ${c.seed + fullMissing} has not run`, stale: false };
    }
    case 3:
      return first(runsOf(c, laterArms(c)).map((p) => (divergedSource(c, p) ? { done: true } : runState(c, p))));
    case 4:
      return reportState(c);
  }
}

// ---- running -----------------------------------------------------------------------------------

export interface ExperimentOptions extends Pick<TrainRunOptions, "signal" | "events"> {
  /** Redo steps that are done, and replace outputs made with other settings. */
  force?: boolean;
  /** Where progress lines go (default: nowhere). */
  log?: (line: string) => void;
}

const evalSpan = (r: { evalLosses: { loss: number }[] }) =>
  `held-out loss ${r.evalLosses[0]?.loss.toFixed(4) ?? "-"} → ${r.evalLosses.at(-1)?.loss.toFixed(4) ?? "-"}`;

export async function runStep(c: ExperimentConfig, step: StepId, o: ExperimentOptions = {}): Promise<void> {
  const log = o.log ?? (() => {});
  const L = experimentLayout(c);
  // A step that stopped part-way keeps what it finished: its runs, teachers and fine-tunes that are
  // done with these settings are not made again (`force` redoes everything).
  const done = (r: TrainRunResult | DivergedRun) =>
    log(
      "diverged" in r
        ? `  ${r.runName}: diverged (${r.message}), recorded in ${path.basename(r.recordPath)}${r.logPath ? ` with its log up to then (${path.basename(r.logPath)})` : ""}: its learning rate loses`
        : `  ${r.runName}: ${r.steps} steps, ${r.seconds.toFixed(1)} s, ${evalSpan(r)}`,
    );
  // With a grid, a run whose loss or gradient stops being finite is the grid's result (it diverged)
  // and the step goes on; with one learning rate it is an error.
  const recordDivergence = gridded(c);
  // The runs of a step depend on none of each other: they train one after another, or together
  // over one base model in passes of `concurrentArms` (train/concurrent.ts), into the same files.
  // A run whose init cannot share the base (DoRA, LoftQ, the inits with a calibration pass) trains
  // in a pass of its own.
  const train = async (planned: Planned[]) => {
    const todo = planned.filter((p) => {
      const source = divergedSource(c, p);
      if (source) log(`  ${p.name}: not trained, ${source} (which it starts from) diverged`);
      else if (o.force || !runState(c, p).done) return true;
      else log(`  ${p.name}: ${hasDiverged(c, p) ? "diverged" : "done"} with these settings, kept`);
      return false;
    });
    const each = todo.map((p) => ({
      settings: p.settings,
      runName: p.name,
      events: o.events,
      label: `train ${p.name}`,
      experiment: { arm: p.arm, dependsOn: p.dependsOn, external: p.external(), ...(p.sourceOnly ? { sourceOnly: true } : {}) },
    }));
    const together = trainsTogether(c.concurrentArms, c.device) ? each.filter((r) => canShareBase(r.settings)) : [];
    if (together.length > 1)
      await trainRuns(together, {
        signal: o.signal,
        concurrentArms: c.concurrentArms,
        note: (line) => log(`  ${line}`),
        onRunDone: done,
        recordDivergence,
      });
    for (const { settings, ...r } of each.filter((r) => together.length <= 1 || !together.includes(r)))
      done(await trainRun(settings, { ...r, signal: o.signal, recordDivergence }));
  };
  switch (step) {
    case 1:
      await train(runsOf(c, sourceArms(c)));
      return;
    case 2: {
      for (const from of sourceArms(c))
        for (const lr of learningRates(c))
          for (const k of seedsOf(c)) {
            const source = runName(c, from, lr, k);
            if (hasDiverged(c, plan(c, from, lr, k))) {
              log(`  teacher of ${source}: none, ${source} diverged`);
              continue;
            }
            const adapter = L.adapter(source);
            if (!fs.existsSync(adapter)) throw new Error(`step 2 needs the adapter of ${source} (${adapter}): run step 1 first`);
            const T = teacherOf(c, from, lr, k);
            if (!o.force && teacherState(c, from, lr, k).done) {
              log(`  teacher of ${source}: done with these settings, kept`);
              continue;
            }
            const out = teacherOutputs(c, from, lr, k);
            // Teacher, SVD and record are swapped in together: a kill leaves the earlier teacher or this one.
            const { s, v } = await writeOutputs(
              {
                root: c.outputDir,
                name: `teacher${teacherSuffix(c, from, lr, k)}`,
                by: "run step 2",
                outputs: [...out.teacher, ...out.svd, out.record],
              },
              async (staged) => {
                const inFolder = (dir: string) => (name: string) => staged(path.relative(c.outputDir, path.join(dir, name)));
                const s = await synthesizeInto(
                  {
                    loraAdapter: adapter,
                    outputDir: T.teacher,
                    targetRank: c.targetRank,
                    noiseScale: c.noiseScale,
                    decay: c.decay,
                    seed: c.seed + k,
                  },
                  inFolder(T.teacher),
                );
                const v = await svdInto(
                  {
                    synthesizedDelta: T.delta,
                    baseModel: c.baseModel,
                    targetModules: [],
                    rank: c.loraRank,
                    alpha: c.loraAlpha,
                    rslora: c.rslora,
                    split: c.factorSplit,
                    outputDir: T.svd,
                  },
                  inFolder(T.svd),
                  (file) => (file === T.delta ? s.deltaFile : file),
                );
                writeFileAtomic(staged(out.record), `${JSON.stringify(teacherRecord(c, from, lr, k), null, 2)}\n`);
                return { s, v };
              },
              log,
            );
            log(
              `  teacher of ${source}: rank ${c.targetRank}, noise ${c.noiseScale} (${s.seconds.toFixed(2)} s); ` +
                `SVD at rank ${c.loraRank}: mean error ${v.summary.relativeError.mean.toFixed(4)}, mean energy ${v.summary.energyRatio.mean.toFixed(4)} (${v.seconds.toFixed(2)} s)`,
            );
          }
      for (const k of seedsOf(c))
        if (needsFullFinetune(c, k) && (o.force || !fullFinetuneDone(c, k)))
          await fullFinetuneBaseline(c, { log, signal: o.signal, events: o.events, seedIndex: k });
      return;
    }
    case 3: {
      const planned = runsOf(c, laterArms(c));
      for (const p of planned)
        if (p.settings.svdFactors && !fs.existsSync(p.settings.svdFactors) && !divergedSource(c, p))
          throw new Error(
            `step 3 needs ${p.settings.svdFactors} for ${p.name}: run ${p.arm === "random-continued" ? "step 1" : "step 2"} first`,
          );
      await train(planned);
      return;
    }
    case 4: {
      let result = compareRuns(L.training, { primary: c.primary });
      if (c.accuracySamples > 0) {
        const questions = c.accuracyData ?? (path.resolve(c.trainData) === path.resolve(EMBEDDED_TRAIN) ? EMBEDDED_ACCURACY : undefined);
        if (!questions) throw new Error("the accuracy check needs questions: give `accuracyData`, or set `accuracySamples` to 0");
        const runs = result.arms.flatMap((a) => a.runs.map((name) => ({ name, adapterDir: L.adapter(name) })));
        log(`  accuracy on ${c.accuracySamples} questions of ${questions}: ${runs.length} runs (each arm at its learning rate)`);
        await measureAccuracy(L.training, runs, { ...c, questions, samples: c.accuracySamples }, o.events);
        result = compareRuns(L.training, { primary: c.primary });
      }
      // The comparison, report.html and their record are swapped in together.
      const rel = (p: string) => path.relative(c.outputDir, p);
      const comparison = comparisonOutputs().map((f) => rel(path.join(L.training, f)));
      await writeOutputs(
        { root: c.outputDir, name: "report", by: "run step 4", outputs: [...comparison, rel(L.html), rel(L.reportRecord)] },
        async (staged) => {
          await writeComparisonInto(L.training, result, (f) => staged(rel(path.join(L.training, f))));
          const pending = new Map(comparison.map((f) => [path.resolve(c.outputDir, f), path.resolve(staged(f))]));
          fs.writeFileSync(staged(rel(L.html)), renderExperimentReport(c, L, pending));
          const record = { made_by: "svdlora", step: 4, inputs: reportInputs(c) };
          fs.writeFileSync(staged(rel(L.reportRecord)), `${JSON.stringify(record, null, 2)}\n`);
        },
        log,
      );
      log(`  ${L.comparisonReport}\n  ${L.html}`);
      return;
    }
  }
}

/** Runs the given steps in order: done ones are skipped; ones made with other settings are refused unless forced. */
export async function runExperiment(c: ExperimentConfig, steps: StepId[], o: ExperimentOptions = {}): Promise<void> {
  const log = o.log ?? (() => {});
  checkOutputDir(c.outputDir, "experiment folder");
  resolveSettings(LORA_TRAINING, plan(c, "random", learningRates(c)[0], 0).settings); // refuses settings without effect before any step
  // One run per experiment folder at a time; what a killed run left half done is finished first.
  const lock = claimFolder(c.outputDir, `svdlora run (steps ${steps.join(",")})`, o.events?.note ?? log);
  try {
    for (const step of steps) await runOrSkip(c, step, o, log);
  } finally {
    lock.release();
  }
}

async function runOrSkip(c: ExperimentConfig, step: StepId, o: ExperimentOptions, log: (line: string) => void): Promise<void> {
  const state = stepState(c, step);
  if (!o.force && state.done) {
    log(`step ${step}: ${STEP_NAMES[step]} — done with these settings, skipped (\`force\` redoes it)`);
    return;
  }
  if (!o.force && !state.done && state.stale)
    throw new Error(`step ${step}: ${state.why}; rerun with \`force\` to replace its outputs, or use another output folder`);
  log(`step ${step}: ${STEP_NAMES[step]}${state.done ? "" : ` (${state.why})`}`);
  await runStep(c, step, o);
}
