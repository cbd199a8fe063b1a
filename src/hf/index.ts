// Hugging Face interoperability: safetensors, model config, hub cache, PEFT adapters; and the one
// file format of svdlora's own, the synthesized teacher (factored ΔW in safetensors).
export * from "./safetensors.js";
export { SafetensorsCheckpoint, INDEX_FILE, SINGLE_FILE } from "./checkpoint.js";
export { type SafetensorsHeader, toSafetensorsDType, fromSafetensorsDType } from "./safetensors-header.js";
export * from "./config.js";
export * from "./hub.js";
export * from "./peft.js";
export * from "./synthesized-delta.js";
