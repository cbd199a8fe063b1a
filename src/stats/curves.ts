// Summaries of a metric curve over training steps, e.g. a loss curve.

export interface CurvePoint {
  step: number;
  value: number;
}

function checkCurve(what: string, points: readonly CurvePoint[]): void {
  points.forEach(({ step, value }, i) => {
    if (!Number.isFinite(step) || !Number.isFinite(value))
      throw new RangeError(`${what}: point ${i} (step ${step}, value ${value}) is not finite`);
    if (i > 0 && !(step > points[i - 1]!.step))
      throw new RangeError(`${what}: steps must increase, but point ${i} has step ${step} after ${points[i - 1]!.step}`);
  });
}

/**
 * The area under the curve by the trapezoid rule, divided by the step span (last − first), so it
 * reads as the curve's mean level over the steps it covers: a constant curve gives its constant.
 * One point gives its value; no points give null.
 */
export function normalizedAuc(points: readonly CurvePoint[]): number | null {
  checkCurve("normalizedAuc", points);
  if (points.length === 0) return null;
  if (points.length === 1) return points[0]!.value;
  let area = 0;
  for (let i = 1; i < points.length; i++) {
    const a = points[i - 1]!;
    const b = points[i]!;
    area += ((b.step - a.step) * (a.value + b.value)) / 2;
  }
  return area / (points.at(-1)!.step - points[0]!.step);
}

/**
 * The step at which the curve first comes down to `target`, by linear interpolation between the
 * last point above the target and the first point at or below it (the first point's step if it is
 * already there); null if no point reaches the target.
 */
export function stepsToTarget(points: readonly CurvePoint[], target: number): number | null {
  checkCurve("stepsToTarget", points);
  if (!Number.isFinite(target)) throw new RangeError(`stepsToTarget: target must be a finite number, got ${target}`);
  const i = points.findIndex((p) => p.value <= target);
  if (i === -1) return null;
  const at = points[i]!;
  if (i === 0) return at.step;
  const above = points[i - 1]!;
  return above.step + ((above.value - target) / (above.value - at.value)) * (at.step - above.step);
}
