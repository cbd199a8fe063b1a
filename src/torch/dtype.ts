// Data types by their PyTorch names; the addon takes libtorch's ScalarType enum values.
import type { BuildInfo, DType, DTypeCode } from "./native-api.js";
import { native } from "./native.js";

export type { BuildInfo, DType };

let info: BuildInfo | undefined;
let names: Map<DTypeCode, DType> | undefined;

/** The libtorch this addon was built against and what it offers (read once, on first call). */
export const buildInfo = (): BuildInfo => (info ??= native().buildInfo());

export function dtypeCode(dtype: DType): DTypeCode {
  const codes = buildInfo().dtypes;
  const code = codes[dtype];
  if (code === undefined) throw new Error(`unknown dtype '${dtype}': use one of ${Object.keys(codes).join(", ")}`);
  return code;
}

export function dtypeName(code: DTypeCode): DType {
  names ??= new Map(Object.entries(buildInfo().dtypes).map(([name, c]) => [c, name as DType]));
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
