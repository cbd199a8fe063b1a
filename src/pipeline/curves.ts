// Each run's loss curves from its training log, as the comparison chart and report.html draw them:
// training loss per step, and held-out loss at each evaluation (the rows with eval_loss).
import type { RunCurves } from "../report/index.js";
import { readTrainingLog } from "../train/log.js";

export function runCurves(runs: readonly { run: string; arm: string; log: string }[]): RunCurves[] {
  return runs.map(({ run, arm, log }) => {
    const { train, eval: evals } = readTrainingLog(log);
    return {
      run,
      arm,
      train: train.map((r) => ({ step: r.step, loss: r.loss })),
      heldOut: evals.map((e) => ({ step: e.step, loss: e.evalLoss })),
    };
  });
}
