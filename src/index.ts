// svdlora as a library: `import { torch } from "svdlora"`.
export * as torch from "./torch/index.js";
export { systemInfo } from "./cli/info.js";
