// `svdlora train`: LoRA fine-tuning (SPEC steps 1 and 3).
import type { Command } from "commander";
import { resolveBaseModel } from "../hf/hub.js";
import { trainStep } from "../pipeline/train.js";
import {
  GRADIENT_CHECKPOINTING,
  type GradientCheckpointing,
  TRAIN_DEFAULTS,
  type InitKind,
  type TrainConfig,
  train,
} from "../train/trainer.js";
import * as torch from "../torch/index.js";
import { LaunchError, launchWorkers } from "../train/launch.js";
import * as arg from "./args.js";
import { addTrainingFlags, trainingFlagValues } from "./training-flags.js";

export function registerTrain(program: Command): void {
  const d = TRAIN_DEFAULTS;
  addTrainingFlags(
    program.command("train").description("train a LoRA adapter (random, gaussian, svd or pissa init) and save it in PEFT format"),
    d,
  )
    .option("--init <kind>", "random | gaussian | svd | pissa", arg.oneOf(["random", "gaussian", "svd", "pissa"] as const), d.init)
    .option("--svd-factors <dir>", "PEFT adapter with the SVD factors (for --init svd)")
    .option("--lora-rank <r>", "LoRA rank", arg.positiveInt, d.lora.rank)
    .option("--lora-alpha <alpha>", "LoRA alpha (scaling alpha/r)", arg.positiveNumber, d.lora.alpha)
    .option("--lora-dropout <p>", "dropout on the LoRA input", arg.fraction, 0)
    .option("--rslora", "rank-stabilized scaling alpha/sqrt(r)")
    .option("--target-modules <list>", "comma-separated module names, or all-linear", arg.targets, d.lora.targets)
    .option("--gradient-accumulation-steps <n>", "micro-batches per optimizer step", arg.positiveInt, d.gradientAccumulationSteps)
    .option("--packing", "pack each batch into one row, no padding, attention kept inside samples (default on cuda)")
    .option("--no-packing", "pad each batch to its longest sample instead")
    .option(
      "--gradient-checkpointing <mode>",
      "recompute layers in backward: auto (on cuda, only as many as --max-memory needs) | on | off",
      arg.oneOf(GRADIENT_CHECKPOINTING),
      d.gradientCheckpointing,
    )
    .option("--max-memory <GiB>", "GPU memory budget for --gradient-checkpointing auto (default 90% of the card)", arg.positiveNumber)
    .option(
      "--dtype <dtype>",
      "weights dtype (default float32 on cpu, bfloat16 on cuda)",
      arg.oneOf(["float32", "bfloat16", "float16"] as const),
    )
    .option("--output-dir <dir>", "where final_model_<init>/ and training_log_<init>.csv go", "training_results")
    .option("--save-steps <n>", "also checkpoint every n optimizer steps (always at each epoch's end)", arg.int, 0)
    .option("--resume", "continue from the run's checkpoint in <output-dir>/checkpoints/ (same flags)")
    .option("--skip-nonfinite", "skip steps with a NaN/inf loss or gradient (counted) instead of stopping")
    .option(
      "--gpus <n>",
      "data-parallel over n processes, one GPU each (n CPU processes with --device cpu); each takes --batch-size samples per step",
      arg.positiveInt,
      1,
    )
    .action(async (o) => {
      // The launcher starts one worker per GPU with this same command line; each joins the group.
      if (o.gpus > 1 && !process.env.WORLD_SIZE) {
        const visible = torch.cuda.deviceCount();
        if (o.device.startsWith("cuda") && o.gpus > visible)
          throw new Error(
            `--gpus ${o.gpus}: this machine shows ${visible} GPU${visible === 1 ? "" : "s"}; use --gpus ${Math.max(1, visible)} or fewer`,
          );
        if (o.device.startsWith("cuda:"))
          throw new Error(`--gpus ${o.gpus} picks the GPUs itself (one per process): use --device cuda, not ${o.device}`);
        try {
          return await launchWorkers(o.gpus, process.argv.slice(2));
        } catch (e) {
          // Ctrl-C: the workers have said where they stopped; exit as they did (130).
          if (e instanceof LaunchError && e.rank === null) process.exit(e.exitCode);
          throw e;
        }
      }
      const otherRank = Boolean(process.env.RANK) && process.env.RANK !== "0";
      const flags = trainingFlagValues(o);
      const cfg: TrainConfig = {
        ...TRAIN_DEFAULTS,
        ...flags,
        baseModel: await resolveBaseModel(o.baseModel),
        outputDir: o.outputDir,
        init: o.init as InitKind,
        svdFactors: o.svdFactors,
        lora: { rank: o.loraRank, alpha: o.loraAlpha, dropout: o.loraDropout, rslora: Boolean(o.rslora), targets: o.targetModules },
        gradientAccumulationSteps: o.gradientAccumulationSteps,
        packing: o.packing as boolean | undefined,
        gradientCheckpointing: o.gradientCheckpointing as GradientCheckpointing,
        maxMemoryGib: o.maxMemory as number | undefined,
        dtype: o.dtype as torch.DType | undefined,
        saveSteps: o.saveSteps,
        resume: Boolean(o.resume),
        skipNonfinite: Boolean(o.skipNonfinite),
      };
      if (otherRank) return void (await train(cfg)); // rank 0 writes and reports
      const result = await trainStep(cfg);
      const evalData = flags.evalData;
      const evals = result.evalLosses;
      console.log(`trained ${result.steps} steps on ${result.samples} samples (${result.tokens} tokens) in ${result.seconds.toFixed(1)} s`);
      console.log(`train loss by epoch: ${result.epochLosses.map((l) => l.toFixed(4)).join(", ")}`);
      if (evals.length > 1)
        console.log(`eval loss  ${evals[0].loss.toFixed(4)} → ${evals[evals.length - 1].loss.toFixed(4)} (${evalData})`);
      if (result.resumedFrom !== null) console.log(`resumed from the checkpoint at step ${result.resumedFrom}`);
      if (result.skippedSteps) console.log(`${result.skippedSteps} steps were skipped for a non-finite loss or gradient`);
      if (result.truncated)
        console.log(
          `${result.truncated} samples were longer than --max-length and were truncated${result.dropped ? `; ${result.dropped} of them kept no answer token and were left out` : ""}`,
        );
      console.log(`adapter: ${result.adapterDir}\nlog:     ${result.logPath}\nfigure:  ${result.plotFile}`);
    });
}
