// The whole experiment as four steps over one folder (docs/experiment.md), from an experiment's
// settings (pipeline/settings.ts). Every run and step records the settings and inputs that made it;
// a step counts as done only when its outputs are all there and were made with the settings it
// would use now. Seed k of every arm is paired: same batch order, and the svd run of seed k starts
// from the teacher synthesized from the random run of seed k.
import fs from "node:fs";
import path from "node:path";
import { LORA_TRAINING, type LoraTrainingSettings } from "../train/settings.js";
import { resolveSettings } from "../train/trainer.js";
import { writeFileAtomic } from "../util/atomic.js";
import { describeInput, fileDigest, sameInput } from "../util/digest.js";
import { claimFolder, isComplete, isOurFolder, writeOutputs } from "../util/outputs.js";
import { differences, identityOf, parseConfigText, readSettings, showValue } from "../util/settings.js";
import { compareRuns, comparisonOutputs, writeComparisonInto } from "./compare.js";
import { layout, teacherLayout } from "./layout.js";
import { renderExperimentReport } from "./report.js";
import { EXPERIMENT, type ExperimentConfig } from "./settings.js";
import { svdFiles, svdInto } from "./svd.js";
import { synthesisFiles, synthesizeInto } from "./synthesize.js";
import { type TrainRunOptions, trainRun } from "./train.js";
import { fullFinetuneBaseline, fullFinetuneLayout } from "./train-full.js";

export { EXPERIMENT, type ExperimentConfig };

/** Reads a JSON or YAML experiment file: every name must be a setting (or its Hugging Face / LLaMA-Factory spelling). */
export function readExperimentFile(text: string, file: string): Partial<ExperimentConfig> {
  return readSettings(EXPERIMENT, parseConfigText(text, file), file);
}

export type StepId = 1 | 2 | 3 | 4;
export const STEP_NAMES: Record<StepId, string> = {
  1: "train the random-init LoRA baseline",
  2: "synthesize the teacher ΔW from each baseline run and analyse it with SVD (and a real full fine-tune's ΔW)",
  3: "train the SVD-initialized LoRA (and the extra arms)",
  4: "compare the runs and write report.html",
};

export const experimentLayout = (c: ExperimentConfig) => layout(c.outputDir, { targetRank: c.targetRank, rank: c.loraRank });

/** Run names: the first seed's run is named after its arm, later ones "<arm>-s<k+1>". */
export const runName = (arm: string, k: number) => (k === 0 ? arm : `${arm}-s${k + 1}`);

/** The settings of arm's run at seed index k. */
export function runSettings(c: ExperimentConfig, arm: string, k: number): Partial<LoraTrainingSettings> {
  const { arms: _a, seeds: _s, targetRank: _t, noiseScale: _n, decay: _d, factorSplit: _f, fullFinetune: _ff, outputDir, ...shared } = c;
  return {
    ...shared,
    outputDir: experimentLayout(c).training,
    init: arm === "svd" ? "svd" : (arm as LoraTrainingSettings["init"]),
    svdFactors: arm === "svd" ? teacherLayout(outputDir, k, c).factors : undefined,
    seed: c.seed + k,
    overwrite: true, // the experiment owns its runs: a step that reruns replaces them
  };
}

// ---- what is done ------------------------------------------------------------------------------

/** Whether a step's outputs are there, complete and made with these settings; if not, why. */
export type StepState = { done: true } | { done: false; why: string; stale: boolean };

const seedsOf = (c: ExperimentConfig) => Array.from({ length: c.seeds }, (_, k) => k);

function readJson(file: string): Record<string, unknown> | null {
  try {
    return JSON.parse(fs.readFileSync(file, "utf8")) as Record<string, unknown>;
  } catch {
    return null;
  }
}

/** How an input recorded as `recorded` (describeInput) differs from what is at its path now; null when it does not. */
function inputChange(key: string, recorded: RecordedInput | undefined): string | null {
  if (!recorded?.path) return null;
  if (!fs.existsSync(recorded.path)) return `its ${key} ${recorded.path} is gone`;
  return sameInput({ ...recorded, path: recorded.path }) ? null : `its ${key} ${recorded.path} has changed since it ran`;
}

type RecordedInput = { path?: string; sha256?: string; files?: Record<string, string | number> };

/**
 * A run's state: its summary, adapter and log are there and complete, and the summary records
 * the same identity (training and evaluation) and the same inputs (their digests) as now.
 */
function runState(c: ExperimentConfig, arm: string, k: number): StepState {
  const name = runName(arm, k);
  const L = experimentLayout(c);
  const file = L.summary(name);
  const summary = readJson(file) as {
    made_by?: string;
    identity?: { training: object; evaluation: object };
    inputs?: Record<string, RecordedInput>;
  } | null;
  if (!summary) return { done: false, why: `${name} has not run`, stale: false };
  if (summary.made_by !== "svdlora" || !summary.identity)
    return { done: false, why: `${file} was not written by this svdlora`, stale: true };
  const missing = [L.adapter(name), L.log(name)].find((p) => !(p === L.adapter(name) ? isOurFolder(p) : fs.existsSync(p)));
  if (missing) return { done: false, why: `${name} is incomplete: ${missing} is missing`, stale: true };
  const s = resolveSettings<LoraTrainingSettings>(LORA_TRAINING, runSettings(c, arm, k));
  const want = { ...identityOf(LORA_TRAINING, s), ...identityOf(LORA_TRAINING, s, { evaluation: true }) };
  const have = { ...summary.identity.training, ...summary.identity.evaluation } as Record<string, unknown>;
  const changed = differences(have, want, ["gpus", "ranks"]);
  if (changed.size > 0) return { done: false, why: `${name} was made with ${describeChanges(changed)}`, stale: true };
  for (const [key, recorded] of Object.entries(summary.inputs ?? {})) {
    const change = inputChange(key, recorded);
    if (change) return { done: false, why: `${name}: ${change}`, stale: true };
  }
  return { done: true };
}

const describeChanges = (changed: Map<string, [unknown, unknown]>) =>
  [...changed].map(([key, [then, now]]) => `${key} ${showValue(then)} (now ${showValue(now)})`).join(", ");

/** The teacher step's record: what it was made from and with. */
function teacherRecord(c: ExperimentConfig, k: number) {
  const adapter = experimentLayout(c).adapter(runName("random", k));
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

/** Step 2's outputs for seed index k, relative to the experiment folder: the teacher's files, the SVD's, and the record last. */
function teacherOutputs(c: ExperimentConfig, k: number): { teacher: string[]; svd: string[]; record: string } {
  const T = teacherLayout(c.outputDir, k, c);
  const rel = (p: string) => path.relative(c.outputDir, p);
  return {
    teacher: Object.values(synthesisFiles(c.targetRank)).map((f) => rel(path.join(T.teacher, f))),
    svd: Object.values(svdFiles(c.loraRank)).map((f) => rel(path.join(T.svd, f))),
    record: rel(T.record),
  };
}

function teacherState(c: ExperimentConfig, k: number): StepState {
  const T = teacherLayout(c.outputDir, k, c);
  const have = readJson(T.record);
  if (!have) return { done: false, why: `the teacher of seed ${c.seed + k} has not been made`, stale: false };
  const want = teacherRecord(c, k);
  const changed = differences({ ...(have.settings as object), ...(have.inputs as object) }, { ...want.settings, ...want.inputs });
  if (changed.size > 0)
    return { done: false, why: `the teacher of seed ${c.seed + k} was made with ${describeChanges(changed)}`, stale: true };
  const missing = [T.delta, T.factors, T.analysis, T.record].find((p) => !isComplete(p));
  return missing ? { done: false, why: `${missing} is missing or incomplete`, stale: true } : { done: true };
}

/**
 * What report.html and the comparison were made from: the digest of every run's summary and log,
 * and of each teacher's record, analysis and timings (and the full fine-tune's analysis).
 */
function reportInputs(c: ExperimentConfig): Record<string, string> {
  const L = experimentLayout(c);
  const files = fs.existsSync(L.training)
    ? fs
        .readdirSync(L.training)
        .filter((f) => /^(train_summary_.+\.json|training_log_.+\.csv)$/.test(f))
        .map((f) => path.join(L.training, f))
    : [];
  for (const k of seedsOf(c)) {
    const T = teacherLayout(c.outputDir, k, c);
    files.push(
      T.record,
      T.analysis,
      path.join(T.teacher, synthesisFiles(c.targetRank).timing),
      path.join(T.svd, svdFiles(c.loraRank).timing),
    );
  }
  if (c.fullFinetune) files.push(fullFinetuneLayout(c.outputDir, c.loraRank).analysis);
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
  const seeds = seedsOf(c);
  const first = (states: StepState[]): StepState => states.find((s) => !s.done) ?? { done: true };
  switch (step) {
    case 1:
      return first(seeds.map((k) => runState(c, "random", k)));
    case 2: {
      const teachers = first(seeds.map((k) => teacherState(c, k)));
      if (!teachers.done || !c.fullFinetune) return teachers;
      const F = fullFinetuneLayout(c.outputDir, c.loraRank);
      return isComplete(F.model) && isComplete(F.analysis)
        ? { done: true }
        : { done: false, why: "the full fine-tune has not run", stale: false };
    }
    case 3:
      return first(["svd", ...c.arms].flatMap((arm) => seeds.map((k) => runState(c, arm, k))));
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
  const train = async (arm: string, k: number) => {
    const r = await trainRun(runSettings(c, arm, k), {
      runName: runName(arm, k),
      signal: o.signal,
      events: o.events,
      label: `train ${runName(arm, k)}`,
    });
    log(`  ${r.runName}: ${r.steps} steps, ${r.seconds.toFixed(1)} s, ${evalSpan(r)}`);
  };
  switch (step) {
    case 1:
      for (const k of seedsOf(c)) await train("random", k);
      return;
    case 2: {
      for (const k of seedsOf(c)) {
        const adapter = L.adapter(runName("random", k));
        if (!fs.existsSync(adapter)) throw new Error(`step 2 needs the baseline adapter ${adapter}: run step 1 first`);
        const T = teacherLayout(c.outputDir, k, c);
        const out = teacherOutputs(c, k);
        // Teacher, SVD and record are swapped in together: a kill leaves the earlier step 2 or this one.
        const { s, v } = await writeOutputs(
          {
            root: c.outputDir,
            name: `teacher${k === 0 ? "" : `-s${k + 1}`}`,
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
            writeFileAtomic(staged(out.record), `${JSON.stringify(teacherRecord(c, k), null, 2)}\n`);
            return { s, v };
          },
          log,
        );
        log(
          `  teacher of ${runName("random", k)}: rank ${c.targetRank}, noise ${c.noiseScale} (${s.seconds.toFixed(2)} s); ` +
            `SVD at rank ${c.loraRank}: mean error ${v.summary.relativeError.mean.toFixed(4)}, mean energy ${v.summary.energyRatio.mean.toFixed(4)} (${v.seconds.toFixed(2)} s)`,
        );
      }
      if (c.fullFinetune) await fullFinetuneBaseline(c, { log, signal: o.signal, events: o.events });
      return;
    }
    case 3:
      for (const k of seedsOf(c))
        if (!fs.existsSync(teacherLayout(c.outputDir, k, c).factors))
          throw new Error(`step 3 needs the SVD factors of seed ${c.seed + k}: run step 2 first`);
      for (const arm of ["svd", ...c.arms]) for (const k of seedsOf(c)) await train(arm, k);
      return;
    case 4: {
      const result = compareRuns(L.training, {});
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
