// Memory scopes and accounting, seeds, threads, and CUDA devices.
import { buildInfo } from "./dtype.js";
import type { CudaDevice, CudaMemory, LiveTensors } from "./native-api.js";
import { native } from "./native.js";
import { type Disposable, collect, keep, runScoped } from "./scope.js";
import { Tensor, _wrap as wrap } from "./tensor.js";

export { keep };
export { tuneHostAllocator } from "./native.js";
export type { CudaDevice, CudaMemory, LiveTensors };

const isTensor = (v: unknown): v is Disposable => v instanceof Tensor;

/** Runs fn and frees every tensor it made except those in its result. Scopes nest. */
export const tidy = <R>(fn: () => R): R => runScoped(fn, isTensor);

/** Frees every tensor found in value (a tensor, or arrays/objects of them). */
export function dispose(value: unknown): void {
  for (const t of collect(value, isTensor)) t.dispose();
}

/** Tensors alive in this process: handles holding memory, and their bytes (shared storage once). */
export const memory = (): LiveTensors => native().liveTensors();

/** Seeds the CPU and every CUDA generator, as torch.manual_seed. */
export const manualSeed = (seed: number): void => native().manualSeed(seed);
export const getNumThreads = (): number => native().getNumThreads();
export const setNumThreads = (n: number): void => native().setNumThreads(n);
/** A generator's state (a uint8 tensor): the CPU's, or GPU cudaDevice's. */
export const getRngState = (cudaDevice?: number): Tensor => wrap(native().getRngState(cudaDevice ?? null));
export const setRngState = (state: Tensor, cudaDevice?: number): void => native().setRngState(state.handle, cudaDevice ?? null);

export const cuda = {
  /** The index of a CUDA device string: "cuda:1" → 1, "cuda" → 0. */
  index: (device: string): number => Number(device.split(":")[1] ?? 0),
  isAvailable: (): boolean => buildInfo().cudaAvailable,
  devices: (): CudaDevice[] => native().devices(),
  deviceCount: (): number => native().devices().length,
  manualSeed: (seed: number): void => native().cudaManualSeed(seed),
  memory: (device?: number): CudaMemory => native().cudaMemory(device),
  resetPeakMemory: (device?: number): void => native().cudaResetPeak(device),
  emptyCache: (): void => native().cudaEmptyCache(),
  synchronize: (): void => native().cudaSynchronize(),
  /** Caps this process's allocations on a device to a share of its memory (0 < fraction ≤ 1). */
  setMemoryFraction: (fraction: number, device?: number): void => native().cudaSetMemoryFraction(fraction, device),
};

/**
 * Runs fn under libtorch's profiler (as torch.profiler) and writes what it saw to `trace` as Chrome
 * trace JSON: every op, with input shapes, on every thread, and with `cuda` the GPU's kernels and
 * copies. For finding where a step's time goes; it slows the ops it records.
 */
export function profile<R>(trace: string, o: { cuda: boolean }, fn: () => R): R {
  native().profileStart(o.cuda);
  let result: R;
  try {
    result = fn();
  } catch (e) {
    try {
      native().profileStop(trace);
    } catch {} // fn's error is the one to report
    throw e;
  }
  native().profileStop(trace);
  return result;
}
