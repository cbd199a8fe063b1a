// The tensor API over libtorch: `import * as torch from "svdlora/torch"` style.
export { buildInfo, elementSize, isFloating, type DType } from "./dtype.js";
export { Tensor, type Device, type NestedArray, type Scalar, type ToOptions, type TypedArray } from "./tensor.js";
export * from "./create.js";
export * from "./functional.js";
export * from "./autograd.js";
export * from "./runtime.js";
export {
  distributed,
  type Backend as DistBackend,
  type DistEnv,
  type InitOptions as DistInitOptions,
  type ReduceOp,
} from "./distributed.js";
