// svdlora as a library: `import { train, torch } from "svdlora"`.
export * as torch from "./torch/index.js";
export { systemInfo } from "./torch/system-info.js";
export { loadModelConfig, type ModelConfig } from "./hf/config.js";
export { loadAdapter, saveAdapter } from "./hf/peft.js";
export { loadTokenizer } from "./hf/tokenizer.js";
export { loadDataset } from "./data/dataset.js";
export { CausalLM } from "./model/qwen2.js";
export { loadCausalLM, randomCausalLM } from "./model/loader.js";
export { saveCausalLM } from "./model/save.js";
export { addLora, loadLora, mergeLora, type LoraSettings } from "./model/lora.js";
export { train, TRAIN_DEFAULTS, type TrainConfig, type TrainResult } from "./train/trainer.js";
export { evaluateAccuracy, evaluateLoss } from "./train/evaluate.js";
export * as lowrank from "./lowrank/index.js";
export { compareRuns, writeComparison } from "./pipeline/compare.js";
export { EXPERIMENT_DEFAULTS, runExperiment, type ExperimentConfig } from "./pipeline/experiment.js";
