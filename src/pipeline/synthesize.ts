// Step 2a: a teacher ΔW of rank K synthesized from the baseline's LoRA adapter.
import fs from "node:fs";
import path from "node:path";
import { disposeDelta, saveSynthesizedDelta, synthesisReport, synthesizeTeacher } from "../lowrank/index.js";
import { saveChart, synthesisChart } from "../report/index.js";
import { writeFileAtomic } from "../util/atomic.js";
import { shortName } from "./layout.js";

export interface SynthesizeOptions {
  loraAdapter: string;
  outputDir: string;
  targetRank: number;
  noiseScale: number;
  decay: number;
  seed: number;
}

export const SYNTHESIZE_DEFAULTS = { targetRank: 64, noiseScale: 0.1, decay: 0.1, seed: 42 };

export interface SynthesizeOutputs {
  deltaFile: string;
  reportFile: string;
  plotFile: string;
  seconds: number;
  modules: number;
}

export const deltaFileName = (targetRank: number) => `synthesized_delta_rank${targetRank}.safetensors`;

export async function synthesizeStep(o: SynthesizeOptions): Promise<SynthesizeOutputs> {
  if (!fs.existsSync(o.loraAdapter))
    throw new Error(`--lora-adapter ${o.loraAdapter}: no such directory (train the baseline first: svdlora train --init random)`);
  const started = performance.now();
  const delta = synthesizeTeacher(o.loraAdapter, { targetRank: o.targetRank, noiseScale: o.noiseScale, decay: o.decay, seed: o.seed });
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
