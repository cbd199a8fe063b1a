// Steps 1 and 3: a LoRA training run, then its loss-curve figure.
import path from "node:path";
import { lossCurvesChart, saveChart } from "../report/index.js";
import { readTrainingLog } from "../train/log.js";
import { type TrainConfig, type TrainResult, train } from "../train/trainer.js";

export async function trainStep(cfg: TrainConfig): Promise<TrainResult & { plotFile: string }> {
  const result = await train(cfg);
  const log = readTrainingLog(result.logPath);
  const evalByStep = new Map(log.eval.map((e) => [e.step, e.evalLoss]));
  const rows = [
    ...log.train.map((r) => ({ step: r.step, loss: r.loss, epoch: r.epoch, evalLoss: evalByStep.get(r.step) })),
    ...(evalByStep.has(0) ? [{ step: 0, loss: Number.NaN, epoch: 0, evalLoss: evalByStep.get(0) }] : []),
  ];
  const plotFile = path.join(cfg.outputDir, "plots", `loss_curves_${result.runName}.png`);
  const init = cfg.init === "svd" ? "SVD-initialized" : `${cfg.init}-init`;
  const what = log.eval.length > 0 ? "Training and held-out loss" : "Training loss"; // report: the title says what is drawn
  await saveChart(plotFile, lossCurvesChart(rows, `${what}, ${init} LoRA (r = ${cfg.lora.rank}, α = ${cfg.lora.alpha})`));
  return { ...result, plotFile };
}
