// Low-rank analysis of weight deltas, as pure maths on tensors (no files): SVDs (dense, factored,
// randomized), truncation metrics, teacher synthesis (step 2a), SVD-init LoRA factors (step 2b) of
// docs/experiment.md, and the LoRA inits (inits/). Reading and writing files is hf/'s and pipeline/'s job.
export * from "./svd.js";
export * from "./metrics.js";
export * from "./synthesis.js";
export * from "./factors.js";
export { GaussianSource, deriveSeed } from "./random.js";
export * as inits from "./inits/index.js";
