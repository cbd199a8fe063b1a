// An experiment directory as the four steps leave it, from synthetic runs (no model is trained):
// training logs, summaries and adapter folders of every arm, the teacher and SVD step's files and
// figures, and the comparison. Fast enough for the report's tests (a few seconds of chart rendering).
import fs from "node:fs";
import path from "node:path";
import { compareRuns, writeComparison } from "../../src/pipeline/compare.js";
import { experimentLayout } from "../../src/pipeline/experiment.js";
import { EXPERIMENT, type ExperimentConfig } from "../../src/pipeline/settings.js";
import { defaults } from "../../src/util/settings.js";
import type { Layout } from "../../src/pipeline/layout.js";
import { lossCurvesChart, saveChart, svdAnalysisChart, synthesisChart } from "../../src/report/index.js";
import { TrainingLogWriter } from "../../src/train/log.js";
import type { TrainResult } from "../../src/train/trainer.js";
import { sampleRuns, sampleSvdModules, sampleSynthesisModules } from "./sample-data.js";

const STEPS_PER_EPOCH = 21;
const EPOCHS = 5;
const TOKENS_PER_STEP = 900;

/** Writes the sample experiment under outputDir (relative paths are taken from the cwd, as the CLI takes them). */
export async function writeSampleExperiment(
  outputDir: string,
  arms = ["random", "svd", "pissa"],
): Promise<{ config: ExperimentConfig; L: Layout }> {
  const config: ExperimentConfig = {
    ...(defaults(EXPERIMENT) as ExperimentConfig),
    outputDir,
    epochs: EPOCHS,
    arms: ["pissa"],
    quiet: true,
  };
  const L = experimentLayout(config);
  fs.mkdirSync(L.plots, { recursive: true });

  for (const [k, run] of sampleRuns(arms, 1, EPOCHS, STEPS_PER_EPOCH).entries()) {
    const log = new TrainingLogWriter(L.log(run.run));
    const evalAt = new Map(run.heldOut.map((p) => [p.step, p.loss]));
    const writeEval = (step: number) => {
      const loss = evalAt.get(step);
      if (loss !== undefined)
        log.writeEval({ step, epoch: step / STEPS_PER_EPOCH, evalLoss: loss, tokens: step * TOKENS_PER_STEP, elapsedS: step * 0.4 });
    };
    writeEval(0);
    for (const p of run.train) {
      log.writeTrain({
        step: p.step,
        epoch: p.step / STEPS_PER_EPOCH,
        loss: p.loss,
        lr: 2e-4,
        gradNorm: 1,
        tokens: p.step * TOKENS_PER_STEP,
        elapsedS: p.step * 0.4,
      });
      writeEval(p.step);
    }
    log.close();

    const steps = run.train.length;
    const result: TrainResult = {
      kind: "lora",
      init: run.arm as TrainResult["init"],
      seed: 42,
      steps,
      stepsPerEpoch: STEPS_PER_EPOCH,
      tokens: steps * TOKENS_PER_STEP,
      seconds: steps * 0.4,
      initialLoss: run.train[0].loss,
      finalLoss: run.train[steps - 1].loss,
      epochLosses: [],
      evalLosses: run.heldOut.map((p) => ({
        step: p.step,
        epoch: p.step / STEPS_PER_EPOCH,
        loss: p.loss,
        tokens: p.step * TOKENS_PER_STEP,
        elapsedS: p.step * 0.4,
        time: 1_800_000_000 + p.step * 0.4,
      })),
      truncated: 0,
      dropped: 0,
      tooLong: 0,
      samples: 81,
      trainableParameters: 65536,
      accuracy: { correct: 3 + k, total: 10, seconds: 2, items: Array.from({ length: 10 }, (_, i) => i < 3 + k) },
      skippedSteps: 0,
      resumedFrom: null,
      preparation: { tokens: 0, seconds: 0.1, batches: 0 },
      saved: { form: "as trained", conversionError: null },
    };
    fs.writeFileSync(L.summary(run.run), JSON.stringify({ made_by: "svdlora", settings: {}, result }, null, 2));
    fs.mkdirSync(L.adapter(run.run), { recursive: true });
    fs.writeFileSync(path.join(L.adapter(run.run), "adapter_config.json"), "{}\n");
    const rows = [
      ...run.train.map((p) => ({ step: p.step, epoch: p.step / STEPS_PER_EPOCH, loss: p.loss, evalLoss: evalAt.get(p.step) })),
      { step: 0, epoch: 0, loss: Number.NaN, evalLoss: evalAt.get(0) },
    ];
    await saveChart(L.lossPlot(run.run), lossCurvesChart(rows, `Training and held-out loss, ${run.arm}-init LoRA (r = 16, α = 16)`));
  }

  fs.mkdirSync(L.teacher, { recursive: true });
  fs.writeFileSync(L.synthesisReport, "teacher synthesis (sample)\n8 modules, rank K = 64\n");
  fs.writeFileSync(L.synthesisTiming, JSON.stringify({ seconds: 0.049 }));
  await saveChart(L.synthesisPlot, synthesisChart({ modules: sampleSynthesisModules(8), noiseScale: 0.1, targetRank: 64, loraRank: 16 }));
  fs.mkdirSync(L.factors, { recursive: true });
  fs.writeFileSync(path.join(L.factors, "adapter_config.json"), "{}\n");
  fs.writeFileSync(L.svdReport, "SVD analysis at rank r = 16 (sample)\n");
  fs.writeFileSync(L.svdTiming, JSON.stringify({ seconds: 0.012 }));
  await saveChart(L.svdPlot, svdAnalysisChart({ modules: sampleSvdModules(8), rank: 16, subject: "synthesized teacher ΔW" }));

  await writeComparison(L.training, compareRuns(L.training));
  return { config, L };
}
