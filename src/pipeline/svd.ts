// Step 2b (docs/experiment.md#step-2b-svd-analysis-and-svd-init-factors): truncated SVD of a
// teacher ΔW at the LoRA rank, quality metrics, and the factors of an SVD-initialized LoRA
// (B·A = ΔW_r / s) saved as a PEFT adapter.
import fs from "node:fs";
import path from "node:path";
import { SafetensorsCheckpoint } from "../hf/checkpoint.js";
import { type LoraAdapterConfig, isTargetModule, loadAdapter, loraConfig, loraScale, saveAdapter } from "../hf/peft.js";
import { loadSynthesizedDelta } from "../hf/synthesized-delta.js";
import { type DeltaSource, type FactorSplit, type SvdFactors, svdInitFactors } from "../lowrank/index.js";
import { saveChart, svdAnalysisChart } from "../report/index.js";
import * as torch from "../torch/index.js";
import { writeFileAtomic } from "../util/atomic.js";
import { writeOutputs } from "../util/outputs.js";
import { checkOutputDir } from "../util/files.js";
import { shortName } from "./layout.js";
import { loraDeltas } from "./synthesize.js";

export interface SvdStepOptions {
  /** Exactly one source of ΔW. */
  synthesizedDelta?: string;
  loraAdapter?: string;
  finetunedModel?: string;
  /** The base model: for --finetuned-model (ΔW = W_ft − W_base), and recorded in the adapter config. */
  baseModel?: string;
  /** Modules to take from a fine-tuned model (PEFT target_modules names). */
  targetModules: string[];
  rank: number;
  alpha: number;
  rslora: boolean;
  split: FactorSplit;
  outputDir: string;
}

export interface SvdOutputs {
  factorsDir: string;
  analysisFile: string;
  reportFile: string;
  plotFile: string;
  seconds: number;
  summary: SvdSummary;
}

export interface SvdSummary {
  modules: number;
  relativeError: Stats;
  energyRatio: Stats;
  decayRate: Stats;
  /**
   * Modules with relative error < 0.1 and energy ratio > 0.9 (since error² = 1 − energy, the first
   * alone means energy > 0.99; docs/experiment.md#step-2b-svd-analysis-and-svd-init-factors).
   */
  meetingBar: number;
}

interface Stats {
  mean: number;
  median: number;
  min: number;
  max: number;
}

function stats(xs: number[]): Stats {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = sorted.length / 2;
  const median = sorted.length % 2 ? sorted[Math.floor(mid)] : (sorted[mid - 1] + sorted[mid]) / 2;
  return { mean: xs.reduce((a, b) => a + b, 0) / xs.length, median, min: sorted[0], max: sorted[sorted.length - 1] };
}

/** Dense ΔW = W_ft − W_base (float32) for the targeted projections of two checkpoints. */
function denseDeltas(finetuned: string, base: string, targets: string[]): Map<string, DeltaSource> {
  const ft = SafetensorsCheckpoint.open(finetuned);
  const b = SafetensorsCheckpoint.open(base);
  const selector = loraConfig({ r: 1, loraAlpha: 1, targetModules: targets, baseModel: null });
  const out = new Map<string, DeltaSource>();
  try {
    for (const key of ft.keys()) {
      const module = key.replace(/\.weight$/, "");
      if (!key.endsWith(".weight") || !/\.layers\.\d+\./.test(key) || !isTargetModule(selector, module)) continue;
      if (!b.has(key)) throw new Error(`--base-model ${base} has no weight ${key}: is it the model ${finetuned} was fine-tuned from?`);
      out.set(module, torch.keep(torch.tidy(() => ft.readWeight(key).to("float32").sub(b.readWeight(key).to("float32")))));
    }
  } finally {
    ft.close();
    b.close();
  }
  if (out.size === 0) throw new Error(`no ${targets.join(", ")} weights found in ${finetuned}`);
  return out;
}

function loadDeltas(
  o: SvdStepOptions,
  read: (file: string) => string,
): { deltas: Map<string, DeltaSource>; source: string; release: () => void } {
  const given = [o.synthesizedDelta, o.loraAdapter, o.finetunedModel].filter(Boolean).length;
  if (given !== 1) throw new Error("give exactly one of --synthesized-delta FILE, --lora-adapter DIR or --finetuned-model DIR");
  if (o.synthesizedDelta) {
    if (!fs.existsSync(read(o.synthesizedDelta)))
      throw new Error(`--synthesized-delta ${o.synthesizedDelta}: no such file (run svdlora synthesize-teacher first)`);
    const { modules } = loadSynthesizedDelta(read(o.synthesizedDelta));
    return { deltas: modules, source: `synthesized delta ${o.synthesizedDelta}`, release: () => torch.dispose([...modules.values()]) };
  }
  if (o.loraAdapter) {
    const { config, weights } = loadAdapter(o.loraAdapter);
    return {
      deltas: loraDeltas(config, weights),
      source: `LoRA adapter ${o.loraAdapter}`,
      release: () => torch.dispose([...weights.values()]),
    };
  }
  if (!o.baseModel) throw new Error("--finetuned-model needs --base-model (ΔW = W_finetuned − W_base)");
  const deltas = denseDeltas(o.finetunedModel!, o.baseModel, o.targetModules);
  return { deltas, source: `ΔW = ${o.finetunedModel} − ${o.baseModel}`, release: () => torch.dispose([...deltas.values()]) };
}

/**
 * A PEFT config for the factors; target modules are the last path components. init_lora_weights
 * stays true: PEFT raises "Unknown initialization" for strings it does not know, and the factors
 * in the file override the init anyway (the split is recorded in the analysis instead).
 */
export function svdFactorsConfig(factors: SvdFactors, o: Pick<SvdStepOptions, "alpha" | "rslora" | "baseModel">): LoraAdapterConfig {
  const targetModules = [...new Set([...factors.weights.keys()].map((p) => p.split(".").pop()!))].sort();
  return loraConfig({
    r: factors.rank,
    loraAlpha: o.alpha,
    targetModules,
    baseModel: o.baseModel ?? null,
    useRslora: o.rslora,
    initLoraWeights: true,
  });
}

function report(factors: SvdFactors, o: SvdStepOptions, summary: SvdSummary, source: string): string {
  const f = (x: number) => x.toFixed(4);
  const row = (name: string, s: Stats) =>
    `${name.padEnd(20)} ${f(s.mean).padStart(8)} ${f(s.median).padStart(8)} ${f(s.min).padStart(8)} ${f(s.max).padStart(8)}`;
  const lines = [
    `SVD analysis at rank r = ${factors.rank}`,
    `source: ${source}`,
    `factors: B·A = ΔW_r / s with s = ${o.alpha}/${o.rslora ? `√${factors.rank}` : factors.rank} = ${factors.scaling.toPrecision(4)}; split "${factors.split}" (${factors.split === "seed" ? "B = U_r Σ_r / s, A = V_rᵀ" : "B = U_r √(Σ_r/s), A = √(Σ_r/s) V_rᵀ"})`,
    "relative error = ‖ΔW − ΔW_r‖_F / ‖ΔW‖_F; energy = Σ_{i≤r} σ_i² / Σ σ_i²; decay = λ in σ_{i+1} ≈ e^{−λ} σ_i (least-squares fit of ln σ_i)",
    "",
    `${"".padEnd(20)} ${"mean".padStart(8)} ${"median".padStart(8)} ${"min".padStart(8)} ${"max".padStart(8)}`,
    row("relative error", summary.relativeError),
    row("energy ratio", summary.energyRatio),
    row("decay rate", summary.decayRate),
    "",
    `${summary.meetingBar} of ${summary.modules} modules have relative error < 0.1 and energy ratio > 0.9`,
    "",
    ...[...factors.metrics].map(
      ([p, m]) =>
        `${shortName(p).padEnd(34)} [${m.shape.join("×")}]  error ${f(m.relativeError)}  energy ${f(m.energyRatio)}  decay ${f(m.decayRate)}  rank ${m.numericalRank}`,
    ),
  ];
  return `${lines.join("\n")}\n`;
}

/** The files of an SVD analysis at rank r, by role, in its folder. */
export const svdFiles = (rank: number) => ({
  factors: `svd_factors_rank${rank}`,
  analysis: `svd_analysis_rank${rank}.json`,
  report: `svd_report_rank${rank}.txt`,
  plot: `svd_analysis_rank${rank}.png`,
  plotSvg: `svd_analysis_rank${rank}.svg`,
  timing: "svd_timing.json",
});

/** `svdlora svd`: the analysis and factors in o.outputDir, swapped in whole over an earlier one (util/outputs.ts). */
export async function svdStep(o: SvdStepOptions, log?: (line: string) => void): Promise<SvdOutputs> {
  checkOutputDir(o.outputDir, "SVD results folder");
  const files = svdFiles(o.rank);
  const out = await writeOutputs(
    { root: o.outputDir, name: "svd", by: `svd rank ${o.rank}`, outputs: Object.values(files) },
    (staged) => svdInto(o, staged),
    log,
  );
  const at = (name: string) => path.join(o.outputDir, name);
  return {
    ...out,
    factorsDir: at(files.factors),
    analysisFile: at(files.analysis),
    reportFile: at(files.report),
    plotFile: at(files.plot),
  };
}

/**
 * Analyses ΔW and writes the files (svdFiles) at at(name): a staging folder's paths (see
 * synthesizeInto). read(file) says where an input is now when it is staged too (a teacher made in
 * the same step); messages and the analysis name its final path.
 */
export async function svdInto(
  o: SvdStepOptions,
  at: (name: string) => string,
  read: (file: string) => string = (file) => file,
): Promise<SvdOutputs> {
  const files = svdFiles(o.rank);
  const started = performance.now();
  const { deltas, source, release } = loadDeltas(o, read);
  let factors: SvdFactors;
  try {
    factors = svdInitFactors(deltas, {
      rank: o.rank,
      scaling: loraScale(o.alpha, o.rank, o.rslora),
      split: o.split,
      denseMethod: o.finetunedModel ? "randomized" : "exact",
    });
  } finally {
    release();
  }
  try {
    const factorsDir = at(files.factors);
    saveAdapter(factorsDir, svdFactorsConfig(factors, o), factors.weights);
    const seconds = (performance.now() - started) / 1000;
    const metrics = [...factors.metrics.values()];
    const summary: SvdSummary = {
      modules: metrics.length,
      relativeError: stats(metrics.map((m) => m.relativeError)),
      energyRatio: stats(metrics.map((m) => m.energyRatio)),
      decayRate: stats(metrics.map((m) => m.decayRate)),
      meetingBar: metrics.filter((m) => m.relativeError < 0.1 && m.energyRatio > 0.9).length,
    };
    const analysisFile = at(files.analysis);
    const analysis = {
      source,
      rank: o.rank,
      alpha: o.alpha,
      scaling: factors.scaling,
      split: o.split,
      summary,
      modules: Object.fromEntries([...factors.metrics].map(([p, m]) => [p, m])),
    };
    writeFileAtomic(analysisFile, `${JSON.stringify(analysis, null, 1)}\n`);
    const reportFile = at(files.report);
    writeFileAtomic(reportFile, report(factors, o, summary, source));
    const plotFile = at(files.plot);
    const modules = [...factors.metrics].map(([p, m]) => ({
      name: shortName(p),
      relError: m.relativeError,
      energy: m.energyRatio,
      spectrum: m.spectrum,
    }));
    // report: the title names the ΔW analysed (not always a teacher)
    const subject = o.synthesizedDelta
      ? "synthesized teacher ΔW"
      : o.loraAdapter
        ? "LoRA adapter's ΔW"
        : "real fine-tune ΔW = W_ft − W_base";
    await saveChart(plotFile, svdAnalysisChart({ modules, rank: o.rank, subject }));
    writeFileAtomic(at(files.timing), `${JSON.stringify({ seconds }, null, 2)}\n`);
    return { factorsDir, analysisFile, reportFile, plotFile, seconds, summary };
  } finally {
    torch.dispose([...factors.weights.values()]);
  }
}
