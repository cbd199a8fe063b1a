// Data-parallel communication between processes over libtorch's c10d (native/distributed.cc):
// Gloo for CPU tensors, NCCL for CUDA tensors, a TCPStore (or a shared file) for the rendezvous.
// One process group per process, like torch.distributed's default group:
//
//   const env = fromEnv();                       // RANK, WORLD_SIZE, … as torchrun sets them
//   if (env) distributed.init({ backend: "nccl", ...env });
//   …backward…; distributed.allReduce(grads, "avg");
//   const pending = distributed.allReduceStart(someGrads);   // or start it early, wait later
//   …more backward…; pending.wait();
//   distributed.barrier(); distributed.destroy();
//
// Every wait has the init timeout: a rank that dies or stops calling collectives gives the others
// a one-line Error ("distributed: allReduce on rank 0: rank 1 did not respond within 30 s …")
// instead of a hang. After such an error the group is unusable; destroy() and exit.
//
// The addon holds the store, the group and the collectives; this module checks every argument
// before it crosses and turns libtorch's failures (DistFailure) into those lines.
import { tensor } from "./create.js";
import { dtypeName, isFloating } from "./dtype.js";
import type { Backend, DistFailure, PendingHandle, ReduceOp } from "./native-api.js";
import { native } from "./native.js";
import type { Tensor } from "./tensor.js";
import { type DistEnv, fromEnv } from "../util/dist-env.js";

export type { Backend, DistEnv, ReduceOp };
export { fromEnv };

/** A started all-reduce (distributed.allReduceStart). */
export interface PendingReduce {
  /** Ends it, once: afterwards its tensors hold the result for any later work. On CUDA the device
   * waits for the collective rather than this thread, until it returns when the collective has
   * completed (a rank that does not take part fails it after the timeout, as allReduce does). */
  wait(): void;
}

export interface InitOptions {
  backend: Backend;
  rank: number;
  worldSize: number;
  /** The TCPStore that rank 0 serves and every rank joins… */
  masterAddr?: string;
  masterPort?: number;
  /** …or a file every rank can reach (instead of masterAddr/masterPort). */
  storeFile?: string;
  /** How long any wait may take: joining, each collective, the barrier. Default 10 minutes. */
  timeoutMs?: number;
  /** CUDA device index (nccl). Default: 0 when this process sees one GPU, else localRank. */
  device?: number;
  localRank?: number;
  localWorldSize?: number;
  /** All-reduce bucket size: tensors are flattened into buckets of at most this many bytes, one
   * collective per bucket (as DDP's bucket_cap_mb). Default 25 MiB. */
  bucketBytes?: number;
}

export const DEFAULT_TIMEOUT_MS = 10 * 60 * 1000;
export const DEFAULT_BUCKET_BYTES = 25 * 1024 * 1024;
const REDUCE_OPS: readonly ReduceOp[] = ["sum", "avg", "max", "min"];
const NOT_BUILT: Record<Backend, string> = {
  gloo:
    "this build has no Gloo backend (its headers were not found when the addon was built: on Debian/Ubuntu, install libgloo-dev and " +
    "rebuild; PyTorch wheels do not ship them)",
  nccl: "this build has no NCCL backend (it needs a CUDA libtorch and nccl.h at build time)",
};

/** The process group this process belongs to. */
interface Group {
  backend: Backend;
  rank: number;
  worldSize: number;
  /** Where collectives run: "cpu" (gloo) or "cuda:N" (nccl). */
  device: string;
  timeoutMs: number;
  /** The store, for messages: "127.0.0.1:29500" or a file path. */
  where: string;
  /** Why the group is unusable, after a failed collective. */
  broken?: string;
}
let group: Group | null = null;

function fail(message: string): never {
  throw new Error(`distributed: ${message}`);
}

const isWhole = (v: unknown): v is number => typeof v === "number" && Number.isInteger(v);

function checkInit(o: InitOptions): void {
  if (o === null || typeof o !== "object") fail("init needs an options object");
  if (o.backend !== "gloo" && o.backend !== "nccl") fail(`unknown backend ${JSON.stringify(o.backend)} (gloo or nccl)`);
  if (!isWhole(o.worldSize) || o.worldSize < 1) fail(`worldSize must be a whole number ≥ 1, got ${o.worldSize}`);
  if (!isWhole(o.rank) || o.rank < 0 || o.rank >= o.worldSize) fail(`rank must be a whole number in 0..${o.worldSize - 1}, got ${o.rank}`);
  if (o.storeFile === undefined) {
    if (typeof o.masterAddr !== "string" || o.masterAddr === "") fail("init needs masterAddr and masterPort, or storeFile");
    if (!isWhole(o.masterPort) || o.masterPort < 1 || o.masterPort > 65535)
      fail(`masterPort must be a whole number in 1..65535, got ${o.masterPort}`);
  } else if (typeof o.storeFile !== "string" || o.storeFile === "") fail("storeFile must be a file path");
  if (o.timeoutMs !== undefined && (!isWhole(o.timeoutMs) || o.timeoutMs <= 0))
    fail(`timeoutMs must be a positive whole number, got ${o.timeoutMs}`);
  if (o.bucketBytes !== undefined && (!isWhole(o.bucketBytes) || o.bucketBytes <= 0))
    fail(`bucketBytes must be a positive whole number, got ${o.bucketBytes}`);
  if (o.device !== undefined && (!isWhole(o.device) || o.device < 0)) fail(`device must be a CUDA device index, got ${o.device}`);
  if (group) fail(`already initialized (rank ${group.rank} of ${group.worldSize}); call destroy() first`);
  if (!native().distBackends().includes(o.backend)) fail(NOT_BUILT[o.backend]);
}

function cudaDeviceFor(o: InitOptions): number | null {
  if (o.backend !== "nccl") return null;
  if (o.device !== undefined) return o.device;
  return native().devices().length <= 1 ? 0 : (o.localRank ?? 0);
}

// ---- libtorch's failures, said in one line ----

const isDistFailure = (e: unknown): e is DistFailure => e instanceof Error && "stage" in e;
const seconds = (ms: number) => `${ms / 1000} s`;
const peer = (g: Group) => (g.worldSize === 2 ? `rank ${1 - g.rank}` : "another rank");
const looksLikeTimeout = (raw: string) => /timed out|timeout/i.test(raw);
const looksLikePeerGone = (raw: string) =>
  /closed by peer|reset by peer|broken pipe|connection refused|remote process exited|ncclRemoteError|connection closed/i.test(raw);

/** The first line of a libtorch/Gloo message, without Gloo's "[file.cc:123] " prefix. */
function firstLine(raw: string): string {
  const line = raw.split("\n")[0];
  const close = line.startsWith("[") ? line.indexOf("] ") : -1;
  return (close >= 0 && close < 300 ? line.slice(close + 2) : line).trimEnd();
}

/** SVDLORA_DEBUG=1 keeps libtorch's own words after ours (still one line). */
function withRaw(message: string, raw: string): Error {
  return new Error(process.env.SVDLORA_DEBUG ? `${message} [libtorch: ${raw.replaceAll("\n", " ")}]` : message);
}

function explainInit(g: Group, stage: DistFailure["stage"], raw: string): string {
  const who = `distributed: init on rank ${g.rank}`;
  const within = `within ${seconds(g.timeoutMs)}`;
  if (stage === "store") {
    if (/address already in use/i.test(raw)) return `${who}: cannot listen on ${g.where}, the port is in use (pick another MASTER_PORT)`;
    // "Timed out after 3 seconds waiting for clients. 1/2 clients joined."
    if (/clients joined/i.test(raw)) {
      const joined = /(\S+) clients joined/i.exec(raw)?.[1];
      return (
        `${who}: not every rank reached the store at ${g.where} ${within}${joined ? ` (${joined} joined)` : ""}: ` +
        `did all ${g.worldSize} ranks start, with the same WORLD_SIZE, MASTER_ADDR and MASTER_PORT?`
      );
    }
    if (looksLikeTimeout(raw) || /connect/i.test(raw))
      return `${who}: cannot reach the store at ${g.where} ${within} (is rank 0 running, with the same MASTER_ADDR and MASTER_PORT?)`;
    return `${who}: cannot open the store at ${g.where}: ${firstLine(raw)}`;
  }
  if (looksLikePeerGone(raw)) return `${who}: ${peer(g)} closed its connection while connecting (did a process die?)`;
  if (looksLikeTimeout(raw))
    return (
      `${who}: ${g.worldSize === 2 ? `${peer(g)} did not join` : "not every rank joined"} the ${g.backend} group ${within} ` +
      "(did every rank start, with the same WORLD_SIZE, MASTER_ADDR, MASTER_PORT and backend?)"
    );
  return `${who}: cannot create the ${g.backend} process group: ${firstLine(raw)}`;
}

function explainCollective(g: Group, op: string, raw: string): string {
  const who = `${op} on rank ${g.rank}`;
  if (looksLikePeerGone(raw)) return `${who}: ${peer(g)} closed its connection (did a process die?)`;
  if (looksLikeTimeout(raw))
    return `${who}: ${peer(g)} did not respond within ${seconds(g.timeoutMs)} (did a process die, or stop calling ${op}?)`;
  return `${who} failed: ${firstLine(raw)}`;
}

// ---- collectives ----

function active(op: string): Group {
  if (!group) fail(`${op}: not initialized (call distributed.init() first)`);
  if (group.broken)
    fail(`${op}: the process group is unusable after an earlier failure (${group.broken}); call destroy() and stop this process`);
  return group;
}

/** The handles of a collective's tensors, which must be on the backend's kind of device (and
 * floating-point for 'avg'). */
function handlesFor(g: Group, op: string, tensors: Tensor[], floating: boolean) {
  if (!Array.isArray(tensors)) fail(`${op}: expected an array of tensors`);
  const kind = g.device === "cpu" ? "cpu" : "cuda";
  tensors.forEach((t, i) => {
    const [, dtype, device] = native().meta(t.handle); // one crossing per tensor
    if (device.split(":")[0] !== kind)
      fail(`${op}: tensor ${i} is on ${device}, but the ${g.backend} backend works on ${kind === "cpu" ? "CPU" : "CUDA"} tensors`);
    if (floating && !isFloating(dtypeName(dtype))) fail(`${op}: tensor ${i} is not floating-point, which 'avg' needs`);
  });
  return tensors.map((t) => t.handle);
}

/** Runs a collective; a failure in libtorch leaves the group unusable and becomes one line. */
function collective(g: Group, op: string, run: () => void): void {
  try {
    run();
  } catch (e) {
    if (!isDistFailure(e)) throw e;
    const message = explainCollective(g, op, e.message);
    g.broken = message;
    throw withRaw(`distributed: ${message}`, e.message);
  }
}

export const distributed = {
  /** The backends this build has: ["gloo"] on a CPU build with the Gloo headers, ["nccl"] or both with CUDA. */
  backends: (): Backend[] => native().distBackends(),

  /** Joins the process group; returns once every rank has joined (or throws after timeoutMs). */
  init(o: InitOptions): void {
    checkInit(o);
    const cudaDevice = cudaDeviceFor(o);
    const g: Group = {
      backend: o.backend,
      rank: o.rank,
      worldSize: o.worldSize,
      device: cudaDevice === null ? "cpu" : `cuda:${cudaDevice}`,
      timeoutMs: o.timeoutMs ?? DEFAULT_TIMEOUT_MS,
      where: o.storeFile ?? `${o.masterAddr}:${o.masterPort}`,
    };
    let joined: number;
    try {
      joined = native().distInit(
        g.backend,
        g.rank,
        g.worldSize,
        o.storeFile === undefined ? o.masterAddr! : null,
        o.storeFile === undefined ? o.masterPort! : null,
        o.storeFile ?? null,
        g.timeoutMs,
        cudaDevice,
        o.bucketBytes ?? DEFAULT_BUCKET_BYTES,
      );
    } catch (e) {
      if (isDistFailure(e) && e.stage !== "collective") throw withRaw(explainInit(g, e.stage, e.message), e.message);
      throw e;
    }
    if (joined !== g.worldSize) {
      native().distDestroy();
      fail(`init on rank ${g.rank}: ${joined} processes joined, but WORLD_SIZE is ${g.worldSize}`);
    }
    group = g;
  },

  /** Reduces the tensors across ranks, in place: every rank ends with the sum (mean, max, min).
   * Every rank must pass the same shapes and dtypes in the same order. */
  allReduce(tensors: Tensor[], op: ReduceOp = "sum"): void {
    distributed.allReduceStart(tensors, op).wait();
  },

  /** allReduce launched without waiting (one collective per bucket), so that it runs while this
   * process goes on, e.g. with the rest of backward; the tensors must not change until wait().
   * Every rank must start the same all-reduces in the same order. */
  allReduceStart(tensors: Tensor[], op: ReduceOp = "sum"): PendingReduce {
    const g = active("allReduce");
    if (!REDUCE_OPS.includes(op)) fail(`allReduce: unknown reduce op ${JSON.stringify(op)} (sum, avg, max or min)`);
    const handles = handlesFor(g, "allReduce", tensors, op === "avg");
    let pending: PendingHandle | null = null;
    collective(g, "allReduce", () => {
      pending = native().distAllReduceStart(handles, op);
    });
    return {
      wait() {
        const started = pending;
        if (!started) fail("allReduce: this all-reduce was already waited for");
        pending = null;
        collective(active("allReduce"), "allReduce", () => native().distWait(started));
      },
    };
  },

  /** All-reduces plain numbers (losses, token counts, a stop flag) in float64. */
  allReduceNumbers(values: number[], op: ReduceOp = "sum"): number[] {
    if (values.length === 0) return [];
    const device = group?.device ?? "cpu";
    const cpu = tensor(values, { dtype: "float64" });
    const t = device === "cpu" ? cpu : cpu.to({ device });
    try {
      distributed.allReduce([t], op);
      return Array.from(t.data() as Float64Array);
    } finally {
      if (t !== cpu) t.dispose();
      cpu.dispose();
    }
  },

  /** Copies root's tensors to every other rank, in place. */
  broadcast(tensors: Tensor[], root = 0): void {
    const g = active("broadcast");
    if (!isWhole(root) || root < 0 || root >= g.worldSize) fail(`broadcast: root ${root} is not in 0..${g.worldSize - 1}`);
    const handles = handlesFor(g, "broadcast", tensors, false);
    collective(g, "broadcast", () => native().distBroadcast(handles, root));
  },

  /** Returns once every rank has called barrier(). */
  barrier(): void {
    const g = active("barrier");
    collective(g, "barrier", () => native().distBarrier());
  },

  /** Leaves the process group (a no-op when not initialized). Call barrier() first, so that rank 0,
   * which serves the store, does not leave while others still use it. */
  destroy(): void {
    if (!group) return;
    group = null;
    native().distDestroy();
  },

  get isInitialized(): boolean {
    return group !== null;
  },
  /** This process's rank; 0 when not initialized. */
  get rank(): number {
    return group?.rank ?? 0;
  },
  /** The number of processes; 1 when not initialized. */
  get worldSize(): number {
    return group?.worldSize ?? 1;
  },
  /** Rank 0 (or no process group): the process that logs, evaluates and saves. */
  get isMain(): boolean {
    return (group?.rank ?? 0) === 0;
  },
  get backend(): Backend | null {
    return group?.backend ?? null;
  },
  /** Where this process's collectives run: "cpu" (gloo) or "cuda:N" (nccl); "cpu" when not initialized. */
  get device(): string {
    return group?.device ?? "cpu";
  },

  fromEnv: (env: NodeJS.ProcessEnv = process.env): DistEnv | null => fromEnv(env),
};
