// The values of an experiment file (`svdlora run --config`), checked one by one so that a wrong
// type or range is one clear line naming the file and the setting, before any step starts.
// (Unknown settings and unreadable files are readExperimentFile's job.)
import type { ExperimentConfig } from "./experiment.js";

type Check = (v: unknown) => string | null; // null: fine; else what was expected

const show = (v: unknown) => (v === undefined ? "nothing" : JSON.stringify(v));
const isInt = (v: unknown): v is number => typeof v === "number" && Number.isSafeInteger(v);
const isNum = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v);

const positiveInt: Check = (v) => (isInt(v) && v >= 1 ? null : "an integer ≥ 1");
const nonNegativeInt: Check = (v) => (isInt(v) && v >= 0 ? null : "an integer ≥ 0");
const int: Check = (v) => (isInt(v) ? null : "an integer");
const positive: Check = (v) => (isNum(v) && v > 0 ? null : "a number > 0");
const nonNegative: Check = (v) => (isNum(v) && v >= 0 ? null : "a number ≥ 0");
const fraction: Check = (v) => (isNum(v) && v >= 0 && v < 1 ? null : "a number in [0, 1)");
const text: Check = (v) => (typeof v === "string" && v.trim() !== "" ? null : "a non-empty string");
const flag: Check = (v) => (typeof v === "boolean" ? null : "true or false");
const orNull =
  (c: Check): Check =>
  (v) =>
    v === null ? null : c(v) && `${c(v)} or null`;
const oneOf =
  (choices: string[]): Check =>
  (v) =>
    typeof v === "string" && choices.includes(v) ? null : `one of ${choices.join(", ")}`;
const device: Check = (v) => (typeof v === "string" && /^(cpu|cuda(:\d+)?)$/.test(v) ? null : "cpu, cuda or cuda:N");
const arms: Check = (v) =>
  Array.isArray(v) && v.every((a) => a === "pissa" || a === "gaussian") ? null : 'a list of "pissa" and "gaussian" (or [])';
const targets: Check = (v) =>
  v === "all-linear" || (Array.isArray(v) && v.length > 0 && v.every((t) => typeof t === "string" && t !== ""))
    ? null
    : 'a list of module names like [q_proj, v_proj], or "all-linear"';

const CHECKS: Record<Exclude<keyof ExperimentConfig, "lora">, Check> = {
  baseModel: text,
  trainData: text,
  evalData: orNull(text),
  outputDir: text,
  epochs: positiveInt,
  batchSize: positiveInt,
  learningRate: positive,
  gradientAccumulationSteps: positiveInt,
  device,
  extraArms: arms,
  seeds: positiveInt,
  seed: int,
  targetRank: positiveInt,
  noiseScale: nonNegative,
  decay: nonNegative,
  factorSplit: oneOf(["seed", "balanced"]),
  accuracySamples: nonNegativeInt,
  evalLimit: orNull(positiveInt),
  fullFinetune: flag,
  quiet: flag,
};
const LORA_CHECKS: Record<keyof ExperimentConfig["lora"], Check> = { rank: positiveInt, alpha: positive, dropout: fraction, targets };

/** Throws `<source>: <setting> must be …, got …` for the first bad value; returns the settings as given. */
export function checkExperimentSettings(settings: Record<string, unknown>, source: string): Partial<ExperimentConfig> {
  const fail = (key: string, expected: string, v: unknown): never => {
    throw new Error(`${source}: ${key} must be ${expected}, got ${show(v)}`);
  };
  for (const [key, v] of Object.entries(settings)) {
    if (key === "lora") {
      if (typeof v !== "object" || v === null || Array.isArray(v)) fail("lora", "a mapping with rank, alpha, dropout, targets", v);
      for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
        const check = LORA_CHECKS[k as keyof typeof LORA_CHECKS];
        if (!check) throw new Error(`${source}: unknown setting lora.${k} (known: ${Object.keys(LORA_CHECKS).join(", ")})`);
        const expected = check(x);
        if (expected) fail(`lora.${k}`, expected, x);
      }
      continue;
    }
    const expected = CHECKS[key as keyof typeof CHECKS]?.(v);
    if (expected) fail(key, expected, v);
  }
  return settings as Partial<ExperimentConfig>;
}
