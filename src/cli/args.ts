// Checks of command-line values that need the machine, not just the text.
import { cuda } from "../torch/index.js";

/** Why a well-formed device cannot be used here (no CUDA, no such GPU), or null. */
export function deviceProblem(value: string): string | null {
  if (value === "cpu") return null;
  const count = cuda.isAvailable() ? cuda.deviceCount() : 0;
  if (count === 0) return "no CUDA device is available (libtorch without CUDA, or no GPU): use --device cpu";
  const index = value === "cuda" ? 0 : Number(value.slice("cuda:".length));
  if (index >= count) return `no such GPU (${count} CUDA device${count > 1 ? "s" : ""}: cuda:0${count > 1 ? `-cuda:${count - 1}` : ""})`;
  return null;
}
