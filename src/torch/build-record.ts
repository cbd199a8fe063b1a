// What the native build recorded (build/libtorch.json, written by scripts/build-native.mjs): the
// libtorch it was configured against, and what the addon it made reported of itself once built.
// Read instead of loading libtorch (about half a second) where that is enough: `svdlora info` on
// a build without CUDA.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { fileDigest } from "../util/digest.js";
import type { BuildInfo } from "./native-api.js";
import { addonPath } from "./native.js";

/** The addon's buildInfo() less what depends on the machine it runs on. */
export type RecordedBuildInfo = Omit<BuildInfo, "cudaAvailable" | "parallelInfo">;

export interface BuildRecord {
  /** The libtorch the build was configured against; cuda: whether it has CUDA libraries (the addon links them). */
  torch: { version: string; cuda: boolean };
  /** The addon the build made: its sha256, and its buildInfo(). */
  addon: { sha256: string; buildInfo: RecordedBuildInfo };
}

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
  if (!record.torch || !sha256) return undefined;
  try {
    return fileDigest(addonPath()) === sha256 ? (record as BuildRecord) : undefined;
  } catch {
    return undefined; // no addon: loading it says so
  }
}
