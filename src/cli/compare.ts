// `svdlora compare` (step 4 of docs/experiment.md): every arm against the baseline, with the caveats and the files written.
import type { Command } from "commander";
import { compareRuns, comparisonTable, writeComparison } from "../pipeline/compare.js";
import { defaults, num, text } from "../util/settings.js";
import { println } from "./io.js";
import type { Cli } from "./main.js";
import { addSettingFlags, givenSettings } from "./settings.js";

const SCHEMA = {
  trainingDir: {
    kind: text("<dir>"),
    help: "where the training_log_NAME.csv and train_summary_NAME.json files are",
    default: "training_results",
  },
  targetLoss: { kind: num({ placeholder: "<x>" }), help: "loss for 'steps to target' (default: the baseline arm's final loss)" },
  baseline: { kind: text("<arm>"), help: "the arm the others are measured against", default: "random" },
  smoothing: { kind: num({ min: 0, below: 1, placeholder: "<beta>" }), help: "EMA factor for the smoothed training loss", default: 0.9 },
};

export function registerCompare(program: Command, cli: Cli): void {
  const cmd = program
    .command("compare")
    .description(
      "compare the training runs of each init (random, svd, pissa, …): initial/final loss, steps to a target loss, held-out loss, accuracy, compute",
    );
  addSettingFlags(cmd, SCHEMA).action(async () => {
    const o = { ...defaults(SCHEMA), ...givenSettings(cmd, SCHEMA) } as Required<ReturnType<typeof defaults<typeof SCHEMA>>> & {
      targetLoss?: number;
    };
    const result = compareRuns(o.trainingDir, { targetLoss: o.targetLoss, baseline: o.baseline, smoothing: o.smoothing });
    println(cli.io.stdout, comparisonTable(result));
    for (const c of result.caveats) println(cli.io.stdout, `\ncaveat: ${c}`);
    const paths = await writeComparison(o.trainingDir, result, (line) => println(cli.io.stderr, `svdlora: ${line}`));
    println(cli.io.stdout, `\nreport: ${paths.report}\njson:   ${paths.json}\nchart:  ${paths.chart}`);
  });
}
