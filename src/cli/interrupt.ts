// Ctrl-C (or SIGTERM, as `timeout`, `kill`, containers and batch schedulers send) for long commands:
// the first one asks the library to stop at the next step boundary (it saves a checkpoint and throws
// InterruptedError), a second one exits at once with 130.
import { type Io, println } from "./io.js";

export async function withInterrupts<T>(io: Io, work: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  const onSignal = (signal: NodeJS.Signals) => {
    if (controller.signal.aborted) process.exit(130);
    const again = signal === "SIGINT" ? "Ctrl-C again" : `a second ${signal}`;
    println(io.stderr, `\nsvdlora: stopping at the next step boundary (${again} to stop at once)`);
    controller.abort();
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  try {
    return await work(controller.signal);
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}
