// Flag value parsers for commander: one clear message for a bad value.
import { InvalidArgumentError } from "commander";
import { cuda } from "../torch/index.js";

export function int(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n)) throw new InvalidArgumentError(`expected an integer, got "${value}"`);
  return n;
}

export function positiveInt(value: string): number {
  const n = int(value);
  if (n < 1) throw new InvalidArgumentError(`expected an integer ≥ 1, got "${value}"`);
  return n;
}

export function nonNegativeInt(value: string): number {
  const n = int(value);
  if (n < 0) throw new InvalidArgumentError(`expected an integer ≥ 0, got "${value}"`);
  return n;
}

export function positiveNumber(value: string): number {
  const n = Number(value);
  if (!(n > 0) || !Number.isFinite(n)) throw new InvalidArgumentError(`expected a number > 0, got "${value}"`);
  return n;
}

export function fraction(value: string): number {
  const n = Number(value);
  if (!(n >= 0 && n < 1)) throw new InvalidArgumentError(`expected a number in [0, 1), got "${value}"`);
  return n;
}

export function nonNegative(value: string): number {
  const n = Number(value);
  if (!(n >= 0) || !Number.isFinite(n)) throw new InvalidArgumentError(`expected a number ≥ 0, got "${value}"`);
  return n;
}

export function oneOf<T extends string>(choices: readonly T[]) {
  return (value: string): T => {
    if (!choices.includes(value as T)) throw new InvalidArgumentError(`expected one of ${choices.join(", ")}, got "${value}"`);
    return value as T;
  };
}

/** A comma-separated subset of choices ("a,b"); "none" is the empty list. */
export function listOf<T extends string>(choices: readonly T[]) {
  return (value: string): T[] => {
    if (value === "none") return [];
    const list = value
      .split(",")
      .map((s) => s.trim())
      .filter(Boolean);
    const bad = list.find((s) => !choices.includes(s as T));
    if (list.length === 0 || bad !== undefined)
      throw new InvalidArgumentError(`expected none or a comma-separated list of ${choices.join(", ")}, got "${value}"`);
    return [...new Set(list)] as T[];
  };
}

/** "q_proj,v_proj" → ["q_proj", "v_proj"]; "all-linear" stays as it is. */
export function targets(value: string): string[] | "all-linear" {
  if (value === "all-linear") return value;
  const list = value
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  if (list.length === 0) throw new InvalidArgumentError(`expected module names like q_proj,v_proj or all-linear, got "${value}"`);
  return list;
}

export function device(value: string): string {
  if (!/^(cpu|cuda(:\d+)?)$/.test(value)) throw new InvalidArgumentError(`expected cpu, cuda or cuda:N, got "${value}"`);
  const problem = deviceProblem(value);
  if (problem) throw new InvalidArgumentError(problem);
  return value;
}

/** Why a well-formed device cannot be used here (no CUDA, no such GPU), or null. */
export function deviceProblem(value: string): string | null {
  if (value === "cpu") return null;
  const count = cuda.isAvailable() ? cuda.deviceCount() : 0;
  if (count === 0) return `no CUDA device is available (libtorch without CUDA, or no GPU): use --device cpu`;
  const index = value === "cuda" ? 0 : Number(value.slice("cuda:".length));
  if (index >= count) return `no such GPU (${count} CUDA device${count > 1 ? "s" : ""}: cuda:0${count > 1 ? `-cuda:${count - 1}` : ""})`;
  return null;
}
