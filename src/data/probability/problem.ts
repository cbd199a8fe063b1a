// What a generated problem is, and the small text/arithmetic helpers every family shares.
import { Rational } from "./rational.js";
import type { Random } from "./random.js";

export const FAMILIES = ["coins", "dice", "cards", "urns", "binomial", "at-least-one", "conditional", "expectation"] as const;
export type FamilyName = (typeof FAMILIES)[number];

export type ParamValue = number | string | readonly number[] | readonly string[];
/** The numbers behind a question, enough to recompute its answer by brute force. */
export type ProblemParams = Readonly<Record<string, ParamValue>>;

export interface ProbabilityProblem {
  family: FamilyName;
  /** The template, e.g. "coins.exact-heads"; with params it identifies the problem. */
  kind: string;
  params: ProblemParams;
  question: string;
  /** Short tutor steps with the arithmetic shown; the boxed answer line is added by solutionText. */
  steps: string[];
  answer: Rational;
  /** What the answer is, for the closing sentence: "probability", "expected sum", … */
  asks: string;
}

/** One template: draws its parameters from rng and writes the problem. */
export type Template = (rng: Random) => ProbabilityProblem;

export interface Family {
  name: FamilyName;
  /** Template kinds this family can produce, each with a generator. */
  templates: Readonly<Record<string, Template>>;
}

/** The full worked solution: the steps, then the answer in \boxed{…}. */
export function solutionText(p: ProbabilityProblem): string {
  return [...p.steps, `Therefore, the ${p.asks} is \\boxed{${p.answer.toString()}}.`].join("\n");
}

/** A key that is equal for two problems exactly when they ask the same thing the same way. */
export function problemKey(p: Pick<ProbabilityProblem, "kind" | "params">): string {
  return `${p.kind} ${JSON.stringify(p.params)}`;
}

// ---- arithmetic ----

export function factorial(n: number): bigint {
  let f = 1n;
  for (let i = 2; i <= n; i++) f *= BigInt(i);
  return f;
}

export function choose(n: number, k: number): bigint {
  if (k < 0 || k > n) return 0n;
  k = Math.min(k, n - k);
  let c = 1n;
  for (let i = 1; i <= k; i++) c = (c * BigInt(n - k + i)) / BigInt(i);
  return c;
}

/** "10/32 = 5/16" when the fraction reduces, else just "5/16" (integers print bare). */
export function showFraction(num: bigint | number, den: bigint | number): string {
  const raw = `${num}/${den}`;
  const reduced = new Rational(num, den).toString();
  return raw === reduced ? raw : `${raw} = ${reduced}`;
}

/** "5/6 × 5/6 × 5/6" style product of a repeated factor. */
export function repeated(factor: string, times: number): string {
  return Array.from({ length: times }, () => factor).join(" × ");
}

// ---- words ----

const WORDS = [
  "zero",
  "one",
  "two",
  "three",
  "four",
  "five",
  "six",
  "seven",
  "eight",
  "nine",
  "ten",
  "eleven",
  "twelve",
  "thirteen",
  "fourteen",
  "fifteen",
  "sixteen",
  "seventeen",
  "eighteen",
  "nineteen",
  "twenty",
];

/** "three" for 3; numerals above twenty. */
export function word(n: number): string {
  return WORDS[n] ?? `${n}`;
}

const ORDINALS = ["zeroth", "first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth"];
export function ordinal(n: number): string {
  return ORDINALS[n] ?? `${n}th`;
}

/** "1 head", "3 heads". */
export function count(n: number, singular: string, plural = `${singular}s`): string {
  return `${n} ${n === 1 ? singular : plural}`;
}

export function capitalize(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

/** "a, b and c" (or "a, b or c"). */
export function listing(items: readonly string[], conjunction = "and"): string {
  if (items.length <= 1) return items.join("");
  return `${items.slice(0, -1).join(", ")} ${conjunction} ${items[items.length - 1]}`;
}

/** Probabilities with small denominators, for story problems. */
export const NICE_PROBABILITIES: readonly Rational[] = [
  [1, 2],
  [1, 3],
  [2, 3],
  [1, 4],
  [3, 4],
  [1, 5],
  [2, 5],
  [3, 5],
  [4, 5],
  [1, 6],
  [5, 6],
  [1, 10],
  [3, 10],
  [7, 10],
  [9, 10],
].map(([a, b]) => new Rational(a!, b!));

/** [lo, lo+1, …, hi]. */
export function range(lo: number, hi: number): number[] {
  return Array.from({ length: Math.max(0, hi - lo + 1) }, (_, i) => lo + i);
}

/** "(2/3)^4", "5^3", "1/6" (power 1), "1" (power 0), for showing arithmetic. */
export function powerText(base: string, e: number): string {
  if (e === 0) return "1";
  if (e === 1) return base;
  return base.includes("/") ? `(${base})^${e}` : `${base}^${e}`;
}
