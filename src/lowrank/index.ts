// Low-rank analysis of weight deltas: SVDs (dense, factored, randomized), truncation metrics,
// teacher synthesis (step 2a), SVD-init LoRA factors (step 2b), and the LoRA inits (inits/).
export * from "./svd.js";
export * from "./metrics.js";
export * from "./synthesis.js";
export * from "./delta-file.js";
export * from "./factors.js";
export { GaussianSource, deriveSeed } from "./random.js";
export * as inits from "./inits/index.js";
