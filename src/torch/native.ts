// Loads the libtorch addon (build/Release/svdlora.node). Everything else in torch/ goes through here.
import { createRequire } from "node:module";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

/** An opaque handle to one libtorch tensor, owned by a `Tensor`. */
export type Handle = { readonly __handle: unique symbol };

// The addon is a flat table of functions; the typed API lives in tensor.ts and friends.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type NativeFn = (...args: any[]) => any;

const addonPath = process.env.SVDLORA_ADDON ?? fileURLToPath(new URL("../../../build/Release/svdlora.node", import.meta.url));

function load(): Record<string, NativeFn> {
  if (!existsSync(addonPath)) {
    throw new Error(`svdlora: the native addon is not built (${addonPath} is missing): run \`npm run setup\``);
  }
  return createRequire(import.meta.url)(addonPath) as Record<string, NativeFn>;
}

export const native = load();
