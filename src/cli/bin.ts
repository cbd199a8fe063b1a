// The process around main(): the terminal's streams, questions on stdin (the `run` menu), the
// exit code, and process-wide settings read from the environment.
import readline from "node:readline/promises";
import { tuneHostAllocator } from "../torch/native.js";
import { onFilesystemChange } from "../util/outputs.js";
import { main } from "./main.js";

// glibc keeps freed memory for reuse (faster CPU runs, see tuneHostAllocator); SVDLORA_SYSTEM_MALLOC=1 leaves it as is.
if (!process.env.SVDLORA_SYSTEM_MALLOC) tuneHostAllocator();
// Like torch.cuda.set_per_process_memory_fraction, for sharing a GPU (and for trying out-of-memory handling).
const fraction = process.env.SVDLORA_CUDA_MEMORY_FRACTION;
if (fraction) (await import("../torch/index.js")).cuda.setMemoryFraction(Number(fraction));

// Tests of crash safety and locking: die (SIGKILL), or stop until SIGCONT (SIGSTOP), just before
// the k-th change svdlora makes to the file system.
const killAt = Number(process.env.SVDLORA_TEST_KILL_AT ?? 0);
const stopAt = Number(process.env.SVDLORA_TEST_STOP_AT ?? 0);
if (killAt > 0 || stopAt > 0)
  onFilesystemChange((n) => {
    if (n === killAt) process.kill(process.pid, "SIGKILL");
    if (n === stopAt) process.kill(process.pid, "SIGSTOP");
  });

async function ask(prompt: string): Promise<string | null> {
  const rl = readline.createInterface({ input: process.stdin, output: process.stdout });
  try {
    return await rl.question(prompt);
  } catch {
    return null; // Ctrl-D
  } finally {
    rl.close();
  }
}

process.exitCode = await main(process.argv.slice(2), {
  io: { stdout: process.stdout, stderr: process.stderr, interactive: Boolean(process.stdin.isTTY && process.stdout.isTTY), ask },
});
