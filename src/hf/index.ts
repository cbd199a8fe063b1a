// Hugging Face interoperability: safetensors, model config, hub cache, PEFT adapters.
export * from "./safetensors.js";
export { SafetensorsCheckpoint, INDEX_FILE, SINGLE_FILE } from "./checkpoint.js";
export { type SafetensorsHeader, toSafetensorsDType, fromSafetensorsDType } from "./safetensors-header.js";
export * from "./config.js";
export * from "./hub.js";
export * from "./peft.js";
