// Data types by their PyTorch names; the addon takes libtorch's ScalarType enum values.
import { native } from "./native.js";

export type DType = "float32" | "float16" | "bfloat16" | "float64" | "int64" | "int32" | "uint8" | "bool";

export interface BuildInfo {
  torchVersion: string;
  builtWithCuda: boolean;
  cxx11Abi: boolean;
  cudaAvailable: boolean;
  mkl: boolean;
  lapack: boolean;
  parallelInfo: string;
  dtypes: Record<DType, number>;
}

export const buildInfo: BuildInfo = native.buildInfo();

const codes = buildInfo.dtypes;
const names = new Map<number, DType>(Object.entries(codes).map(([name, code]) => [code, name as DType]));

export function dtypeCode(dtype: DType): number {
  const code = codes[dtype];
  if (code === undefined) throw new Error(`unknown dtype '${dtype}': use one of ${Object.keys(codes).join(", ")}`);
  return code;
}

export function dtypeName(code: number): DType {
  const name = names.get(code);
  if (!name) throw new Error(`tensor has a dtype svdlora does not handle (ScalarType ${code})`);
  return name;
}

export const isFloating = (d: DType) => d === "float32" || d === "float16" || d === "bfloat16" || d === "float64";

export const elementSize: Record<DType, number> = {
  float32: 4,
  float16: 2,
  bfloat16: 2,
  float64: 8,
  int64: 8,
  int32: 4,
  uint8: 1,
  bool: 1,
};
