// A proportion's confidence interval (accuracy over generated problems) and McNemar's exact test
// for two arms scored on the same items.
import { checkConfidence, DEFAULT_CONFIDENCE } from "./confidence.js";
import { betaQuantile, binomialHalfCdf, normalQuantile } from "./distributions.js";

export type ProportionCiMethod = "wilson" | "clopper-pearson";
/** Wilson: close to nominal coverage with an interval that stays inside [0, 1]; Clopper–Pearson is conservative. */
export const DEFAULT_PROPORTION_CI: ProportionCiMethod = "wilson";

export interface ProportionCiOptions {
  confidence?: number;
  method?: ProportionCiMethod;
}

/** A confidence interval for the success probability behind k successes in n trials (default: Wilson, 95 %). */
export function proportionCi(k: number, n: number, o: ProportionCiOptions = {}): [number, number] {
  const confidence = o.confidence ?? DEFAULT_CONFIDENCE;
  const method = o.method ?? DEFAULT_PROPORTION_CI;
  if (method === "wilson") return wilsonInterval(k, n, confidence);
  if (method === "clopper-pearson") return clopperPearsonInterval(k, n, confidence);
  throw new RangeError(`proportionCi: unknown method ${method}; use "wilson" or "clopper-pearson"`);
}

/**
 * Wilson score interval: the proportions whose score test does not reject, i.e.
 * (2k + z²)/(2(n + z²)) ± z/(2(n + z²)) · √(4k(n − k)/n + z²) with z the (1 + c)/2 normal quantile;
 * exactly 0 below for k = 0 and 1 above for k = n.
 */
export function wilsonInterval(k: number, n: number, confidence = DEFAULT_CONFIDENCE): [number, number] {
  checkCounts("wilsonInterval", k, n);
  checkConfidence("wilsonInterval", confidence);
  const z = normalQuantile(0.5 + 0.5 * confidence);
  const z2 = z * z;
  const denom = 2 * (n + z2);
  const center = (2 * k + z2) / denom;
  const delta = (z / denom) * Math.sqrt((4 * k * (n - k)) / n + z2);
  return [k === 0 ? 0 : center - delta, k === n ? 1 : center + delta];
}

/**
 * Clopper–Pearson "exact" interval from the binomial tails: the α/2 quantile of Beta(k, n − k + 1)
 * and the 1 − α/2 quantile of Beta(k + 1, n − k), α = 1 − c; 0 below when k = 0, 1 above when k = n.
 */
export function clopperPearsonInterval(k: number, n: number, confidence = DEFAULT_CONFIDENCE): [number, number] {
  checkCounts("clopperPearsonInterval", k, n);
  checkConfidence("clopperPearsonInterval", confidence);
  const alpha = 1 - confidence;
  return [k === 0 ? 0 : betaQuantile(alpha / 2, k, n - k + 1), k === n ? 1 : betaQuantile(1 - alpha / 2, k + 1, n - k)];
}

function checkCounts(what: string, k: number, n: number): void {
  if (!Number.isInteger(n) || n < 1 || !Number.isInteger(k) || k < 0 || k > n)
    throw new RangeError(`${what}: need whole numbers 0 <= successes <= trials and trials >= 1, got ${k} of ${n}`);
}

export interface McNemarResult {
  /** Items the baseline got right and the arm wrong. */
  b: number;
  /** Items the baseline got wrong and the arm right. */
  c: number;
  /** Exact two-sided p: min(1, 2 P(X ≤ min(b, c))), X ~ Binomial(b + c, ½); 1 when b + c = 0. */
  p: number;
}

/**
 * McNemar's exact test of two arms scored on the same items (per-item correctness, index i the
 * same item on both sides): only the discordant items count, and under the null hypothesis each
 * is equally likely to favour either arm. The same p as scipy.stats.binomtest(b, b + c, 0.5) and
 * statsmodels' mcnemar(exact=True).
 */
export function mcnemarExact(baseline: readonly boolean[], arm: readonly boolean[]): McNemarResult {
  if (baseline.length !== arm.length)
    throw new RangeError(`mcnemarExact: baseline scored ${baseline.length} items and arm ${arm.length}; score both on the same items`);
  let b = 0;
  let c = 0;
  baseline.forEach((right, i) => {
    if (right && !arm[i]) b++;
    else if (!right && arm[i]) c++;
  });
  return { b, c, p: Math.min(1, 2 * binomialHalfCdf(Math.min(b, c), b + c)) };
}
