// Data-parallel communication between processes over libtorch's c10d (native/distributed.cc):
// Gloo for CPU tensors, NCCL for CUDA tensors, a TCPStore (or a shared file) for the rendezvous.
// One process group per process, like torch.distributed's default group:
//
//   const env = fromEnv();                       // RANK, WORLD_SIZE, … as torchrun sets them
//   if (env) distributed.init({ backend: "nccl", ...env });
//   …backward…; distributed.allReduce(grads, "avg");
//   distributed.barrier(); distributed.destroy();
//
// Every wait has the init timeout: a rank that dies or stops calling collectives gives the others
// a one-line Error ("distributed: allReduce on rank 0: rank 1 did not respond within 30 s …")
// instead of a hang. After such an error the group is unusable; destroy() and exit.
import { tensor } from "./create.js";
import { native } from "./native.js";
import type { Tensor } from "./tensor.js";

export type Backend = "gloo" | "nccl";
export type ReduceOp = "sum" | "avg" | "max" | "min";

/** What a launcher (torchrun, launchWorkers) tells each process, read by fromEnv(). */
export interface DistEnv {
  rank: number;
  worldSize: number;
  localRank: number;
  localWorldSize: number;
  masterAddr: string;
  masterPort: number;
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

interface NativeInfo {
  initialized: boolean;
  backend?: Backend;
  rank?: number;
  worldSize?: number;
  device?: string;
  timeoutMs?: number;
  bucketBytes?: number;
  broken?: string;
}

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
}

function cudaDeviceFor(o: InitOptions): number | null {
  if (o.backend !== "nccl") return null;
  if (o.device !== undefined) return o.device;
  const count = (native.devices() as unknown[]).length;
  return count <= 1 ? 0 : (o.localRank ?? 0);
}

// The group's facts, read from the addon after init/destroy (rank, size and device do not change
// in between; `broken` is read fresh where it matters).
let known: NativeInfo = { initialized: false };
const refresh = () => (known = native.distInfo());
const info = (): NativeInfo => known;
const handles = (tensors: Tensor[]) => {
  if (!Array.isArray(tensors)) fail("expected an array of tensors");
  return tensors.map((t) => t.handle);
};

export const distributed = {
  /** The backends this build has: ["gloo"] on a CPU build with the Gloo headers, ["nccl"] or both with CUDA. */
  backends: (): Backend[] => native.distBackends(),

  /** Joins the process group; returns once every rank has joined (or throws after timeoutMs). */
  init(o: InitOptions): void {
    checkInit(o);
    try {
      native.distInit(
        o.backend,
        o.rank,
        o.worldSize,
        o.storeFile === undefined ? o.masterAddr : null,
        o.storeFile === undefined ? o.masterPort : null,
        o.storeFile ?? null,
        o.timeoutMs ?? DEFAULT_TIMEOUT_MS,
        cudaDeviceFor(o),
        o.bucketBytes ?? DEFAULT_BUCKET_BYTES,
      );
    } finally {
      refresh();
    }
  },

  /** Reduces the tensors across ranks, in place: every rank ends with the sum (mean, max, min).
   * Every rank must pass the same shapes and dtypes in the same order. */
  allReduce(tensors: Tensor[], op: ReduceOp = "sum"): void {
    native.distAllReduce(handles(tensors), op);
  },

  /** All-reduces plain numbers (losses, token counts, a stop flag) in float64. */
  allReduceNumbers(values: number[], op: ReduceOp = "sum"): number[] {
    if (values.length === 0) return [];
    const device = info().device ?? "cpu";
    const cpu = tensor(values, { dtype: "float64" });
    const t = device === "cpu" ? cpu : cpu.to({ device });
    try {
      native.distAllReduce([t.handle], op);
      return Array.from(t.data() as Float64Array);
    } finally {
      if (t !== cpu) t.dispose();
      cpu.dispose();
    }
  },

  /** Copies root's tensors to every other rank, in place. */
  broadcast(tensors: Tensor[], root = 0): void {
    if (!isWhole(root)) fail(`broadcast root must be a rank, got ${root}`);
    native.distBroadcast(handles(tensors), root);
  },

  /** Returns once every rank has called barrier(). */
  barrier(): void {
    native.distBarrier();
  },

  /** Leaves the process group (a no-op when not initialized). Call barrier() first, so that rank 0,
   * which serves the store, does not leave while others still use it. */
  destroy(): void {
    native.distDestroy();
    refresh();
  },

  get isInitialized(): boolean {
    return info().initialized;
  },
  /** This process's rank; 0 when not initialized. */
  get rank(): number {
    return info().rank ?? 0;
  },
  /** The number of processes; 1 when not initialized. */
  get worldSize(): number {
    return info().worldSize ?? 1;
  },
  /** Rank 0 (or no process group): the process that logs, evaluates and saves. */
  get isMain(): boolean {
    return (info().rank ?? 0) === 0;
  },
  get backend(): Backend | null {
    return info().backend ?? null;
  },
  /** Where this process's collectives run: "cpu" (gloo) or "cuda:N" (nccl); "cpu" when not initialized. */
  get device(): string {
    return info().device ?? "cpu";
  },

  fromEnv: (env: NodeJS.ProcessEnv = process.env): DistEnv | null => fromEnv(env),
};

function whole(name: string, value: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const v = value.trim();
  if (!/^\d+$/.test(v)) fail(`${name}=${JSON.stringify(value)} is not a whole number`);
  const n = Number(v);
  if (n < min) fail(`${name}=${n} must be at least ${min}`);
  if (n > max) fail(`${name}=${n} must be at most ${max}`);
  return n;
}

/**
 * The process's place in a multi-process run, from the variables torchrun (and launchWorkers)
 * set: RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT. Null when neither
 * RANK nor WORLD_SIZE is set (a plain single-process run). Throws one line for bad values.
 */
export function fromEnv(env: NodeJS.ProcessEnv = process.env): DistEnv | null {
  const set = (name: string) => env[name] !== undefined && env[name] !== "";
  if (!set("RANK") && !set("WORLD_SIZE")) return null;
  if (!set("RANK")) fail("WORLD_SIZE is set but RANK is not (a launcher sets both)");
  if (!set("WORLD_SIZE")) fail("RANK is set but WORLD_SIZE is not (a launcher sets both)");
  const worldSize = whole("WORLD_SIZE", env.WORLD_SIZE!, 1);
  const rank = whole("RANK", env.RANK!, 0);
  if (rank >= worldSize) fail(`RANK=${rank} is not below WORLD_SIZE=${worldSize}`);
  const localWorldSize = set("LOCAL_WORLD_SIZE") ? whole("LOCAL_WORLD_SIZE", env.LOCAL_WORLD_SIZE!, 1, worldSize) : worldSize;
  const localRank = set("LOCAL_RANK") ? whole("LOCAL_RANK", env.LOCAL_RANK!, 0) : rank % localWorldSize;
  if (localRank >= localWorldSize) fail(`LOCAL_RANK=${localRank} is not below LOCAL_WORLD_SIZE=${localWorldSize}`);
  // One process alone needs no rendezvous address; torch's defaults then.
  const single = worldSize === 1;
  if (!set("MASTER_ADDR") && !single) fail(`MASTER_ADDR is not set (WORLD_SIZE=${worldSize} needs the address of rank 0)`);
  if (!set("MASTER_PORT") && !single) fail(`MASTER_PORT is not set (WORLD_SIZE=${worldSize} needs the port of rank 0's store)`);
  const masterAddr = (env.MASTER_ADDR ?? "127.0.0.1").trim() || "127.0.0.1";
  if (/\s/.test(masterAddr)) fail(`MASTER_ADDR=${JSON.stringify(env.MASTER_ADDR)} is not a host name or address`);
  const masterPort = set("MASTER_PORT") ? whole("MASTER_PORT", env.MASTER_PORT!, 1, 65535) : 29500;
  return { rank, worldSize, localRank, localWorldSize, masterAddr, masterPort };
}
