// `svdlora train`: a LoRA adapter (steps 1 and 3 of docs/experiment.md), saved in PEFT format;
// `--gpus N` starts one process per GPU.
import path from "node:path";
import type { Command } from "commander";
import { resolveBaseModel } from "../hf/hub.js";
import { LORA_TRAINING } from "../train/settings.js";
import type { Cli } from "./main.js";
import { withInterrupts } from "./interrupt.js";
import { println } from "./io.js";
import { LaunchError, launchPlan, launchWorkers } from "./launch.js";
import { addSettingFlags, checkDevice, givenSettings, refuseUnusedMaxNewTokens } from "./settings.js";

export function registerTrain(program: Command, cli: Cli): void {
  const cmd = program
    .command("train")
    .description("train a LoRA adapter (random, gaussian, svd or pissa init) and save it in PEFT format")
    .option("--config <file>", "settings from a JSON or YAML file (Hugging Face / PEFT / LLaMA-Factory names work too); flags override it");
  addSettingFlags(cmd, LORA_TRAINING).action(async () => {
    const given = givenSettings(cmd, LORA_TRAINING);
    const device = (given.device as string | undefined) ?? "cpu";
    await checkDevice(cmd, device);
    if (given.svdFactors !== undefined && given.init !== "svd")
      throw new Error("--svd-factors is used only with --init svd: add --init svd, or drop --svd-factors");
    refuseUnusedMaxNewTokens(given);
    if (given.baseModel !== undefined) given.baseModel = await resolveBaseModel(given.baseModel as string);
    // The launcher starts one worker per GPU with this same command line (on each machine of
    // NNODES); each joins the group. Under torchrun or srun this process is already a worker.
    const plan = launchPlan((given.gpus as number | undefined) ?? null);
    if (plan) {
      const visible = (await import("../torch/index.js")).cuda.deviceCount();
      if (device.startsWith("cuda") && plan.gpus > visible)
        throw new Error(
          `--gpus ${plan.gpus}: this machine shows ${visible} GPU${visible === 1 ? "" : "s"}; use --gpus ${Math.max(1, visible)} or fewer`,
        );
      if (device.startsWith("cuda:"))
        throw new Error(`--gpus ${plan.gpus} picks the GPUs itself (one per process): use --device cuda, not ${device}`);
      try {
        return await launchWorkers(plan.gpus, process.argv.slice(2), {
          nodes: plan.nodes,
          nodeRank: plan.nodeRank,
          masterAddr: plan.master?.addr,
          masterPort: plan.master?.port,
        });
      } catch (e) {
        // Ctrl-C: the workers have said where they stopped; exit as they did (130).
        if (e instanceof LaunchError && e.rank === null) process.exit(e.exitCode);
        throw e;
      }
    }
    const { joinProcessGroup, leaveProcessGroup } = await import("../train/data-parallel.js");
    const { trainRun } = await import("../pipeline/train.js");
    const { terminalEvents } = await import("./progress.js");
    const dp = joinProcessGroup(device);
    try {
      const quiet = Boolean(given.quiet) || !dp.isMain;
      const events = terminalEvents(cli.io.stderr, { quiet });
      const r = await withInterrupts(cli.io, (signal) => trainRun(given, { signal, events, dataParallel: dp }));
      if (!dp.isMain) return;
      const out = (line: string) => println(cli.io.stdout, line);
      out(`trained ${r.steps} steps on ${r.samples} samples (${r.tokens} tokens) in ${r.seconds.toFixed(1)} s`);
      out(`train loss by epoch (mean over each epoch's predicted tokens): ${r.epochLosses.map((l) => l.toFixed(4)).join(", ")}`);
      if (r.evalLosses.length > 1) out(`held-out loss ${r.evalLosses[0].loss.toFixed(4)} → ${r.evalLosses.at(-1)!.loss.toFixed(4)}`);
      if (r.accuracy)
        out(
          `accuracy ${r.accuracy.correct}/${r.accuracy.total} held-out questions${r.accuracy.tooLong ? ` (${r.accuracy.tooLong} longer than --max-length could hold were left out)` : ""}`,
        );
      if (r.preparation?.tokens)
        out(
          `init preparation: ${r.preparation.batches} calibration batches, ${r.preparation.tokens} tokens, ${r.preparation.seconds.toFixed(1)} s (not in the figures above)`,
        );
      if (r.saved?.form === "converted")
        out(
          `the init rewrote the base weights: the adapter is saved as a LoRA of rank 2r for the original base (relative error ${r.saved.conversionError?.toExponential(1)})${r.saved.note ? `; ${r.saved.note}` : ""}`,
        );
      if (r.resumedFrom !== null) out(`resumed from the checkpoint at step ${r.resumedFrom}`);
      if (r.skippedSteps) out(`${r.skippedSteps} steps were skipped for a non-finite loss or gradient`);
      if (r.tooLong) out(`${r.tooLong} samples were longer than --max-length could hold and were left out before tokenizing`);
      if (r.truncated)
        out(
          `${r.truncated} samples were longer than --max-length and were truncated${r.dropped ? `; ${r.dropped} of them kept no answer token and were left out` : ""}`,
        );
      out(`adapter: ${r.adapterDir}\nlog:     ${r.logPath} (and .jsonl)\nsummary: ${r.summaryPath}\nfigure:  ${r.plotFile}`);
      out(`watch:   tensorboard --logdir ${path.dirname(path.dirname(r.tensorboardDir))} (run tensorboard/${r.runName})`);
    } finally {
      leaveProcessGroup(dp);
    }
  });
}
