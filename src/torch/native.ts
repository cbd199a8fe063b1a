// Loads the libtorch addon (build/Release/svdlora.node) on first use, so that importing the torch
// API costs nothing until a call needs libtorch. Everything else in torch/ goes through here.
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { physicalCores } from "../util/cpus.js";
import type { NativeAddon } from "./native-api.js";

export type { Handle } from "./native-api.js";

let addon: NativeAddon | undefined;
let tuneWhenLoaded = false;

/** The addon, loaded by the first call. */
export function native(): NativeAddon {
  return addon ?? load();
}

/** Whether this process has loaded the addon (and libtorch with it). */
export const addonLoaded = (): boolean => addon !== undefined;

/** The addon's file: SVDLORA_ADDON, or the one the build made. */
export const addonPath = (): string =>
  process.env.SVDLORA_ADDON ?? fileURLToPath(new URL("../../../build/Release/svdlora.node", import.meta.url));

function load(): NativeAddon {
  const path = addonPath();
  if (!existsSync(path)) throw new Error(`svdlora: the native addon is not built (${path} is missing): run \`npm run setup\``);
  const loaded: NativeAddon = createRequire(import.meta.url)(path);
  if (tuneWhenLoaded) loaded.tuneHostAllocator();
  loaded.setNumThreads(torchThreads());
  addon = loaded;
  return loaded;
}

/**
 * The intra-op threads libtorch gets when the addon loads (setNumThreads changes them later):
 * MKL_NUM_THREADS, else OMP_NUM_THREADS, where set to a positive number (as libtorch reads them),
 * else one per physical core this process may run on (physicalCores). svdlora sets them itself
 * rather than leaving libtorch's default, which depends on its version and build (1.13 takes half
 * the logical CPUs of an x86-64 machine, 2.x asks MKL or the CPU topology): so the count is known
 * without loading libtorch (`svdlora info`), and the same on every libtorch.
 */
export function torchThreads(env: NodeJS.ProcessEnv = process.env): number {
  for (const name of ["MKL_NUM_THREADS", "OMP_NUM_THREADS"]) {
    const n = Number.parseInt(env[name] ?? "", 10);
    if (n > 0) return n;
  }
  return physicalCores();
}

/**
 * Makes glibc's malloc keep freed memory in the heap for reuse, for the whole process. By default
 * glibc serves blocks above its mmap threshold (at most 32 MiB) with fresh mmap()s that the kernel
 * zero-fills page by page on every use, so CPU activations of a few tens of MiB cost more in page
 * faults than in arithmetic (eval at batch 16 of the tiny model: 48 s instead of 11 s). The price
 * is that memory freed by this process stays with it. The `svdlora` command calls this at start-up
 * (unless SVDLORA_SYSTEM_MALLOC=1); library users opt in. Applies when the addon loads if it is not loaded yet (this does not load
 * libtorch); a no-op where the C library is not glibc.
 */
export function tuneHostAllocator(): void {
  if (addon) addon.tuneHostAllocator();
  else tuneWhenLoaded = true;
}
