// The projection names of a Qwen2 / Llama decoder layer: what LoRA targets are spelled with. A
// module of its own, light enough for the settings schemas (and so the command line) to import.

/** The linear projections of a Qwen2 / Llama decoder layer, by their Hugging Face module names: what "all-linear" means. */
export const PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"] as const;

/** Target module names, with "all-linear" spelled out. */
export const targetNames = (targets: readonly string[] | "all-linear"): string[] =>
  targets === "all-linear" ? [...PROJECTIONS] : [...targets];
