// Files that ship with svdlora: the embedded default model and data set.
import { fileURLToPath } from "node:url";

/** The package root (this file is compiled to dist/src/paths.js). */
export const PACKAGE_ROOT = fileURLToPath(new URL("../../", import.meta.url));
export const EMBEDDED_MODEL = `${PACKAGE_ROOT}models/tiny-prob`;
export const EMBEDDED_TRAIN = `${PACKAGE_ROOT}data/probability/train.json`;
export const EMBEDDED_EVAL = `${PACKAGE_ROOT}data/probability/eval.json`;
export const EMBEDDED_ACCURACY = `${PACKAGE_ROOT}data/probability/accuracy.json`;
