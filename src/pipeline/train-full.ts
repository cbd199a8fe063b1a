// A leak-free teacher: a real full-parameter fine-tune (small models only) whose ΔW = W_ft − W_base
// feeds the SVD step, and a chart/report section setting its spectrum beside the synthesized one.
//
// Layout under an experiment directory:
//   full_finetune/model/                          the fine-tuned model (HF directory, float32),
//                                                 with its run log (training_log.csv, .jsonl,
//                                                 tensorboard/) and summary.json
//   full_finetune/svd_results/                    svdStep on ΔW (svd_analysis_rank{r}.json, factors, …)
//   full_finetune/spectra_real_vs_synthesized.png real vs synthesized spectra (when the teacher exists)
import fs from "node:fs";
import path from "node:path";
import { targetNames } from "../hf/peft.js";
import { type ReportSection, saveChart, spectraChart, svgPathFor } from "../report/index.js";
import type { LoopOptions } from "../train/loop.js";
import { runLogFiles } from "../train/run-log.js";
import { FULL_TRAINING, type TrainingSettings } from "../train/settings.js";
import { RUN_FILES, type TrainResult, resolveSettings, trainFull } from "../train/trainer.js";
import { stageDirectory } from "../util/atomic.js";
import { checkOutputDir } from "../util/files.js";
import { claimFolder, fsChange, isOurFolder, writeOutputs } from "../util/outputs.js";
import type { ExperimentConfig } from "./experiment.js";
import { firstTeacherSuffix, layout, shortName } from "./layout.js";
import { type SvdOutputs, svdStep } from "./svd.js";

export interface TrainFullRunResult extends TrainResult {
  modelDir: string;
  logPath: string;
  summaryPath: string;
}

/**
 * A full-parameter fine-tune (fp32 AdamW) into settings.outputDir: a complete Hugging Face model
 * folder, with its run log (training_log.csv, .jsonl, tensorboard/) and summary.json, that
 * replaces an earlier one (svdlora's only, and only with overwrite) when it is whole.
 * Checkpoints go beside it, in checkpoints/<name>, while it trains.
 */
export async function trainFullRun(
  settings: Partial<TrainingSettings>,
  o: LoopOptions & { memoryBudget?: number } = {},
): Promise<TrainFullRunResult> {
  const modelDir = settings.outputDir ?? "full_finetune/model";
  checkOutputDir(modelDir, "fine-tuned model folder");
  resolveSettings(FULL_TRAINING, settings); // bad values and combinations are refused before the folder is touched
  const parent = path.dirname(path.resolve(modelDir));
  const lock = claimFolder(parent, `full fine-tune ${path.basename(modelDir)}`, (line) => o.events?.note?.(line));
  try {
    if (fs.existsSync(modelDir) && isOurFolder(modelDir) && !settings.overwrite && !settings.resume)
      throw new Error(`${modelDir} already holds a fine-tuned model: replace it with \`overwrite\`, or choose another output folder`);
    const staged = stageDirectory(modelDir, "full fine-tune");
    try {
      const checkpointDir = path.join(parent, "checkpoints", path.basename(modelDir));
      const result = await trainFull(settings, { ...o, dir: staged.dir, checkpointDir });
      staged.commit();
      // A finished run is its model folder alone: its resume state goes.
      fsChange(`remove ${checkpointDir}`);
      fs.rmSync(checkpointDir, { recursive: true, force: true });
      return {
        ...result,
        modelDir: path.resolve(modelDir),
        logPath: runLogFiles(path.resolve(modelDir)).csv,
        summaryPath: path.join(path.resolve(modelDir), RUN_FILES.summary),
      };
    } catch (e) {
      staged.discard();
      throw e;
    }
  } finally {
    lock.release();
  }
}

// ---- the baseline inside an experiment -------------------------------------------------------

/** The full fine-tune of an experiment, the first seed's in full_finetune/, later ones with a suffix ("-s2"). */
export function fullFinetuneLayout(experimentDir: string, rank: number, suffix = "") {
  const root = path.join(experimentDir, `full_finetune${suffix}`);
  const svd = path.join(root, "svd_results");
  return {
    root,
    model: path.join(root, "model"),
    summary: path.join(root, "model", RUN_FILES.summary),
    svd,
    factors: path.join(svd, `svd_factors_rank${rank}`),
    analysis: path.join(svd, `svd_analysis_rank${rank}.json`),
    svdTiming: path.join(svd, "svd_timing.json"),
    chart: path.join(root, "spectra_real_vs_synthesized.png"),
  };
}

interface Analysis {
  summary: {
    modules: number;
    relativeError: { mean: number };
    energyRatio: { mean: number };
    decayRate: { median: number };
    meetingBar: number;
  };
  modules: Record<string, { spectrum: number[] }>;
}
const readAnalysis = (file: string): Analysis | null =>
  fs.existsSync(file) ? (JSON.parse(fs.readFileSync(file, "utf8")) as Analysis) : null;

/**
 * Draws the real-vs-synthesized spectra chart from the two analysis files of an experiment;
 * returns its path, or null when either analysis is missing.
 */
export async function drawSpectraComparison(experimentDir: string, rank: number, synthesized: string): Promise<string | null> {
  const F = fullFinetuneLayout(experimentDir, rank);
  const real = readAnalysis(F.analysis);
  const synth = readAnalysis(synthesized);
  if (!real || !synth) return null;
  const synthByName = new Map(Object.entries(synth.modules).map(([k, m]) => [shortName(k), m.spectrum]));
  const modules = Object.entries(real.modules)
    .map(([k, m]) => ({ name: shortName(k), real: m.spectrum, synthesized: synthByName.get(shortName(k)) }))
    .filter((m): m is { name: string; real: number[]; synthesized: number[] } => m.synthesized !== undefined);
  if (modules.length === 0)
    throw new Error(
      `no module is in both ${F.analysis} and the synthesized teacher's analysis: were they made with the same target modules?`,
    );
  const name = path.basename(F.chart);
  await writeOutputs({ root: F.root, name: "spectra", by: "spectra chart", outputs: [name, svgPathFor(name)] }, (staged) =>
    saveChart(staged(name), spectraChart({ modules, rank })),
  );
  return F.chart;
}

/**
 * The leak-free teacher baseline of an experiment: full fine-tune of the base model on the
 * experiment's data, SVD of its real ΔW at the LoRA rank, and the spectra chart.
 */
export async function fullFinetuneBaseline(
  c: ExperimentConfig,
  o: LoopOptions & { learningRate?: number; memoryBudget?: number; log?: (line: string) => void; seedIndex?: number } = {},
): Promise<{ train: TrainFullRunResult; svd: SvdOutputs; chart: string | null }> {
  const log = o.log ?? (() => {});
  const k = o.seedIndex ?? 0;
  const F = fullFinetuneLayout(c.outputDir, c.loraRank, k === 0 ? "" : `-s${k + 1}`);
  const train = await trainFullRun(
    {
      ...pick(c, [
        "baseModel",
        "trainData",
        "evalData",
        "evalLimit",
        "maxLength",
        "systemPrompt",
        "epochs",
        "batchSize",
        "device",
        "quiet",
      ]),
      seed: c.seed + k,
      learningRate: o.learningRate ?? FULL_TRAINING.learningRate.default,
      outputDir: F.model,
      overwrite: true,
    },
    { signal: o.signal, events: o.events, label: `train full${k === 0 ? "" : ` (seed ${c.seed + k})`}`, memoryBudget: o.memoryBudget },
  );
  log(
    `  full fine-tune: ${train.steps} steps, ${train.seconds.toFixed(1)} s, held-out loss ${train.evalLosses[0]?.loss.toFixed(4) ?? "-"} → ${train.evalLosses.at(-1)?.loss.toFixed(4) ?? "-"}`,
  );
  const svd = await svdStep({
    finetunedModel: F.model,
    baseModel: c.baseModel,
    targetModules: targetNames(c.targetModules),
    rank: c.loraRank,
    alpha: c.loraAlpha,
    rslora: c.rslora,
    split: c.factorSplit,
    outputDir: F.svd,
  });
  log(
    `  real ΔW at rank ${c.loraRank}: mean error ${svd.summary.relativeError.mean.toFixed(4)}, mean energy ${svd.summary.energyRatio.mean.toFixed(4)}`,
  );
  // The spectra chart sets the first seed's real ΔW beside the first seed's teacher.
  const synthesized = layout(c.outputDir, { targetRank: c.targetRank, rank: c.loraRank, teacherSuffix: firstTeacherSuffix(c) }).analysis;
  const chart = k === 0 ? await drawSpectraComparison(c.outputDir, c.loraRank, synthesized) : null;
  if (k === 0) log(chart ? `  ${chart}` : "  no synthesized teacher analysis yet (step 2): spectra chart not drawn");
  return { train, svd, chart };
}

const pick = <T extends object, K extends keyof T>(o: T, keys: K[]): Pick<T, K> =>
  Object.fromEntries(keys.map((k) => [k, o[k]])) as Pick<T, K>;

/** report.html's section for full_finetune/ results; null when the experiment has none. */
export function fullFinetuneReportSection(experimentDir: string, rank: number, synthesized: string): ReportSection | null {
  const F = fullFinetuneLayout(experimentDir, rank);
  const real = readAnalysis(F.analysis);
  if (!real) return null;
  const synth = readAnalysis(synthesized);
  const t = fs.existsSync(F.summary) ? (JSON.parse(fs.readFileSync(F.summary, "utf8")).result as TrainResult) : null;
  const [before, after] = [t?.evalLosses[0]?.loss, t?.evalLosses.at(-1)?.loss];
  const row = (what: string, pick: (a: Analysis) => number) => [what, pick(real), synth ? pick(synth) : null];
  const text = [
    "ΔW = W_finetuned − W_base of a real full-parameter fine-tune on the same training data. Unlike the",
    "synthesized teacher it is not built from the random-init LoRA run, so an SVD init taken from it carries",
    "no information from the baseline arm (its own compute counts instead).",
    ...(t
      ? [
          `full fine-tune: ${t.trainableParameters.toLocaleString("en-US")} parameters, ${t.steps} steps, ${t.tokens} tokens, ${t.seconds.toFixed(1)} s` +
            (before !== undefined && after !== undefined ? `; held-out loss ${before.toFixed(4)} → ${after.toFixed(4)}` : ""),
        ]
      : []),
  ].join("\n");
  return {
    heading: "Real fine-tune ΔW vs synthesized teacher",
    text,
    table: {
      columns: [`at rank r = ${rank}`, "real fine-tune ΔW", "synthesized teacher ΔW"],
      rows: [
        row("matrices", (a) => a.summary.modules),
        row("mean relative error", (a) => a.summary.relativeError.mean),
        row("mean energy ratio", (a) => a.summary.energyRatio.mean),
        row("median decay rate", (a) => a.summary.decayRate.median),
        row("error < 0.1 and energy > 0.9", (a) => a.summary.meetingBar),
      ],
    },
    images: fs.existsSync(F.chart)
      ? [
          {
            path: F.chart,
            caption:
              "Singular-value spectra, each divided by its largest value: real fine-tune ΔW (solid) vs synthesized teacher (dashed); r marked",
          },
        ]
      : [],
  };
}
