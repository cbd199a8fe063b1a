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

export async function synthesizeStep(o: SynthesizeOptions): Promise<SynthesizeOutputs> {
  checkOutputDir(o.outputDir, "teacher folder");
  if (!fs.existsSync(o.loraAdapter))
    throw new Error(`--lora-adapter ${o.loraAdapter}: no such directory (train the baseline first: svdlora train --init random)`);
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
    fs.mkdirSync(o.outputDir, { recursive: true });
    const deltaFile = path.join(o.outputDir, deltaFileName(o.targetRank));
    saveSynthesizedDelta(deltaFile, delta);
    const seconds = (performance.now() - started) / 1000;
    const reportFile = path.join(o.outputDir, "synthesis_report.txt");
    writeFileAtomic(reportFile, synthesisReport(delta));
    const modules = [...delta.info].map(([name, info]) => ({
      name: shortName(name),
      originalSpectrum: info.loraSpectrum,
      synthSpectrum: Array.from(delta.modules.get(name)!.S.data() as Float32Array, Number),
      achievedNoise: info.achievedNoiseRatio,
    }));
    const plotFile = path.join(o.outputDir, "synthesis_plots.png");
    await saveChart(
      plotFile,
      synthesisChart({ modules, noiseScale: o.noiseScale, targetRank: o.targetRank, loraRank: delta.settings.loraRank ?? undefined }),
    );
    writeFileAtomic(path.join(o.outputDir, "synthesis_timing.json"), `${JSON.stringify({ seconds }, null, 2)}\n`);
    return { deltaFile, reportFile, plotFile, seconds, modules: modules.length };
  } finally {
    disposeDelta(delta);
  }
}
