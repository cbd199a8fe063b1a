// The tensor API over libtorch: `import * as torch from "svdlora/torch"` style. Importing it loads
// nothing native: libtorch loads with the first call that needs it. Programs that compute on the
// CPU may call tuneHostAllocator() first (the svdlora command does).
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
  type PendingReduce,
  type ReduceOp,
} from "./distributed.js";
