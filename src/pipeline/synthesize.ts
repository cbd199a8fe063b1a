// Step 2a (docs/experiment.md#step-2a-teacher-synthesis): a teacher ΔW of rank K synthesized from
// the baseline's LoRA adapter, written factored with its report and figure.
import fs from "node:fs";
import path from "node:path";
import { type LoraAdapterConfig, type LoraWeights, loadAdapter, loraScaling } from "../hf/peft.js";
import { saveSynthesizedDelta } from "../hf/synthesized-delta.js";
import {
  type LoraDelta,
  SYNTHESIS_DEFAULTS,
  type SynthesizedDelta,
  disposeDelta,
  synthesisReport,
  synthesizeTeacher,
} from "../lowrank/index.js";
import { saveChart, synthesisChart } from "../report/index.js";
import * as torch from "../torch/index.js";
import { writeFileAtomic } from "../util/atomic.js";
import { writeOutputs } from "../util/outputs.js";
import { checkOutputDir } from "../util/files.js";
import { shortName } from "./layout.js";

export interface SynthesizeOptions {
  loraAdapter: string;
  outputDir: string;
  targetRank: number;
  noiseScale: number;
  decay: number;
  seed: number;
}

const { targetRank, noiseScale, decay, seed } = SYNTHESIS_DEFAULTS;
export const SYNTHESIZE_DEFAULTS = { targetRank, noiseScale, decay, seed };

export interface SynthesizeOutputs {
  deltaFile: string;
  reportFile: string;
  plotFile: string;
  seconds: number;
  modules: number;
}

export const deltaFileName = (targetRank: number) => `synthesized_delta_rank${targetRank}.safetensors`;

/** Each module's ΔW = s·B·A of a loaded PEFT adapter, with its own s (after rank_pattern / alpha_pattern). */
export function loraDeltas(config: LoraAdapterConfig, weights: LoraWeights): Map<string, LoraDelta> {
  return new Map([...weights].map(([modulePath, { A, B }]) => [modulePath, { B, A, scale: loraScaling(config, modulePath) }]));
}

/** The files of a teacher, by role, in its folder. */
export const synthesisFiles = (targetRank: number) => ({
  delta: deltaFileName(targetRank),
  report: "synthesis_report.txt",
  plot: "synthesis_plots.png",
  plotSvg: "synthesis_plots.svg",
  timing: "synthesis_timing.json",
});

/** `svdlora synthesize-teacher`: a teacher in o.outputDir, swapped in whole over an earlier one (util/outputs.ts). */
export async function synthesizeStep(o: SynthesizeOptions, log?: (line: string) => void): Promise<SynthesizeOutputs> {
  checkOutputDir(o.outputDir, "teacher folder");
  const files = synthesisFiles(o.targetRank);
  const out = await writeOutputs(
    { root: o.outputDir, name: "synthesis", by: "synthesize-teacher", outputs: Object.values(files) },
    (staged) => synthesizeInto(o, staged),
    log,
  );
  const at = (name: string) => path.join(o.outputDir, name);
  return { ...out, deltaFile: at(files.delta), reportFile: at(files.report), plotFile: at(files.plot) };
}

/**
 * Synthesizes the teacher and writes its files (synthesisFiles) at at(name): a staging folder's
 * paths (synthesizeStep, and the experiment's step 2, which swaps teacher and SVD in together).
 */
export async function synthesizeInto(o: SynthesizeOptions, at: (name: string) => string): Promise<SynthesizeOutputs> {
  if (!fs.existsSync(o.loraAdapter))
    throw new Error(`--lora-adapter ${o.loraAdapter}: no such directory (train the baseline first: svdlora train --init random)`);
  const files = synthesisFiles(o.targetRank);
  const started = performance.now();
  const { config, weights } = loadAdapter(o.loraAdapter);
  let delta: SynthesizedDelta;
  try {
    const options = { targetRank: o.targetRank, noiseScale: o.noiseScale, decay: o.decay, seed: o.seed };
    delta = synthesizeTeacher(loraDeltas(config, weights), options, {
      sourceAdapter: o.loraAdapter,
      loraRank: config.r,
      loraAlpha: config.lora_alpha,
    });
  } finally {
    torch.dispose([...weights.values()]);
  }
  try {
    const deltaFile = at(files.delta);
    saveSynthesizedDelta(deltaFile, delta);
    const seconds = (performance.now() - started) / 1000;
    const reportFile = at(files.report);
    writeFileAtomic(reportFile, synthesisReport(delta));
    const modules = [...delta.info].map(([name, info]) => ({
      name: shortName(name),
      originalSpectrum: info.loraSpectrum,
      synthSpectrum: Array.from(delta.modules.get(name)!.S.data() as Float32Array, Number),
      achievedNoise: info.achievedNoiseRatio,
    }));
    const plotFile = at(files.plot);
    await saveChart(
      plotFile,
      synthesisChart({ modules, noiseScale: o.noiseScale, targetRank: o.targetRank, loraRank: delta.settings.loraRank ?? undefined }),
    );
    writeFileAtomic(at(files.timing), `${JSON.stringify({ seconds }, null, 2)}\n`);
    return { deltaFile, reportFile, plotFile, seconds, modules: modules.length };
  } finally {
    disposeDelta(delta);
  }
}
