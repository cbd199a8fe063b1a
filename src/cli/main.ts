// The `svdlora` command: one file per subcommand registers itself on a fresh program. main() runs
// one command line and returns its exit code; bin/svdlora.js exits with it. Only this folder owns
// the process: signals (interrupt.ts), exit codes and terminal output; the library reports errors
// in its own terms, and here they become one line that names the flag to change.
// Start-up stays light: the command files import only settings schemas and small helpers at the
// top, and an action imports what it runs (`await import`), so `--help` and flag errors load
// neither libtorch nor the pipeline, nor does `info` where its libtorch has no CUDA
// (test/cli/startup.test.ts checks it).
import { Command, CommanderError } from "commander";
import { InterruptedError } from "../train/events.js";
import { SettingError } from "../util/settings.js";
import { packageVersion } from "../version.js";
import { registerBench } from "./bench.js";
import { registerCompare } from "./compare.js";
import { registerEval } from "./eval.js";
import { registerInfo } from "./info.js";
import { type Io, println } from "./io.js";
import { registerMerge } from "./merge.js";
import { registerPretrain } from "./pretrain.js";
import { registerRun } from "./run.js";
import { explainSettingError, schemaOf, withFlagNames } from "./settings.js";
import { registerSvd } from "./svd.js";
import { registerSynthesize } from "./synthesize.js";
import { registerTrain } from "./train.js";
import { registerTrainFull } from "./train-full.js";

/** What a command needs from the outside world. */
export interface Cli {
  io: Io;
}

export function buildProgram(cli: Cli): Command {
  const program = new Command("svdlora")
    .description("SVD-guided LoRA initialization experiments on causal language models (libtorch, CPU or CUDA)")
    .version(packageVersion())
    .showHelpAfterError("(run `svdlora --help` for usage)")
    .configureOutput({
      writeOut: (s) => cli.io.stdout.write(s),
      writeErr: (s) => cli.io.stderr.write(s),
      outputError: (message, write) => write(`svdlora: ${message}`),
    })
    .exitOverride();
  for (const register of [
    registerInfo,
    registerTrain,
    registerTrainFull,
    registerPretrain,
    registerEval,
    registerMerge,
    registerCompare,
    registerSynthesize,
    registerSvd,
    registerRun,
    registerBench,
  ])
    register(program, cli);
  // Every subcommand reports its errors through main(), not by exiting.
  for (const cmd of program.commands) cmd.exitOverride().configureOutput(program.configureOutput());
  return program;
}

/** libtorch's out-of-memory error, said the way users can act on. */
function explainOutOfMemory(message: string): string | null {
  if (!/out of memory/i.test(message)) return null;
  // "CUDA out of memory. Tried to allocate 20.00 MiB. GPU 0 has …": its first two sentences.
  const what = message
    .split("\n")[0]
    .replace(/^\w+: /, "")
    .split(". ")
    .slice(0, 2)
    .join(". ");
  return `out of GPU memory (${what}): try a lower --max-memory (more layers recomputed) or --gradient-checkpointing on, a smaller --batch-size with more --gradient-accumulation-steps (same effective batch), or a smaller --max-length`;
}

/**
 * One line for an error from the library, with the flags that change what went wrong: the library
 * names a setting by its key in backticks (`learningRate`), the command line by its flag.
 */
export function explainError(e: Error, command: Command | null): string {
  const schema = schemaOf(command);
  if (e instanceof SettingError) return explainSettingError(e, schema);
  return withFlagNames(explainOutOfMemory(e.message) ?? e.message, schema).replace(/\s*\n\s*/g, " ");
}

/** Runs one command line (argv without node and the script); returns the exit code. */
export async function main(argv: string[], cli: Cli): Promise<number> {
  const program = buildProgram(cli);
  let running: Command | null = null;
  program.hook("preAction", (_root, action) => {
    running = action;
  });
  try {
    await program.parseAsync(argv, { from: "user" });
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode; // commander printed its message already
    if (e instanceof InterruptedError) {
      println(cli.io.stderr, `svdlora: ${explainError(e, running)}`);
      return 130;
    }
    const err = e as Error;
    println(cli.io.stderr, `svdlora: error: ${explainError(err, running)}`);
    if (process.env.SVDLORA_DEBUG) println(cli.io.stderr, err.stack);
    return 1;
  }
}
