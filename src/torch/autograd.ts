// Autograd is libtorch's; these are the switches and the multi-root backward.
import { native } from "./native.js";
import type { Tensor } from "./tensor.js";

/** Backward from several roots at once (torch.autograd.backward); grads default to ones for scalars. */
export function backward(roots: Tensor[], grads?: Tensor[] | null, opts: { retainGraph?: boolean } = {}): void {
  native().backward(
    roots.map((t) => t.handle),
    grads ? grads.map((t) => t.handle) : null,
    opts.retainGraph ?? false,
  );
}

export const isGradEnabled = (): boolean => native().isGradEnabled();
/** Turns gradient recording on or off; returns the previous setting. */
export const setGradEnabled = (on: boolean): boolean => native().setGradEnabled(on);

function withGrad<R>(on: boolean, fn: () => R): R {
  const prev = setGradEnabled(on);
  try {
    return fn();
  } finally {
    setGradEnabled(prev);
  }
}
/** Runs fn without recording gradients (torch.no_grad). */
export const noGrad = <R>(fn: () => R): R => withGrad(false, fn);
/** Runs fn with gradient recording on (torch.enable_grad). */
export const enableGrad = <R>(fn: () => R): R => withGrad(true, fn);
