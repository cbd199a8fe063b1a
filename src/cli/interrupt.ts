// Ctrl-C for long commands: the first one asks the library to stop at the next step boundary
// (it saves a checkpoint and throws InterruptedError), a second one exits at once with 130.
import { type Io, println } from "./io.js";

export async function withInterrupts<T>(io: Io, work: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  const onSigint = () => {
    if (controller.signal.aborted) process.exit(130);
    println(io.stderr, "\nsvdlora: stopping at the next step boundary (Ctrl-C again to stop at once)");
    controller.abort();
  };
  process.on("SIGINT", onSigint);
  try {
    return await work(controller.signal);
  } finally {
    process.off("SIGINT", onSigint);
  }
}
