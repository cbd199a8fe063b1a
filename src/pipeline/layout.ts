// Where each step of the experiment writes, under one experiment folder (docs/experiment.md).
import path from "node:path";
import { stagingName } from "../util/outputs.js";
import type { ExperimentConfig } from "./settings.js";

/** The learning rates every arm runs at: the grid, or the one learning rate. */
export const learningRates = (c: Pick<ExperimentConfig, "lrGrid" | "learningRate">): number[] => c.lrGrid ?? [c.learningRate];
export const gridded = (c: Pick<ExperimentConfig, "lrGrid" | "learningRate">) => learningRates(c).length > 1;

/** "1e-3" for file names. */
const lrText = (lr: number) => Number(lr.toPrecision(3)).toExponential().replace("+", "");

/** The suffix naming a run (or a teacher) of seed index k at learning rate lr: "", "-s2", "-lr1e-3", "-lr1e-3-s2". */
export const suffix = (c: Pick<ExperimentConfig, "lrGrid" | "learningRate">, lr: number, k: number) =>
  `${gridded(c) ? `-lr${lrText(lr)}` : ""}${k === 0 ? "" : `-s${k + 1}`}`;

/** The teacher the report shows: the first seed's, at the grid's first learning rate. */
export const firstTeacherSuffix = (c: Pick<ExperimentConfig, "lrGrid" | "learningRate">) => suffix(c, learningRates(c)[0], 0);

/** Where LoRA runs go in a training folder, by run name. */
export function trainingLayout(training: string) {
  return {
    training,
    plots: path.join(training, "plots"),
    adapter: (run: string) => path.join(training, `final_model_${run}`),
    log: (run: string) => path.join(training, `training_log_${run}.csv`),
    jsonl: (run: string) => path.join(training, `training_log_${run}.jsonl`),
    /** Each run in its own folder, so that `tensorboard --logdir <training>` shows every run. */
    tensorboard: (run: string) => path.join(training, "tensorboard", run),
    summary: (run: string) => path.join(training, `train_summary_${run}.json`),
    /** In place of the others, for a run of a learning-rate grid whose loss or gradient stopped being finite. */
    diverged: (run: string) => path.join(training, `diverged_${run}.json`),
    lossPlot: (run: string) => path.join(training, "plots", `loss_curves_${run}.png`),
    checkpoint: (run: string) => path.join(training, "checkpoints", run),
    /** Where a run writes until its files are swapped in. */
    staging: (run: string) => path.join(training, stagingName(run)),
  };
}

/** An experiment folder's files; its teacher paths are the teacher of teacherSuffix (default: the first seed's). */
export function layout(root: string, o: { targetRank: number; rank: number; teacherSuffix?: string }) {
  const training = path.join(root, "training_results");
  const T = teacherLayout(root, o.teacherSuffix ?? "", { targetRank: o.targetRank, loraRank: o.rank });
  return {
    root,
    ...trainingLayout(training),
    ...T,
    synthesisReport: path.join(T.teacher, "synthesis_report.txt"),
    synthesisPlot: path.join(T.teacher, "synthesis_plots.png"),
    svdReport: path.join(T.svd, `svd_report_rank${o.rank}.txt`),
    svdPlot: path.join(T.svd, `svd_analysis_rank${o.rank}.png`),
    comparisonReport: path.join(training, "comparison_report.txt"),
    comparisonPlot: path.join(training, "comparison_random_vs_svd.png"),
    comparisonJson: path.join(training, "comparison.json"),
    html: path.join(root, "report.html"),
    /** What report.html and the comparison were made from (their inputs' digests). */
    reportRecord: path.join(root, "svdlora_report.json"),
  };
}

export type Layout = ReturnType<typeof layout>;

/**
 * A teacher (synthesized from a trained LoRA run) and its SVD, named by a suffix that says which
 * run it came from: "" for the first seed's random run (synthesized_teacher/, svd_results/),
 * "-s2", "-lr1e-3-s2", "-xfit-s2"… for the others.
 */
export function teacherLayout(root: string, suffix: string, o: { targetRank: number; loraRank: number }) {
  const teacher = path.join(root, `synthesized_teacher${suffix}`);
  const svd = path.join(root, `svd_results${suffix}`);
  return {
    teacher,
    delta: path.join(teacher, `synthesized_delta_rank${o.targetRank}.safetensors`),
    synthesisTiming: path.join(teacher, "synthesis_timing.json"),
    svd,
    factors: path.join(svd, `svd_factors_rank${o.loraRank}`),
    analysis: path.join(svd, `svd_analysis_rank${o.loraRank}.json`),
    svdTiming: path.join(svd, "svd_timing.json"),
    /** What the step was made from and with; written last. */
    record: path.join(svd, "svdlora_step.json"),
  };
}

/** "model.layers.3.self_attn.q_proj" → "layers.3.self_attn.q_proj" for charts and tables. */
export const shortName = (modulePath: string) => modulePath.replace(/^(base_model\.model\.)?model\./, "");
