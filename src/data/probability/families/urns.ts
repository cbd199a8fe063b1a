// Balls in an urn: two draws with or without replacement, hypergeometric counts, repeated draws.
import { r } from "../rational.js";
import { capitalize, choose, type Family, listing, powerText, type ProbabilityProblem, showFraction, word } from "../problem.js";
import type { Random } from "../random.js";

const COLORS = ["red", "blue", "green", "white", "black", "yellow"] as const;

export function describeUrn(colors: readonly string[], counts: readonly number[]): string {
  return `An urn contains ${listing(colors.map((c, i) => `${counts[i]} ${c}`))} balls.`;
}

function drawUrn(rng: Random, nColors: number, lo: number, hi: number): { colors: string[]; counts: number[]; total: number } {
  const colors = rng.sample(COLORS, nColors),
    counts = colors.map(() => rng.int(lo, hi));
  return { colors, counts, total: counts.reduce((a, b) => a + b, 0) };
}

function problem(
  kind: string,
  params: ProbabilityProblem["params"],
  question: string,
  steps: string[],
  num: bigint | number,
  den: bigint | number,
): ProbabilityProblem {
  return { family: "urns", kind, params, question, steps, answer: r(num, den), asks: "probability" };
}

function twoDraws(rng: Random): ProbabilityProblem {
  const { colors, counts, total: n } = drawUrn(rng, rng.int(2, 3), 2, 7);
  const replace = rng.int(0, 1),
    d = replace ? 0 : 1;
  const event = rng.pick(["both", "exactly-one", "same-color", "different-colors", "first-then"] as const);
  const i = rng.int(0, colors.length - 1),
    c = counts[i]!,
    color = colors[i]!;
  const den = n * (n - d);
  const how = replace
    ? "Two balls are drawn at random with replacement (the first ball is put back before the second draw)."
    : "Two balls are drawn at random, one after the other, without replacement.";
  const second = (k: number, same: boolean) => (same ? k - d : k); // count for the 2nd draw
  const pair = (a: number, b: number, same: boolean) => `${a}/${n} × ${second(b, same)}/${n - d} = ${a * second(b, same)}/${den}`;
  const setup = replace
    ? `The urn has ${n} balls on both draws.`
    : `The urn has ${n} balls for the first draw and ${n - 1} for the second.`;
  let params: ProbabilityProblem["params"], what: string, steps: string[], num: number;
  switch (event) {
    case "both":
      num = c * (c - d);
      [params, what] = [{ colors, counts, replace, event, i }, `both balls are ${color}`];
      steps = [
        setup,
        `P(both ${color}) = P(first ${color}) × P(second ${color}${replace ? "" : ` | first ${color}`}) = ${pair(c, c, true)}.`,
      ];
      break;
    case "exactly-one":
      num = 2 * c * (n - c);
      [params, what] = [{ colors, counts, replace, event, i }, `exactly one of the two balls is ${color}`];
      steps = [
        setup,
        `There are ${n - c} balls that are not ${color}.`,
        `First ${color}, then not ${color}: ${pair(c, n - c, false)}. First not ${color}, then ${color}: ${pair(n - c, c, false)}.`,
        `Add the two orders: ${c * (n - c)}/${den} + ${c * (n - c)}/${den} = ${num}/${den}.`,
      ];
      break;
    case "first-then": {
      const j = rng.pick(colors.map((_, k) => k).filter((k) => k !== i));
      num = c * counts[j]!;
      [params, what] = [{ colors, counts, replace, event, i, j }, `the first ball is ${color} and the second ball is ${colors[j]}`];
      steps = [
        setup,
        `P = P(first ${color}) × P(second ${colors[j]}${replace ? "" : ` | first ${color}`}) = ${pair(c, counts[j]!, false)}.`,
      ];
      break;
    }
    case "same-color":
    case "different-colors": {
      const terms = counts.map((k) => k * (k - d));
      const same = terms.reduce((a, b) => a + b, 0);
      steps = [
        setup,
        `Same color means ${listing(
          colors.map((col) => `both ${col}`),
          "or",
        )}.`,
        ...colors.map((col, k) => `P(both ${col}) = ${pair(counts[k]!, counts[k]!, true)}.`),
        `P(same color) = ${terms.map((t) => `${t}/${den}`).join(" + ")} = ${same}/${den}.`,
      ];
      if (event === "same-color") {
        num = same;
        [params, what] = [{ colors, counts, replace, event }, "both balls have the same color"];
      } else {
        num = den - same;
        [params, what] = [{ colors, counts, replace, event }, "the two balls have different colors"];
        steps.push(`Different colors is the complement: P = 1 − ${same}/${den} = ${showFraction(num, den)}.`);
      }
      break;
    }
  }
  if (event !== "different-colors") steps!.push(`P = ${showFraction(num!, den)}.`);
  return problem(
    "urns.two-draws",
    params!,
    `${describeUrn(colors, counts)} ${how} What is the probability that ${what!}?`,
    steps!,
    num!,
    den,
  );
}

function hypergeometric(rng: Random): ProbabilityProblem {
  const { colors, counts, total: n } = drawUrn(rng, 2, 2, 8);
  const [a, b] = counts as [number, number];
  const k = rng.int(2, Math.min(4, n - 1));
  const j = rng.int(Math.max(0, k - b), Math.min(k, a));
  const good = choose(a, j) * choose(b, k - j),
    all = choose(n, k);
  const what =
    j === k
      ? `all ${word(k)} are ${colors[0]}`
      : j === 0
        ? `none of them is ${colors[0]}`
        : `exactly ${word(j)} of them ${j === 1 ? "is" : "are"} ${colors[0]}`;
  return problem(
    "urns.hypergeometric",
    { colors, counts, k, j },
    `${describeUrn(colors, counts)} ${capitalize(word(k))} balls are drawn at random without replacement. What is the probability that ${what}?`,
    [
      `All sets of ${k} balls out of ${n} are equally likely: C(${n}, ${k}) = ${all} sets.`,
      `A set with exactly ${j} ${colors[0]} takes ${j} of the ${a} ${colors[0]} balls and ${k - j} of the ${b} ${colors[1]} balls: C(${a}, ${j}) × C(${b}, ${k - j}) = ${choose(a, j)} × ${choose(b, k - j)} = ${good}.`,
      `P = ${showFraction(good, all)}.`,
    ],
    good,
    all,
  );
}

function repeatedDraws(rng: Random): ProbabilityProblem {
  const { colors, counts, total: n } = drawUrn(rng, 2, 1, 7);
  const [a, b] = counts as [number, number];
  const k = rng.int(3, 4),
    j = rng.int(0, k);
  const ways = choose(k, j),
    num = ways * BigInt(a) ** BigInt(j) * BigInt(b) ** BigInt(k - j),
    den = BigInt(n) ** BigInt(k);
  const p = r(a, n).toString(),
    q = r(b, n).toString();
  return problem(
    "urns.repeated-draws",
    { colors, counts, k, j },
    `${describeUrn(colors, counts)} A ball is drawn at random, its color is noted, and it is put back. This is done ${word(k)} times. What is the probability that exactly ${word(j)} of the ${word(k)} balls drawn ${j === 1 ? "is" : "are"} ${colors[0]}?`,
    [
      `Because each ball is put back, the draws are independent, and each is ${colors[0]} with probability ${a}/${n}${p !== `${a}/${n}` ? ` = ${p}` : ""} and ${colors[1]} with probability ${b}/${n}${q !== `${b}/${n}` ? ` = ${q}` : ""}.`,
      `The number of ${colors[0]} balls is binomial: P(exactly ${j}) = C(${k}, ${j}) × ${powerText(`${a}/${n}`, j)} × ${powerText(`${b}/${n}`, k - j)} = ${ways} × ${a ** j}/${n ** j} × ${b ** (k - j)}/${n ** (k - j)} = ${showFraction(num, den)}.`,
    ],
    num,
    den,
  );
}

export const urns: Family = {
  name: "urns",
  templates: { "urns.two-draws": twoDraws, "urns.hypergeometric": hypergeometric, "urns.repeated-draws": repeatedDraws },
};
