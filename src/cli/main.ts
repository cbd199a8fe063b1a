// The `svdlora` command: one file per subcommand registers itself here.
import { Command, CommanderError } from "commander";
import { registerCompare } from "./compare.js";
import { registerEval } from "./eval.js";
import { registerInfo } from "./info.js";
import { registerMerge } from "./merge.js";
import { registerPretrain } from "./pretrain.js";
import { registerRun } from "./run.js";
import { registerSvd } from "./svd.js";
import { registerSynthesize } from "./synthesize.js";
import { registerTrain } from "./train.js";
import { registerTrainFull } from "./train-full.js";
import { InterruptedError } from "../train/trainer.js";
import { packageVersion } from "../version.js";

const program = new Command("svdlora")
  .description("SVD-guided LoRA initialization experiments on causal language models (libtorch, CPU or CUDA)")
  .version(packageVersion())
  .showHelpAfterError("(run `svdlora --help` for usage)")
  .configureOutput({ outputError: (message, write) => write(`svdlora: ${message}`) })
  .exitOverride();

registerInfo(program);
registerTrain(program);
registerTrainFull(program);
registerPretrain(program);
registerEval(program);
registerMerge(program);
registerCompare(program);
registerSynthesize(program);
registerSvd(program);
registerRun(program);

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

try {
  // glibc keeps freed memory for reuse (faster CPU runs, see tuneHostAllocator); SVDLORA_SYSTEM_MALLOC=1 leaves it as is.
  if (!process.env.SVDLORA_SYSTEM_MALLOC) (await import("../torch/index.js")).tuneHostAllocator();
  // Like torch.cuda.set_per_process_memory_fraction, for sharing a GPU (and for trying out-of-memory handling).
  const fraction = process.env.SVDLORA_CUDA_MEMORY_FRACTION;
  if (fraction) (await import("../torch/index.js")).cuda.setMemoryFraction(Number(fraction));
  await program.parseAsync(process.argv);
} catch (e) {
  if (e instanceof CommanderError) process.exit(e.exitCode); // commander already printed the message
  if (e instanceof InterruptedError) {
    console.error(`svdlora: ${e.message}`);
    process.exit(130);
  }
  // One clear line for users; the stack only on request.
  const err = e as Error;
  console.error(`svdlora: error: ${explainOutOfMemory(err.message) ?? err.message}`);
  if (process.env.SVDLORA_DEBUG) console.error(err.stack);
  process.exit(1);
}
