// What the native build recorded (build/libtorch.json, written by scripts/build-native.mjs): the
// libtorch it was configured against, what the addon it made reported of itself once built, and
// libtorch's default thread count on the machine it was built on. Read instead of loading libtorch
// (about half a second) where that is enough: `svdlora info` on a build without CUDA.
import { readFileSync } from "node:fs";
import os from "node:os";
import { fileURLToPath } from "node:url";
import { fileDigest } from "../util/digest.js";
import type { BuildInfo } from "./native-api.js";
import { addonPath } from "./native.js";

/** The addon's buildInfo() less what depends on the machine it runs on. */
export type RecordedBuildInfo = Omit<BuildInfo, "cudaAvailable" | "parallelInfo">;

export interface BuildRecord {
  /** The libtorch the build was configured against; cuda: whether it has CUDA libraries (the addon links them). */
  torch: { version: string; cuda: boolean };
  /** The addon the build made: its sha256, its buildInfo(), and libtorch's default intra-op threads on the machine it was built on. */
  addon: { sha256: string; buildInfo: RecordedBuildInfo; defaultThreads: { count: number; machine: Machine } };
}

/** What libtorch's default thread count depends on: the CPUs, those this process may run on, their
 * model. As machine() in scripts/build-native.mjs, which records it. */
export const machine = () => ({ cpus: os.cpus().length, available: os.availableParallelism(), model: os.cpus()[0]?.model ?? "" });
type Machine = ReturnType<typeof machine>;

const RECORD = fileURLToPath(new URL("../../../build/libtorch.json", import.meta.url));

/**
 * The build's record, where it describes the addon this process would load (addonPath()); else
 * undefined: no record, one from before the build recorded the addon, or one of another file (the
 * addon was rebuilt by other means, or SVDLORA_ADDON names another).
 */
export function buildRecord(file = RECORD): BuildRecord | undefined {
  let record: Partial<BuildRecord>;
  try {
    record = JSON.parse(readFileSync(file, "utf8"));
  } catch {
    return undefined;
  }
  const sha256 = record.addon?.sha256;
  if (!record.torch || !sha256 || !record.addon?.defaultThreads) return undefined;
  try {
    return fileDigest(addonPath()) === sha256 ? (record as BuildRecord) : undefined;
  } catch {
    return undefined; // no addon: loading it says so
  }
}

/**
 * libtorch's intra-op threads in this process, where the record can tell without loading it:
 * MKL_NUM_THREADS, else OMP_NUM_THREADS, where set to a positive number (as libtorch reads them,
 * a leading number), else its default count where this is the machine the build saw it on.
 * undefined otherwise: ask libtorch.
 */
export function recordedThreads(record: BuildRecord, env: NodeJS.ProcessEnv = process.env): number | undefined {
  for (const name of ["MKL_NUM_THREADS", "OMP_NUM_THREADS"]) {
    const n = Number.parseInt(env[name] ?? "", 10);
    if (n > 0) return n;
  }
  const { count, machine: seenOn } = record.addon.defaultThreads;
  return JSON.stringify(seenOn) === JSON.stringify(machine()) ? count : undefined;
}
