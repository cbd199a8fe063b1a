// Multi-GPU runs from one command, like torchrun: `svdlora train … --gpus 4` starts 4 copies of
// the same command, one per GPU, that find each other through the variables torch.distributed
// uses (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT; read with fromEnv(), util/dist-env.ts).
// On several machines, the same command on each with NNODES (how many), NODE_RANK (which one) and
// MASTER_ADDR / MASTER_PORT (rank 0's machine and a free port there), as torchrun's --nnodes and
// --node-rank. Under torchrun or srun, which start the workers themselves, it starts nothing.
//
// Each worker sees one GPU (CUDA_VISIBLE_DEVICES), so it trains on "cuda" / "cuda:0" as a single
// process would. Rank 0 keeps the terminal (progress bars, colours); the other ranks' lines are
// prefixed "[rank k] ". When a worker fails, the others are stopped and the launch fails naming the
// rank. Ctrl-C reaches each worker once (they run in their own process group), so the trainer's
// "first Ctrl-C stops at the next step, the second at once" works as in a single process.
import { type ChildProcess, spawn } from "node:child_process";
import net from "node:net";
import os from "node:os";
import { fromEnv } from "../util/dist-env.js";

export interface LaunchOptions {
  /** The script the workers run. Default: this process's (process.argv[1]). */
  script?: string;
  /** Node's own flags for the workers. Default: this process's (process.execArgv). */
  execArgv?: string[];
  /** The environment the workers start from. Default: process.env. */
  env?: NodeJS.ProcessEnv;
  masterAddr?: string;
  /** Default: a free port on masterAddr. */
  masterPort?: number;
  /** GPU ids, one per rank (CUDA_VISIBLE_DEVICES for each worker). Default: this process's
   * CUDA_VISIBLE_DEVICES list, else 0..n-1. */
  devices?: string[];
  /** Set each worker's CUDA_VISIBLE_DEVICES (default true); false leaves device choice to LOCAL_RANK. */
  isolateDevices?: boolean;
  /** Machines taking part (NNODES), each running this launcher with the same `nGpus`, and which
   * one this is (NODE_RANK): the workers here are ranks nodeRank·nGpus … (nodeRank+1)·nGpus − 1.
   * Default: one machine. With several, give masterAddr and masterPort (the same on every machine). */
  nodes?: number;
  nodeRank?: number;
  /** "all" (default): every rank's output, ranks > 0 prefixed; "main": only rank 0's stdout, every rank's stderr. */
  output?: "all" | "main";
  /** Rank 0 writes straight to this process's stdout/stderr (default true: keeps the terminal);
   * false pipes it through `stdout`/`stderr` below with a "[rank 0] " prefix. */
  inheritMain?: boolean;
  stdout?: NodeJS.WritableStream;
  stderr?: NodeJS.WritableStream;
  /** After a failure, how long the other workers get to stop on SIGTERM before SIGKILL. Default 5 s. */
  killAfterMs?: number;
}

/** A launch that failed: `rank` is the first worker that failed (null: a signal stopped it). */
export class LaunchError extends Error {
  constructor(
    message: string,
    readonly rank: number | null,
    readonly exitCode: number,
  ) {
    super(message);
    this.name = "LaunchError";
  }
}

/** The value of `--gpus N` / `--gpus=N` in argv, or null when absent. Throws for a bad N. */
export function gpusFlag(argv: string[]): number | null {
  let value: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--") break;
    if (argv[i] === "--gpus") value = argv[i + 1] ?? "";
    else if (argv[i].startsWith("--gpus=")) value = argv[i].slice("--gpus=".length);
  }
  if (value === undefined) return null;
  if (!/^\d+$/.test(value) || Number(value) < 1) throw new Error(`--gpus must be a whole number ≥ 1, got ${JSON.stringify(value)}`);
  return Number(value);
}

/** argv without `--gpus N` / `--gpus=N`: what each worker runs. */
export function withoutGpusFlag(argv: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--") {
      out.push(...argv.slice(i));
      break;
    }
    if (argv[i] === "--gpus") i++;
    else if (!argv[i].startsWith("--gpus=")) out.push(argv[i]);
  }
  return out;
}

/** A TCP port that was free a moment ago on host (the usual race: torchrun does the same). */
export function freePort(host = "127.0.0.1"): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, host, () => {
      const port = (server.address() as net.AddressInfo).port;
      server.close(() => resolve(port));
    });
  });
}

/** The workers `--gpus` asks this process to start on its machine (launchPlan). */
export interface LaunchPlan {
  gpus: number;
  /** NNODES, and NODE_RANK: which machine this is. */
  nodes: number;
  nodeRank: number;
  /** Rank 0's store with several machines; null: loopback and a free port. */
  master: { addr: string; port: number } | null;
}

const wholeVar = (name: string, value: string, min: number): number => {
  if (!/^\s*\d+\s*$/.test(value) || Number(value) < min)
    throw new Error(`${name}=${JSON.stringify(value)} must be a whole number ≥ ${min}`);
  return Number(value);
};

/**
 * What `--gpus` (null: not given, one) means in this environment. Null when this process is already
 * one of several that a launcher started (torchrun's or this one's RANK and WORLD_SIZE, or srun's
 * tasks: fromEnv) or runs alone; else the workers to start here, on one machine of
 * NNODES. Variables that disagree with each other, or with what a launcher set, are one-line errors.
 */
export function launchPlan(gpus: number | null, env: NodeJS.ProcessEnv = process.env): LaunchPlan | null {
  const started = fromEnv(env);
  const nnodes = env.NNODES ? wholeVar("NNODES", env.NNODES, 1) : null;
  const nodeRank = env.NODE_RANK ? wholeVar("NODE_RANK", env.NODE_RANK, 0) : null;
  if (nodeRank !== null && nnodes === null)
    throw new Error(`NODE_RANK=${nodeRank} is set but NNODES is not: set NNODES to the number of machines`);
  if (nnodes !== null && nodeRank !== null && nodeRank >= nnodes) throw new Error(`NODE_RANK=${nodeRank} is not below NNODES=${nnodes}`);
  if (started) {
    // torchrun or srun started this process: what else is set must agree with them.
    const { worldSize, localWorldSize } = started;
    if (gpus !== null && gpus !== localWorldSize)
      throw new Error(
        `--gpus ${gpus}, but this process is one of ${localWorldSize} that a launcher (torchrun, srun) started on this machine: leave --gpus out under a launcher`,
      );
    if (nnodes !== null && nnodes * localWorldSize !== worldSize)
      throw new Error(
        `NNODES=${nnodes} disagrees with the launcher's ${worldSize} processes, ${localWorldSize} per machine: unset NNODES and NODE_RANK under torchrun or srun`,
      );
    const groupRank = env.GROUP_RANK ? wholeVar("GROUP_RANK", env.GROUP_RANK, 0) : null;
    if (nodeRank !== null && groupRank !== null && nodeRank !== groupRank)
      throw new Error(`NODE_RANK=${nodeRank} disagrees with torchrun's GROUP_RANK=${groupRank}: unset NODE_RANK under torchrun`);
    return null;
  }
  const local = gpus ?? 1;
  const nodes = nnodes ?? 1;
  if (nodes === 1) return local > 1 ? { gpus: local, nodes: 1, nodeRank: 0, master: null } : null;
  if (nodeRank === null)
    throw new Error(`NNODES=${nodes} needs NODE_RANK on each machine: 0 on the one at MASTER_ADDR, 1 to ${nodes - 1} on the others`);
  if (!env.MASTER_ADDR || !env.MASTER_PORT)
    throw new Error(
      `NNODES=${nodes} needs MASTER_ADDR and MASTER_PORT, the same on every machine: the address of the machine with NODE_RANK=0 and a free port there`,
    );
  const port = wholeVar("MASTER_PORT", env.MASTER_PORT, 1);
  if (port > 65535) throw new Error(`MASTER_PORT=${port} must be at most 65535`);
  const addr = env.MASTER_ADDR.trim();
  if (/\s/.test(addr) || addr === "") throw new Error(`MASTER_ADDR=${JSON.stringify(env.MASTER_ADDR)} is not a host name or address`);
  return { gpus: local, nodes, nodeRank, master: { addr, port } };
}

/**
 * Which of `n` items rank `rank` of `worldSize` takes, as torch's DistributedSampler without
 * shuffling and with drop_last=False: the list is padded by wrapping around to a multiple of
 * worldSize, then rank r takes positions r, r + worldSize, r + 2·worldSize, …
 *
 * Padding rather than dropping: every rank gets exactly ceil(n / worldSize) items, so every rank
 * runs the same number of steps and all-reduces (a rank with one step fewer would leave the others
 * waiting in a collective until the timeout), and no sample is left out of an epoch; the price is
 * that up to worldSize − 1 samples are seen twice per epoch. Striding keeps global batches equal
 * to a single process's: with a per-rank batch of B, step s of all ranks together covers positions
 * [s·B·worldSize, (s+1)·B·worldSize) of the list — one process with batch B·worldSize sees the same
 * samples per step. Apply it to the epoch's shuffled order: `shardIndices(order.length, …).map((i) => order[i])`.
 */
export function shardIndices(n: number, rank: number, worldSize: number): number[] {
  if (!Number.isInteger(n) || n < 0) throw new Error(`shardIndices: n must be a whole number ≥ 0, got ${n}`);
  if (!Number.isInteger(worldSize) || worldSize < 1)
    throw new Error(`shardIndices: worldSize must be a whole number ≥ 1, got ${worldSize}`);
  if (!Number.isInteger(rank) || rank < 0 || rank >= worldSize)
    throw new Error(`shardIndices: rank must be in 0..${worldSize - 1}, got ${rank}`);
  if (n === 0) return [];
  const perRank = Math.ceil(n / worldSize);
  const out: number[] = new Array(perRank);
  for (let k = 0; k < perRank; k++) out[k] = (rank + k * worldSize) % n;
  return out;
}

// Forwards a stream line by line with a prefix (a partial last line is flushed at the end).
function forwardLines(from: NodeJS.ReadableStream, to: NodeJS.WritableStream, prefix: string): void {
  let pending = "";
  from.setEncoding("utf8");
  from.on("data", (chunk: string) => {
    const lines = (pending + chunk).split(/\r?\n|\r(?!\n)/);
    pending = lines.pop() ?? "";
    for (const line of lines) to.write(`${prefix}${line}\n`);
  });
  from.on("end", () => {
    if (pending) to.write(`${prefix}${pending}\n`);
    pending = "";
  });
}

const describeExit = (code: number | null, signal: NodeJS.Signals | null) =>
  signal ? `was killed by ${signal}` : `exited with code ${code}`;

/**
 * Runs `nGpus` workers of the same command (process.execPath, the script, argv without --gpus)
 * and resolves when all of them exit with 0. When one fails, the others here are stopped and the
 * promise rejects with a LaunchError naming the rank (exitCode: the worker's code, or 128 +
 * signal); other machines' workers fail at their next collective, after the group's timeout.
 */
export async function launchWorkers(nGpus: number, argv: string[], o: LaunchOptions = {}): Promise<void> {
  if (!Number.isInteger(nGpus) || nGpus < 1)
    throw new Error(`launchWorkers: the number of workers must be a whole number ≥ 1, got ${nGpus}`);
  const script = o.script ?? process.argv[1];
  const baseEnv = o.env ?? process.env;
  const nodes = o.nodes ?? 1;
  const nodeRank = o.nodeRank ?? 0;
  if (!Number.isInteger(nodes) || nodes < 1 || !Number.isInteger(nodeRank) || nodeRank < 0 || nodeRank >= nodes)
    throw new Error(`launchWorkers: machine ${nodeRank} of ${nodes} is not one of them`);
  if (nodes > 1 && (o.masterAddr === undefined || o.masterPort === undefined))
    throw new Error("launchWorkers: several machines need masterAddr and masterPort, the same on each");
  const masterAddr = o.masterAddr ?? "127.0.0.1";
  const masterPort = o.masterPort ?? (await freePort(masterAddr));
  const visible = baseEnv.CUDA_VISIBLE_DEVICES?.split(",")
    .map((d) => d.trim())
    .filter((d) => d !== "");
  const devices = o.devices ?? (visible && visible.length > 0 ? visible : Array.from({ length: nGpus }, (_, k) => String(k)));
  const isolate = o.isolateDevices ?? true;
  if (isolate && devices.length < nGpus)
    throw new Error(`launchWorkers: ${nGpus} workers need ${nGpus} GPUs, but only ${devices.length} are listed (${devices.join(",")})`);
  const stdout = o.stdout ?? process.stdout;
  const stderr = o.stderr ?? process.stderr;
  const inheritMain = o.inheritMain ?? true;
  const args = [...(o.execArgv ?? process.execArgv), script, ...withoutGpusFlag(argv)];

  const children = new Map<number, ChildProcess>(); // by rank
  const running = new Set<number>();
  let failure: LaunchError | null = null;
  let anyFailed = false;
  let killTimer: NodeJS.Timeout | null = null;

  const stopOthers = () => {
    for (const k of running) children.get(k)!.kill("SIGTERM");
    killTimer = setTimeout(() => {
      for (const k of running) children.get(k)!.kill("SIGKILL");
    }, o.killAfterMs ?? 5000);
    killTimer.unref();
  };
  // A forwarded Ctrl-C or SIGTERM: the workers stop on their own (the trainer saves a checkpoint
  // first), so one exiting non-zero must not get the others killed.
  let signalled: NodeJS.Signals | null = null;
  const forward = (signal: NodeJS.Signals) => () => {
    signalled = signal;
    for (const k of running) children.get(k)!.kill(signal);
  };
  const onSigint = forward("SIGINT");
  const onSigterm = forward("SIGTERM");
  const onExit = () => {
    for (const k of running) children.get(k)!.kill("SIGKILL");
  };
  process.on("SIGINT", onSigint);
  process.on("SIGTERM", onSigterm);
  process.on("exit", onExit);

  try {
    await new Promise<void>((resolve) => {
      for (let local = 0; local < nGpus; local++) {
        const rank = nodeRank * nGpus + local;
        // What torchrun sets for its workers.
        const env: NodeJS.ProcessEnv = {
          ...baseEnv,
          RANK: String(rank),
          WORLD_SIZE: String(nodes * nGpus),
          LOCAL_RANK: String(local),
          LOCAL_WORLD_SIZE: String(nGpus),
          GROUP_RANK: String(nodeRank),
          GROUP_WORLD_SIZE: String(nodes),
          MASTER_ADDR: masterAddr,
          MASTER_PORT: String(masterPort),
          // NVLink SHARP (NVLS) multicast needs fabric-manager support that shared machines often
          // lack; a user's own setting wins.
          NCCL_NVLS_ENABLE: baseEnv.NCCL_NVLS_ENABLE ?? "0",
          // The workers share the machine's cores (as torchrun's do): more threads than cores only
          // spin. A user's own setting wins.
          OMP_NUM_THREADS: baseEnv.OMP_NUM_THREADS ?? String(Math.max(1, Math.floor(os.availableParallelism() / nGpus))),
        };
        if (isolate) env.CUDA_VISIBLE_DEVICES = devices[local];
        const main = rank === 0 && inheritMain;
        // detached: a process group of its own, so that a terminal's Ctrl-C reaches the worker
        // once (forwarded from here) rather than twice.
        const child = spawn(process.execPath, args, {
          env,
          detached: true,
          stdio: ["ignore", main ? "inherit" : "pipe", main ? "inherit" : "pipe"],
        });
        children.set(rank, child);
        running.add(rank);
        if (!main) {
          const prefix = `[rank ${rank}] `;
          if (o.output === "main" && rank !== 0) child.stdout!.resume();
          else forwardLines(child.stdout!, stdout, prefix);
          forwardLines(child.stderr!, stderr, prefix);
        }
        const finish = (code: number | null, signal: NodeJS.Signals | null) => {
          if (!running.delete(rank)) return;
          if (code !== 0 || signal) anyFailed = true;
          if ((code !== 0 || signal) && failure === null && signalled === null) {
            const exitCode = signal ? 128 + (os.constants.signals[signal] ?? 1) : (code ?? 1);
            failure = new LaunchError(
              `rank ${rank} ${describeExit(code, signal)}${running.size > 0 ? "; stopped the other ranks" : ""}`,
              rank,
              exitCode,
            );
            stopOthers();
          }
          if (running.size === 0) resolve();
        };
        // "close" waits for the worker's output to be flushed through the pipes.
        child.on("close", finish);
        child.on("error", (e) => {
          if (failure === null) {
            failure = new LaunchError(`rank ${rank} could not start: ${e.message}`, rank, 1);
            stopOthers();
          }
          running.delete(rank);
          if (running.size === 0) resolve();
        });
      }
    });
  } finally {
    process.off("SIGINT", onSigint);
    process.off("SIGTERM", onSigterm);
    process.off("exit", onExit);
    if (killTimer) clearTimeout(killTimer);
  }
  if (failure) throw failure;
  const stoppedBy = signalled as NodeJS.Signals | null;
  if (stoppedBy && anyFailed) throw new LaunchError(`stopped by ${stoppedBy}`, null, 128 + (os.constants.signals[stoppedBy] ?? 2));
}
