// report.html: every table and figure of an experiment in one file that opens offline.
import fs from "node:fs";
import path from "node:path";
import { systemInfo } from "../cli/info.js";
import { type ReportSection, writeReportHtml } from "../report/index.js";
import type { ExperimentConfig } from "./experiment.js";
import type { Layout } from "./layout.js";
import { fullFinetuneReportSection } from "./train-full.js";

const readText = (file: string, maxLines = 80): string | undefined => {
  if (!fs.existsSync(file)) return undefined;
  const lines = fs.readFileSync(file, "utf8").split("\n");
  return lines.length > maxLines
    ? [...lines.slice(0, maxLines), `… (${lines.length - maxLines} more lines in ${path.basename(file)})`].join("\n")
    : lines.join("\n");
};

export async function writeExperimentReport(c: ExperimentConfig, L: Layout): Promise<string> {
  const info = systemInfo();
  const runs = fs.existsSync(L.training)
    ? fs
        .readdirSync(L.training)
        .filter((f) => /^train_summary_.+\.json$/.test(f))
        .map((f) => f.slice("train_summary_".length, -".json".length))
        .sort()
    : [];
  const sections: ReportSection[] = [
    {
      heading: "Set-up",
      table: {
        columns: ["setting", "value"],
        rows: [
          ["base model", c.baseModel],
          ["training data", c.trainData],
          ["held-out data", c.evalData ?? "none"],
          [
            "LoRA",
            `r = ${c.loraRank}, α = ${c.loraAlpha}, targets ${Array.isArray(c.targetModules) ? c.targetModules.join(", ") : c.targetModules}`,
          ],
          [
            "training",
            `${c.epochs} epochs, batch ${c.batchSize} × ${c.gradientAccumulationSteps}, lr ${c.learningRate}, ${c.seeds} seed(s) from ${c.seed}`,
          ],
          ["teacher", `rank K = ${c.targetRank}, noise ${c.noiseScale}, tail decay ${c.decay}, factor split ${c.factorSplit}`],
          ["arms", ["random", "svd", ...c.arms].join(", ")],
          ["runs", runs.join(", ")],
          ["software", `svdlora ${info.svdlora}, libtorch ${info.libtorch}, Node ${info.node}`],
          [
            "hardware",
            `${c.device.startsWith("cuda") ? (info.cuda.devices[0]?.name ?? c.device) : `${info.cpu.model}, ${info.cpu.cores} cores`}`,
          ],
        ],
      },
    },
    {
      heading: "Comparison (step 4)",
      text: readText(L.comparisonReport, 200),
      images: [{ path: L.comparisonPlot, caption: "Training loss of each arm, and initial/final loss" }],
    },
    {
      heading: "Training runs (steps 1 and 3)",
      images: runs.map((r) => ({ path: L.lossPlot(r), caption: `${r}: training loss per step and held-out loss per epoch` })),
    },
    {
      heading: "Teacher synthesis (step 2a)",
      text: readText(L.synthesisReport),
      images: [
        { path: L.synthesisPlot, caption: "Singular values of the baseline LoRA ΔW and of the synthesized teacher; achieved noise" },
      ],
    },
    {
      heading: `SVD analysis at rank ${c.loraRank} (step 2b)`,
      text: readText(L.svdReport),
      images: [{ path: L.svdPlot, caption: "Relative error, energy ratio, spectra, error vs energy" }],
    },
    ...[fullFinetuneReportSection(L.root, c.loraRank)].filter((s): s is ReportSection => s !== null), // only with full_finetune/ results
    {
      heading: "How to read this",
      text: [
        "The teacher ΔW is synthesized from the random-init baseline's own trained adapter, so the SVD-initialized",
        "run starts from information the baseline earned by training: its cost includes the baseline run, and a",
        "lower initial loss is expected by construction. The held-out loss and the PiSSA arm (SVD of the base",
        "weights, no teacher) are the fair comparisons. Small models and 81 samples give noisy numbers: use",
        "--seeds to see the spread.",
      ].join("\n"),
    },
  ];
  writeReportHtml(L.html, { title: "svdlora: SVD-guided LoRA initialization — experiment report", sections }, { missingImages: "note" });
  return L.html;
}
