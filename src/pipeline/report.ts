// report.html: the experiment in one self-contained file that opens offline. It leads with the
// verdict and the statistics behind it, then every arm's training and held-out loss side by side
// (interactive), the learning rates and the runs that diverged (with the loss they logged until
// then), the teacher and SVD steps, each run with links to its adapter, log and summary, and the
// set-up. Each part appears once its step has run; a figure or file a part needs that is missing
// is an error.
import fs from "node:fs";
import path from "node:path";
import {
  type ReportSection,
  type ReportTable,
  type ReportVerdict,
  comparisonChart,
  formatDuration,
  renderReportHtml,
} from "../report/index.js";
import { systemInfo } from "../torch/system-info.js";
import type { TrainResult } from "../train/trainer.js";
import { writeOutputs } from "../util/outputs.js";
import {
  COMPARISON_FILES,
  type ComparisonResult,
  LEARNING_RATES_CAPTION,
  TEACHER_ARM,
  TEACHER_SOURCE_ARM,
  learningRateRows,
  readDiverged,
  statisticsTables,
} from "./compare.js";
import { runCurves } from "./curves.js";
import type { ExperimentConfig } from "./experiment.js";
import { type Layout, firstTeacherSuffix, layout, teacherLayout } from "./layout.js";
import { fullFinetuneReportSection } from "./train-full.js";

/** What the report leads with: comparison.json's verdict, the statistics behind it, and the caveats. */
export interface ReportSummary {
  /** The conclusion, one sentence a line. */
  verdict: string[];
  /** The numbers behind it (a few arms a table). */
  statistics: ReportTable[];
  /** Caveats to read beside the verdict. */
  notes: string[];
}

export function summarizeComparison(c: ComparisonResult): ReportSummary {
  return { verdict: c.verdict, statistics: statisticsTables(c), notes: c.caveats };
}

const loss = (x: number) => x.toFixed(4);
const readJson = <T>(file: string): T => JSON.parse(fs.readFileSync(file, "utf8")) as T;
const readSeconds = (file: string) => (fs.existsSync(file) ? formatDuration(readJson<{ seconds: number }>(file).seconds) : "unknown");

interface Run {
  name: string;
  /** The experiment's arm (random-continued trains with the svd init, say); the init for runs outside an experiment. */
  arm: string;
  result: TrainResult;
  /** The settings the run was made with (its summary's). */
  settings: Record<string, unknown>;
}

/** The runs trained so far (each train_summary_<run>.json), in the comparison's order when there is one. */
function trainedRuns(L: Layout, comparison: ComparisonResult | null): Run[] {
  if (!fs.existsSync(L.training)) return [];
  const runs = fs
    .readdirSync(L.training)
    .map((f) => /^train_summary_(.+)\.json$/.exec(f)?.[1])
    .filter((name): name is string => name !== undefined)
    .sort()
    .map((name) => {
      const s = readJson<{ result: TrainResult; settings?: Record<string, unknown>; experiment?: { arm?: string } }>(L.summary(name));
      return { name, arm: s.experiment?.arm ?? s.result.init, result: s.result, settings: s.settings ?? {} };
    });
  // baseline, svd, pissa, … and by seed within an arm; runs the comparison has not seen go last
  const rank = (name: string) => {
    const i = comparison?.runs.findIndex((r) => r.name === name) ?? -1;
    return i < 0 ? Number.POSITIVE_INFINITY : i;
  };
  return runs.sort((a, b) => rank(a.name) - rank(b.name)); // stable: by name among the unseen
}

function verdictBlock(comparison: ComparisonResult | null): ReportVerdict {
  if (!comparison)
    return { heading: "Verdict", lines: ["No comparison yet: step 4 (svdlora compare) compares the arms and fills this in."] };
  const summary = summarizeComparison(comparison);
  return { heading: "Verdict", lines: summary.verdict, tables: summary.statistics, notes: summary.notes };
}

function curvesSection(L: Layout, runs: Run[], comparison: ComparisonResult | null, read: Reader): ReportSection | null {
  if (runs.length === 0) return null;
  const allArms = path.join(L.training, COMPARISON_FILES.allArmsChart);
  const png = fs.existsSync(read(allArms)) ? allArms : L.comparisonPlot;
  return {
    heading: "Training and held-out loss of every arm",
    charts: [
      {
        spec: comparisonChart({
          runs: runCurves(runs.map((r) => ({ run: r.name, arm: r.arm, log: L.log(r.name) }))),
          heldOutTarget: comparison?.targetLoss ?? undefined,
          subtitle: runs.some((r) => r.arm === TEACHER_ARM)
            ? `${TEACHER_ARM}'s teacher came from the ${TEACHER_SOURCE_ARM} run: see the caveat above`
            : undefined,
        }),
        caption:
          "Click an arm in the legend to show it alone (shift-click for more, click empty space for all); drag to pan, scroll to zoom, " +
          "double-click to reset; hover for values. The … menu saves the chart as PNG or SVG.",
        files: comparison ? [{ path: png, label: `PNG (${path.basename(png)})` }] : [],
      },
    ],
    folded: comparison
      ? [
          {
            summary: `${COMPARISON_FILES.report}: definitions, caveats, per-run numbers`,
            text: fs.readFileSync(read(L.comparisonReport), "utf8"),
          },
        ]
      : [],
  };
}

/** With a learning-rate grid: each arm's final losses at every rate, the tuned rate and the rates that diverged. */
function learningRatesSection(comparison: ComparisonResult | null): ReportSection | null {
  const rates = comparison && learningRateRows(comparison);
  if (!rates) return null;
  return {
    heading: "Learning rates",
    paragraphs: [`${LEARNING_RATES_CAPTION[0].toUpperCase()}${LEARNING_RATES_CAPTION.slice(1)}.`],
    table: rates,
  };
}

/**
 * With a learning-rate grid, the runs whose loss or gradient stopped being finite: where each
 * stopped, its record and log, and the loss it logged until then (a run that logged no row has no
 * curve). They are drawn apart from the finished runs, whose summaries they do not have.
 */
function divergedSection(L: Layout): ReportSection | null {
  const diverged = fs.existsSync(L.training) ? readDiverged(L.training) : [];
  if (diverged.length === 0) return null;
  const logged = diverged.flatMap((d) => (d.logPath ? [{ run: d.name, arm: d.arm, log: d.logPath }] : []));
  return {
    heading: "Runs that diverged",
    paragraphs: [
      "Their loss or gradient stopped being finite, so their learning rate loses. Each left the record of where it stopped and the log of its steps until then (the last finite one); no adapter or summary.",
    ],
    table: {
      columns: ["run", "arm", "seed", "learning rate", "what happened", "files"],
      rows: diverged.map((d) => [
        d.name,
        d.arm,
        d.seed,
        d.learningRate,
        d.message,
        {
          links: [{ path: d.recordPath, label: "record (JSON)" }, ...(d.logPath ? [{ path: d.logPath, label: "log (CSV)" }] : [])],
        },
      ]),
    },
    charts:
      logged.length === 0
        ? []
        : [
            {
              spec: comparisonChart({
                runs: runCurves(logged),
                title: "Loss of the runs that diverged, until they stopped",
                subtitle: "each line ends at the run's last finite step",
              }),
              caption: "Click an arm in the legend to show it alone; drag to pan, scroll to zoom, double-click to reset; hover for values.",
            },
          ],
  };
}

function teacherSections(c: ExperimentConfig, L: Layout, teacher: Record<string, unknown> | null): ReportSection[] {
  const t = (key: string, now: unknown) => String(teacher?.[key] ?? now);
  const sections: ReportSection[] = [];
  if (fs.existsSync(L.synthesisReport))
    sections.push({
      heading: "Teacher synthesis (step 2a)",
      paragraphs: [
        `A rank-${t("targetRank", c.targetRank)} teacher ΔW built from the random-init run's adapter (noise ${t("noiseScale", c.noiseScale)}, tail decay ${t("decay", c.decay)}); ` +
          `synthesis took ${readSeconds(L.synthesisTiming)}.`,
      ],
      images: [
        {
          path: L.synthesisPlot,
          caption:
            "Singular values of the baseline's LoRA ΔW and of the synthesized teacher for a few matrices; achieved noise of every matrix",
        },
      ],
      folded: [{ summary: path.basename(L.synthesisReport), text: fs.readFileSync(L.synthesisReport, "utf8") }],
    });
  if (fs.existsSync(L.svdReport))
    sections.push({
      heading: `SVD of the teacher at rank ${t("rank", c.loraRank)} (step 2b)`,
      paragraphs: [`The svd arm starts from these factors; the SVD took ${readSeconds(L.svdTiming)}.`],
      images: [{ path: L.svdPlot, caption: "Relative error, energy ratio, spectra, and error against energy of every matrix" }],
      links: [{ path: L.factors, label: "SVD factors (PEFT adapter)" }],
      folded: [{ summary: path.basename(L.svdReport), text: fs.readFileSync(L.svdReport, "utf8") }],
    });
  const full = fullFinetuneReportSection(L.root, c.loraRank, L.analysis); // only with full_finetune/ results
  if (full) sections.push(full);
  return sections;
}

/** Up to this many runs, their loss plots are shown in the page; beyond, each is linked from its row (a study's hundreds of plots would weigh tens of MB). */
const SHOWN_LOSS_PLOTS = 12;

function runsSection(L: Layout, runs: Run[]): ReportSection {
  const shown = runs.length <= SHOWN_LOSS_PLOTS;
  const heldOut = (r: TrainResult) => {
    const before = r.evalLosses.find((e) => e.step === 0);
    const after = r.evalLosses.filter((e) => e.step > 0).at(-1);
    return before && after ? `${loss(before.loss)} → ${loss(after.loss)}` : "not measured";
  };
  return {
    heading: "Runs",
    table: {
      columns: ["run", "init", "seed", "steps", "tokens", "wall time", "held-out loss before → after", "accuracy", "files"],
      rows: runs.map(({ name, result: r }) => [
        name,
        r.init,
        r.seed,
        r.steps,
        r.tokens,
        formatDuration(r.seconds),
        heldOut(r),
        r.accuracy ? `${r.accuracy.correct} / ${r.accuracy.total}` : "not measured",
        {
          links: [
            { path: L.adapter(name), label: "adapter" },
            { path: L.log(name), label: "log (CSV)" },
            { path: L.summary(name), label: "summary (JSON)" },
            ...(shown ? [] : [{ path: L.lossPlot(name), label: "loss plot (PNG)" }]),
          ],
        },
      ]),
    },
    ...(shown
      ? {
          images: runs.map(({ name }) => ({
            path: L.lossPlot(name),
            caption: `${name}: training loss per step (raw and EMA) and held-out loss at each evaluation`,
          })),
        }
      : { paragraphs: [`${runs.length} runs: each run's loss plot is linked from its row rather than shown here.`] }),
  };
}

/** The record of the teacher the report shows (the first seed's, what it was made with), or null before step 2. */
function teacherSettings(c: ExperimentConfig, read: Reader): Record<string, unknown> | null {
  const record = teacherLayout(path.resolve(c.outputDir), firstTeacherSuffix(c), c).record;
  return fs.existsSync(read(record)) ? (readJson<{ settings?: Record<string, unknown> }>(read(record)).settings ?? null) : null;
}

/**
 * The set-up as the runs used it (their summaries' settings), not as the experiment file says now:
 * a setting the runs disagree on is shown run by run. Before any run, the experiment's settings.
 */
function setupSection(c: ExperimentConfig, runs: Run[], teacher: Record<string, unknown> | null): ReportSection {
  const info = systemInfo();
  const used = (key: string, show: (v: unknown) => string = String): string => {
    if (runs.length === 0) return show((c as unknown as Record<string, unknown>)[key]);
    const values = runs.map((r) => show(r.settings[key]));
    return new Set(values).size === 1 ? values[0] : runs.map((r, i) => `${r.name}: ${values[i]}`).join("; ");
  };
  const list = (v: unknown) => (Array.isArray(v) ? v.join(", ") : String(v));
  const t = (key: string) => String(teacher?.[key]);
  return {
    heading: "Set-up",
    paragraphs: [
      runs.length
        ? "As the runs were made (each run's summary records its settings); where the runs differ, each run's value is shown."
        : "No run yet: the experiment's settings.",
    ],
    table: {
      columns: ["setting", "value"],
      rows: [
        ["base model", used("baseModel")],
        ["training data", used("trainData")],
        ["held-out data", used("evalData", (v) => (v ? String(v) : "none"))],
        ["LoRA rank r", used("loraRank")],
        ["LoRA α", used("loraAlpha")],
        ["target modules", used("targetModules", list)],
        ["epochs", used("epochs")],
        ["batch", used("batchSize")],
        ["gradient accumulation", used("gradientAccumulationSteps")],
        ["learning rate", used("learningRate")],
        ["seeds", runs.length ? [...new Set(runs.map((r) => r.result.seed))].join(", ") : `${c.seeds} from ${c.seed}`],
        [
          "teacher",
          teacher
            ? `rank K = ${t("targetRank")}, noise ${t("noiseScale")}, tail decay ${t("decay")}, factor split ${t("factorSplit")}`
            : "not made yet",
        ],
        ["arms", [...new Set(runs.map((r) => r.arm))].join(", ") || "none yet"],
        ["runs", runs.map((r) => r.name).join(", ") || "none yet"],
        ["software", `svdlora ${info.svdlora}, libtorch ${info.libtorch}, Node ${info.node}`],
        ["hardware", c.device.startsWith("cuda") ? (info.cuda.devices[0]?.name ?? c.device) : `${info.cpu.model}, ${info.cpu.cores} cores`],
      ],
    },
  };
}

const HOW_TO_READ = [
  "The teacher ΔW is synthesized from the random-init baseline's own trained adapter, so the SVD-initialized run starts from " +
    "information the baseline earned by training: its cost includes the baseline run, and a lower initial loss is expected by construction.",
  "The held-out loss and the PiSSA arm (SVD of the base weights, no teacher) are the fair comparisons. Small models and few samples " +
    "give noisy numbers: --seeds shows the spread.",
];

/** Where a file is now: its final path, or the staged one of an output being written with the report. */
type Reader = (file: string) => string;

/**
 * The report for L.html from what the experiment's steps have written so far. `pending` maps the
 * final paths of outputs staged with the report (step 4's comparison) to where they are now.
 */
export function renderExperimentReport(c: ExperimentConfig, L: Layout, pending: ReadonlyMap<string, string> = new Map()): string {
  // Every path absolute: the layout's paths are relative to the working directory, the report's to its folder.
  const A = layout(path.resolve(L.root), { targetRank: c.targetRank, rank: c.loraRank, teacherSuffix: firstTeacherSuffix(c) });
  const read: Reader = (file) => pending.get(file) ?? file;
  const comparison = fs.existsSync(read(A.comparisonJson)) ? readJson<ComparisonResult>(read(A.comparisonJson)) : null;
  const runs = trainedRuns(A, comparison);
  const teacher = teacherSettings(c, read);
  const curves = curvesSection(A, runs, comparison, read);
  const rates = learningRatesSection(comparison);
  const diverged = divergedSection(A);
  const sections: ReportSection[] = [
    ...(curves ? [curves] : []),
    ...(rates ? [rates] : []),
    ...(diverged ? [diverged] : []),
    ...teacherSections(c, A, teacher),
    ...(runs.length ? [runsSection(A, runs)] : []),
    setupSection(c, runs, teacher),
    { heading: "How to read this", paragraphs: HOW_TO_READ },
  ];
  return renderReportHtml(
    { title: "svdlora: SVD-guided LoRA initialization — experiment report", verdict: verdictBlock(comparison), sections },
    path.dirname(A.html),
    { generatedBy: `svdlora ${systemInfo().svdlora}, ${new Date().toISOString().slice(0, 16).replace("T", " ")} UTC`, pending },
  );
}

/** Writes L.html alone (util/outputs.ts: new, or svdlora's earlier report) from what the steps have written; returns its path. */
export async function writeExperimentReport(c: ExperimentConfig, L: Layout): Promise<string> {
  const name = path.basename(L.html);
  await writeOutputs({ root: path.dirname(L.html), name: "report", by: "report", outputs: [name] }, (staged) =>
    fs.writeFileSync(staged(name), renderExperimentReport(c, L)),
  );
  return L.html;
}
