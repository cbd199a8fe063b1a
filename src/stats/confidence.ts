// The confidence level every interval uses unless told otherwise, and its check.

export const DEFAULT_CONFIDENCE = 0.95;

/** Throws one clear line unless 0 < confidence < 1. */
export function checkConfidence(what: string, confidence: number): void {
  if (!(confidence > 0 && confidence < 1))
    throw new RangeError(`${what}: confidence must be a level in (0, 1) such as 0.95, got ${confidence}`);
}
