// `svdlora run` (the experiment's steps from an experiment file and flags; a menu on a terminal)
// and `svdlora demo` (all of it on the embedded tiny model and data, on the CPU in a few minutes).
import fs from "node:fs";
import type { Command } from "commander";
import { resolveBaseModel } from "../hf/hub.js";
import type { StepId } from "../pipeline/experiment.js";
import { EXPERIMENT, type ExperimentConfig } from "../pipeline/settings.js";
import { defaults, describe } from "../util/settings.js";
import { withInterrupts } from "./interrupt.js";
import { type Io, println } from "./io.js";
import type { Cli } from "./main.js";
import { addSettingFlags, checkDevice, givenSettings, refuseUnusedMaxNewTokens } from "./settings.js";

function parseSteps(value: string): StepId[] {
  if (value === "all") return [1, 2, 3, 4];
  const steps = value.split(",").map((s) => Number(s.trim()));
  if (steps.length === 0 || steps.some((s) => ![1, 2, 3, 4].includes(s)))
    throw new Error(`--steps ${value}: use all, or step numbers 1-4 separated by commas (e.g. 1,2)`);
  return [...new Set(steps)].sort() as StepId[];
}

/** The menu: the settings, each step's state, and a choice. */
async function menu(io: Io, c: ExperimentConfig): Promise<StepId[] | null> {
  const { STEP_NAMES, stepState } = await import("../pipeline/experiment.js");
  const out = (line = "") => println(io.stdout, line);
  out(`svdlora experiment in ${c.outputDir}`);
  out(
    `  ${describe(EXPERIMENT, c)
      .filter(([k]) => !["quiet"].includes(k))
      .map(([k, v]) => `${k} ${v}`)
      .join(", ")}`,
  );
  out("choose what to run:");
  out("  A  all steps (1-4)");
  for (const [id, name] of Object.entries(STEP_NAMES)) {
    const state = stepState(c, Number(id) as StepId);
    out(`  ${id}  ${name}  [${state.done ? "done" : state.stale ? `stale: ${state.why}` : "to do"}]`);
  }
  out("  q  quit");
  for (;;) {
    const answer = ((await io.ask?.("> ")) ?? "q").trim().toLowerCase();
    if (answer === "q" || answer === "quit") return null;
    if (answer === "a" || answer === "all") return [1, 2, 3, 4];
    if (["1", "2", "3", "4"].includes(answer)) return [Number(answer) as StepId];
    out("please answer A, 1, 2, 3, 4 or q");
  }
}

async function printOutcome(io: Io, c: ExperimentConfig): Promise<void> {
  const { experimentLayout } = await import("../pipeline/experiment.js");
  const L = experimentLayout(c);
  if (fs.existsSync(L.comparisonReport)) println(io.stdout, `\n${fs.readFileSync(L.comparisonReport, "utf8")}`);
  if (fs.existsSync(L.html)) println(io.stdout, `report: ${L.html}`);
}

async function experiment(cli: Cli, cmd: Command, base: Partial<ExperimentConfig>, steps: StepId[] | "ask"): Promise<void> {
  const given = givenSettings(cmd, EXPERIMENT);
  const c = { ...defaults(EXPERIMENT), ...base, ...given } as ExperimentConfig;
  refuseUnusedMaxNewTokens(given, c.accuracySamples);
  await checkDevice(cmd, c.device);
  c.baseModel = await resolveBaseModel(c.baseModel);
  const chosen = steps === "ask" ? await menu(cli.io, c) : steps;
  if (!chosen) return;
  const { runExperiment } = await import("../pipeline/experiment.js");
  const { terminalEvents } = await import("./progress.js");
  const events = terminalEvents(cli.io.stderr, { quiet: c.quiet });
  await withInterrupts(cli.io, (signal) =>
    runExperiment(c, chosen, { force: Boolean(cmd.opts().force), log: (line) => println(cli.io.stdout, line), signal, events }),
  );
  await printOutcome(cli.io, c);
}

export function registerRun(program: Command, cli: Cli): void {
  const run = program
    .command("run")
    .description("run the experiment's steps from a JSON/YAML experiment file and flags (a menu on a terminal, --steps otherwise)")
    .option("--config <file>", "experiment file (JSON or YAML; Hugging Face / PEFT / LLaMA-Factory names work too); flags override it")
    .option("--steps <list>", "all, or step numbers: 1 baseline, 2 teacher + SVD, 3 SVD-init and other arms, 4 comparison")
    .option("--force", "redo steps that are done, and replace outputs made with other settings");
  addSettingFlags(run, EXPERIMENT).action(async () => {
    const steps = run.opts().steps as string | undefined;
    if (!steps && !cli.io.interactive)
      throw new Error("run needs --steps when it is not on a terminal: --steps all, or step numbers such as 1,2");
    await experiment(cli, run, {}, steps ? parseSteps(steps) : "ask");
  });

  const demo = program
    .command("demo")
    .description("the whole experiment on the embedded tiny model and probability data, on the CPU in a few minutes")
    .option("--force", "redo steps that are done");
  addSettingFlags(demo, EXPERIMENT).action(async () => {
    const started = Date.now();
    // Sized to finish within 5 minutes on 2 CPU cores: one seed, two epochs, the held-out loss on 60
    // of the 240 held-out questions, accuracy on 40. Flags given to the demo override these.
    const sized = { outputDir: "svdlora-demo", seeds: 1, epochs: 2, evalLimit: 60, accuracySamples: 40 };
    println(
      cli.io.stdout,
      "demo: random, svd and pissa on the embedded tiny model, sized for a few minutes on 2 CPU cores (1 seed, 2 epochs, held-out loss on 60 samples, " +
        "accuracy on 40 questions; flags override them). A verdict needs more: the README's study runs 8 seeds and a learning-rate grid (bench/run-study.sh)",
    );
    await experiment(cli, demo, sized, [1, 2, 3, 4]);
    println(cli.io.stdout, `demo finished in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  });
}
