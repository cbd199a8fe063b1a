// One group's values summarized: how many, their mean and sample standard deviation, and a t
// interval for the mean (an arm's values over seeds, at one learning rate).
import { checkConfidence, DEFAULT_CONFIDENCE } from "./confidence.js";
import { mean, sampleSd } from "./descriptive.js";
import { studentTQuantile } from "./distributions.js";

export interface Summary {
  n: number;
  /** null when n = 0. */
  mean: number | null;
  /** Sample standard deviation (n − 1); null when n < 2. */
  sd: number | null;
  /** mean ± t_{(1+c)/2, n−1} · sd / √n; null when n < 2. */
  ci: [number, number] | null;
}

/** Summarizes the non-null values. */
export function summarize(values: readonly (number | null)[], confidence = DEFAULT_CONFIDENCE): Summary {
  checkConfidence("summarize", confidence);
  const xs = values.filter((v): v is number => v !== null && Number.isFinite(v));
  const n = xs.length;
  if (n === 0) return { n, mean: null, sd: null, ci: null };
  const m = mean(xs);
  if (n < 2) return { n, mean: m, sd: null, ci: null };
  const sd = sampleSd(xs);
  const half = (studentTQuantile((1 + confidence) / 2, n - 1) * sd) / Math.sqrt(n);
  return { n, mean: m, sd, ci: [m - half, m + half] };
}
