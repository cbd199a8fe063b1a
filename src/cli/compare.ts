// `svdlora compare` (step 4 of docs/experiment.md): every arm against the baseline, paired by seed, with the verdict and the files written.
import type { Command } from "commander";
import { COMPARISON } from "../pipeline/settings.js";
import { checkOutputDir } from "../util/files.js";
import { defaults, text } from "../util/settings.js";
import { println } from "./io.js";
import type { Cli } from "./main.js";
import { addSettingFlags, givenSettings } from "./settings.js";

const SCHEMA = {
  trainingDir: { kind: text("<dir>"), help: "where the runs' train_summary_NAME.json files are", default: "training_results" },
  ...COMPARISON,
};

export function registerCompare(program: Command, cli: Cli): void {
  const cmd = program
    .command("compare")
    .description(
      "compare every arm with the baseline, paired by seed: intervals, tests, the verdict, and the learning rates when several were tried",
    );
  addSettingFlags(cmd, SCHEMA).action(async () => {
    const o = { ...defaults(SCHEMA), ...givenSettings(cmd, SCHEMA) } as Required<ReturnType<typeof defaults<typeof SCHEMA>>> & {
      targetLoss?: number;
    };
    const { compareRuns, renderComparisonReport, writeComparison } = await import("../pipeline/compare.js");
    checkOutputDir(o.trainingDir, "comparison report folder");
    const result = compareRuns(o.trainingDir, {
      baseline: o.baseline,
      primary: o.primary,
      targetLoss: o.targetLoss,
      allowMismatch: o.allowMismatch,
    });
    const paths = await writeComparison(o.trainingDir, result, (line) => println(cli.io.stderr, `svdlora: ${line}`));
    println(cli.io.stdout, renderComparisonReport(result));
    println(cli.io.stdout, `report: ${paths.report}\njson:   ${paths.json}\nchart:  ${paths.chart}`);
  });
}
