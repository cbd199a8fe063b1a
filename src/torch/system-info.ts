// What this installation runs on: versions, build flags, CPU threads, CUDA devices
// (`svdlora info` prints it; report.html records it).
import os from "node:os";
import { packageVersion } from "../version.js";
import { buildInfo } from "./dtype.js";
import { cuda, getNumThreads } from "./runtime.js";

export function systemInfo() {
  const b = buildInfo();
  return {
    svdlora: packageVersion(),
    node: process.version,
    libtorch: b.torchVersion,
    build: { cuda: b.builtWithCuda, cxx11Abi: b.cxx11Abi, mkl: b.mkl, lapack: b.lapack },
    cpu: { model: os.cpus()[0]?.model ?? "unknown", cores: os.cpus().length, torchThreads: getNumThreads() },
    cuda: { available: b.cudaAvailable, devices: b.builtWithCuda && b.cudaAvailable ? cuda.devices() : [] },
  };
}

export type SystemInfo = ReturnType<typeof systemInfo>;
