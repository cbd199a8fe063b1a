// `svdlora compare` (SPEC step 4): the table of every arm vs the baseline, the caveats, and the files written.
import type { Command } from "commander";
import { InvalidArgumentError } from "commander";
import { compareRuns, comparisonTable, writeComparison } from "../pipeline/compare.js";
import * as arg from "./args.js";

function finiteNumber(value: string): number {
  const n = Number(value);
  if (value.trim() === "" || !Number.isFinite(n)) throw new InvalidArgumentError(`expected a number, got "${value}"`);
  return n;
}

export function registerCompare(program: Command): void {
  program
    .command("compare")
    .description(
      "compare the training runs of each init (random, svd, pissa, …): initial/final loss, steps to a target loss, eval loss, accuracy, compute",
    )
    .option("--training-dir <dir>", "where the training_log_NAME.csv and train_summary_NAME.json files are", "training_results")
    .option("--target-loss <x>", "loss for 'steps to target' (default: the baseline arm's final smoothed loss)", finiteNumber)
    .option("--baseline <init>", "the arm the others are measured against", "random")
    .option("--smoothing <beta>", "EMA factor for the smoothed loss", arg.fraction, 0.9)
    .action(async (o) => {
      const result = compareRuns(o.trainingDir, { targetLoss: o.targetLoss, baseline: o.baseline, smoothing: o.smoothing });
      console.log(comparisonTable(result));
      for (const c of result.caveats) console.log(`\ncaveat: ${c}`);
      const paths = await writeComparison(o.trainingDir, result);
      console.log(`\nreport: ${paths.report}\njson:   ${paths.json}\nchart:  ${paths.chart}`);
    });
}
