// The model architectures the benches build with random weights (bench/configs/*.json), read once here.
import fs from "node:fs";

/** The Qwen2.5-Math-7B architecture's config.json. */
export const MATH_7B_CONFIG = new URL("../../bench/configs/qwen2.5-math-7b.json", import.meta.url).pathname;

/** A config.json's raw keys, as Hugging Face writes them. */
export const readConfigFile = (file: string): Record<string, unknown> => JSON.parse(fs.readFileSync(file, "utf8"));
