// What this installation runs on: versions, build flags, CPU threads, CUDA devices
// (`svdlora info` prints it; report.html records it).
import os from "node:os";
import { packageVersion } from "../version.js";
import { buildRecord, recordedThreads } from "./build-record.js";
import { buildInfo } from "./dtype.js";
import { addonLoaded, native } from "./native.js";

/**
 * What this installation runs on. Asks the addon (loading libtorch) unless the build's record
 * answers it all: the addon is not loaded yet, the record describes it, its libtorch has no CUDA
 * (devices need the addon), and the record tells libtorch's thread count here (recordedThreads).
 * `fromAddon` asks the addon whatever the record says.
 */
export function systemInfo({ fromAddon = false } = {}) {
  const record = fromAddon || addonLoaded() ? undefined : buildRecord();
  const threads = record && !record.torch.cuda ? recordedThreads(record) : undefined;
  const b = record && threads !== undefined ? { ...record.addon.buildInfo, cudaAvailable: false } : buildInfo();
  return {
    svdlora: packageVersion(),
    node: process.version,
    libtorch: b.torchVersion,
    build: { cuda: b.builtWithCuda, cxx11Abi: b.cxx11Abi, mkl: b.mkl, lapack: b.lapack },
    cpu: { model: os.cpus()[0]?.model ?? "unknown", cores: os.cpus().length, torchThreads: threads ?? native().getNumThreads() },
    cuda: { available: b.cudaAvailable, devices: b.builtWithCuda && b.cudaAvailable ? native().devices() : [] },
  };
}

export type SystemInfo = ReturnType<typeof systemInfo>;
