// Statistics for comparing arms over seeds: paired differences with t and bootstrap intervals,
// t and sign-flip permutation tests, effect size, Holm's adjustment, proportion intervals,
// McNemar's exact test, and curve summaries. Pure functions on number lists.
export { bootstrapMeanCi, DEFAULT_BOOTSTRAP, type BootstrapOptions } from "./bootstrap.js";
export { DEFAULT_CONFIDENCE } from "./confidence.js";
export { type CurvePoint, normalizedAuc, stepsToTarget } from "./curves.js";
export { mean, quantileSorted, sampleSd } from "./descriptive.js";
export {
  betaQuantile,
  binomialHalfCdf,
  normalCdf,
  normalPdf,
  normalQuantile,
  studentTCdf,
  studentTPdf,
  studentTQuantile,
  studentTTwoSidedTail,
} from "./distributions.js";
export { holm } from "./holm.js";
export { type Summary, summarize } from "./summary.js";
export { type PairedComparison, type PairedOptions, pairedComparison, type SeedValues } from "./paired.js";
export {
  clopperPearsonInterval,
  DEFAULT_PROPORTION_CI,
  type McNemarResult,
  mcnemarExact,
  type ProportionCiMethod,
  type ProportionCiOptions,
  proportionCi,
  wilsonInterval,
} from "./proportion.js";
export { DEFAULT_SIGN_FLIP, SIGN_FLIP_EXACT_MAX_N, type SignFlipOptions, type SignFlipResult, signFlipTest } from "./sign-flip.js";
