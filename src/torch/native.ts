// Loads the libtorch addon (build/Release/svdlora.node) on first use, so that importing the torch
// API costs nothing until a call needs libtorch. Everything else in torch/ goes through here.
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
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
  addon = loaded;
  return loaded;
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
