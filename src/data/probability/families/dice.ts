// Two (or more) fair dice: sums, doubles, at least one six, max/min, sum properties.
import { r } from "../rational.js";
import { capitalize, type Family, type ProbabilityProblem, range, repeated, showFraction, word } from "../problem.js";
import type { Random } from "../random.js";

const SIDES = [4, 6, 6, 6, 8, 10, 12];

export function oneDie(sides: number): string {
  return sides === 6 ? "a fair six-sided die" : `a fair ${word(sides)}-sided die (faces 1 to ${sides})`;
}
export function twoDice(sides: number): string {
  return sides === 6 ? "two fair six-sided dice" : `two fair ${word(sides)}-sided dice (faces 1 to ${sides})`;
}
/** Ordered pairs of two d-sided dice with the given sum. */
export function waysToSum(sides: number, s: number): number {
  return Math.max(0, Math.min(s - 1, 2 * sides + 1 - s));
}

function problem(
  kind: string,
  params: ProbabilityProblem["params"],
  question: string,
  steps: string[],
  num: bigint | number,
  den: bigint | number,
): ProbabilityProblem {
  return { family: "dice", kind, params, question, steps, answer: r(num, den), asks: "probability" };
}

const pairSpace = (d: number) =>
  `Write each outcome as an ordered pair (first die, second die); there are ${d} × ${d} = ${d * d} equally likely pairs.`;

function sumEquals(rng: Random): ProbabilityProblem {
  const sides = rng.pick(SIDES),
    s = rng.int(2, 2 * sides);
  const pairs = range(1, sides)
    .filter((a) => s - a >= 1 && s - a <= sides)
    .map((a) => `(${a}, ${s - a})`);
  return problem(
    "dice.sum-equals",
    { sides, s },
    `${capitalize(twoDice(sides))} are rolled. What is the probability that the sum of the two numbers is ${s}?`,
    [
      pairSpace(sides),
      `The pairs with sum ${s} are ${pairs.join(", ")}: ${pairs.length} pair${pairs.length === 1 ? "" : "s"}.`,
      `P = ${showFraction(pairs.length, sides * sides)}.`,
    ],
    pairs.length,
    sides * sides,
  );
}

function sumRange(rng: Random): ProbabilityProblem {
  const sides = rng.pick([6, 6, 8]),
    t = rng.int(3, 2 * sides - 1),
    mode = rng.pick(["at-least", "at-most"] as const);
  const total = sides * sides;
  const wanted = mode === "at-least" ? range(t, 2 * sides) : range(2, t);
  const other = mode === "at-least" ? range(2, t - 1) : range(t + 1, 2 * sides);
  const useComplement = other.length < wanted.length;
  const listed = useComplement ? other : wanted;
  const listedWays = listed.reduce((acc, s) => acc + waysToSum(sides, s), 0);
  const ways = useComplement ? total - listedWays : listedWays;
  const phrase = mode === "at-least" ? "at least" : "at most";
  const countLine = `${listed.map((s) => `sum ${s}: ${waysToSum(sides, s)}`).join(", ")}; in total ${listedWays} pair${listedWays === 1 ? "" : "s"}.`;
  const steps = [pairSpace(sides), `The number of pairs with sum s is min(s − 1, ${2 * sides + 1} − s).`];
  if (useComplement) {
    const cphrase = mode === "at-least" ? `at most ${t - 1}` : `at least ${t + 1}`;
    steps.push(
      `It is quicker to count the complement, a sum of ${cphrase}: ${countLine}`,
      `So ${total} − ${listedWays} = ${ways} pairs have a sum of ${phrase} ${t}.`,
    );
  } else {
    steps.push(`Count the pairs with a sum of ${phrase} ${t}: ${countLine}`);
  }
  steps.push(`P = ${showFraction(ways, total)}.`);
  return problem(
    "dice.sum-range",
    { sides, t, mode },
    `${capitalize(twoDice(sides))} are rolled. What is the probability that the sum is ${phrase} ${t}?`,
    steps,
    ways,
    total,
  );
}

function doubles(rng: Random): ProbabilityProblem {
  const sides = rng.pick(SIDES),
    variant = rng.pick(["doubles", "not-doubles", "doubles-above"] as const);
  const total = sides * sides;
  if (variant === "doubles-above") {
    const t = rng.int(2, 2 * sides - 2);
    const faces = range(1, sides).filter((f) => 2 * f > t);
    return problem(
      "dice.doubles",
      { sides, variant, t },
      `${capitalize(twoDice(sides))} are rolled. What is the probability of rolling doubles (both dice showing the same number) with a sum greater than ${t}?`,
      [
        pairSpace(sides),
        `Doubles (f, f) have sum 2f, and 2f > ${t} holds for f = ${faces.join(", ")}: ${faces.length} pair${faces.length === 1 ? "" : "s"}.`,
        `P = ${showFraction(faces.length, total)}.`,
      ],
      faces.length,
      total,
    );
  }
  const steps = [
    pairSpace(sides),
    `There are ${sides} doubles: (1, 1), (2, 2), …, (${sides}, ${sides}), so P(doubles) = ${showFraction(sides, total)}.`,
  ];
  if (variant === "not-doubles") steps.push(`Not rolling doubles is the complement: P = 1 − 1/${sides} = ${r(sides - 1, sides)}.`);
  const question =
    variant === "doubles"
      ? `${capitalize(twoDice(sides))} are rolled. What is the probability that both dice show the same number?`
      : `${capitalize(twoDice(sides))} are rolled. What is the probability that the two dice show different numbers?`;
  return problem("dice.doubles", { sides, variant }, question, steps, variant === "doubles" ? 1 : sides - 1, sides);
}

function atLeastOneFace(rng: Random): ProbabilityProblem {
  const n = rng.int(2, 5),
    face = rng.int(1, 6);
  const miss = 5n ** BigInt(n),
    total = 6n ** BigInt(n);
  return problem(
    "dice.at-least-one-face",
    { n, face },
    `A fair six-sided die is rolled ${word(n)} times. What is the probability of rolling at least one ${face}?`,
    [
      `Use the complement: "at least one ${face}" fails only when no roll is a ${face}.`,
      `On one roll, P(not ${face}) = 5/6, and the rolls are independent.`,
      `P(no ${face} in ${n} rolls) = ${repeated("5/6", n)} = ${miss}/${total}.`,
      `P(at least one ${face}) = 1 − ${miss}/${total} = ${showFraction(total - miss, total)}.`,
    ],
    total - miss,
    total,
  );
}

function maxMin(rng: Random): ProbabilityProblem {
  const sides = rng.pick([4, 6, 6, 8]),
    mode = rng.pick(["max-equals", "max-at-most", "min-equals", "min-at-least"] as const);
  const total = sides * sides;
  const intro = `${capitalize(twoDice(sides))} are rolled.`;
  if (mode === "max-at-most" || mode === "max-equals") {
    const m = mode === "max-at-most" ? rng.int(1, sides - 1) : rng.int(1, sides);
    const le = (x: number) => x * x;
    if (mode === "max-at-most")
      return problem(
        "dice.max-min",
        { sides, mode, m },
        `${intro} What is the probability that the larger of the two numbers is at most ${m}?`,
        [
          pairSpace(sides),
          `The larger number is at most ${m} exactly when both dice show at most ${m}: ${m} × ${m} = ${le(m)} pairs.`,
          `P = ${showFraction(le(m), total)}.`,
        ],
        le(m),
        total,
      );
    const ways = le(m) - le(m - 1);
    return problem(
      "dice.max-min",
      { sides, mode, m },
      `${intro} What is the probability that the larger of the two numbers (either one, if they are equal) is exactly ${m}?`,
      [
        pairSpace(sides),
        `Pairs with both dice at most ${m}: ${m}² = ${le(m)}; pairs with both at most ${m - 1}: ${m - 1}² = ${le(m - 1)}.`,
        `The maximum is exactly ${m} for the difference: ${le(m)} − ${le(m - 1)} = ${ways} pairs.`,
        `P = ${showFraction(ways, total)}.`,
      ],
      ways,
      total,
    );
  }
  const m = mode === "min-at-least" ? rng.int(2, sides) : rng.int(1, sides);
  const ge = (x: number) => (sides - x + 1) ** 2; // pairs with both dice ≥ x
  if (mode === "min-at-least")
    return problem(
      "dice.max-min",
      { sides, mode, m },
      `${intro} What is the probability that the smaller of the two numbers is at least ${m}?`,
      [
        pairSpace(sides),
        `The smaller number is at least ${m} exactly when both dice show ${m} or more; each die has ${sides - m + 1} such faces, giving ${sides - m + 1} × ${sides - m + 1} = ${ge(m)} pairs.`,
        `P = ${showFraction(ge(m), total)}.`,
      ],
      ge(m),
      total,
    );
  const ways = ge(m) - ge(m + 1);
  return problem(
    "dice.max-min",
    { sides, mode, m },
    `${intro} What is the probability that the smaller of the two numbers (either one, if they are equal) is exactly ${m}?`,
    [
      pairSpace(sides),
      `Pairs with both dice at least ${m}: ${sides - m + 1}² = ${ge(m)}; pairs with both at least ${m + 1}: ${sides - m}² = ${ge(m + 1)}.`,
      `The minimum is exactly ${m} for the difference: ${ge(m)} − ${ge(m + 1)} = ${ways} pairs.`,
      `P = ${showFraction(ways, total)}.`,
    ],
    ways,
    total,
  );
}

export const SUM_PROPERTIES: Readonly<Record<string, { text: string; test: (s: number) => boolean }>> = {
  prime: { text: "a prime number", test: (s) => s > 1 && range(2, s - 1).every((q) => s % q !== 0) },
  "multiple-of-3": { text: "a multiple of 3", test: (s) => s % 3 === 0 },
  "multiple-of-4": { text: "a multiple of 4", test: (s) => s % 4 === 0 },
  "multiple-of-5": { text: "a multiple of 5", test: (s) => s % 5 === 0 },
  "perfect-square": { text: "a perfect square", test: (s) => Number.isInteger(Math.sqrt(s)) },
};

function sumProperty(rng: Random): ProbabilityProblem {
  const sides = rng.pick([6, 6, 8]),
    property = rng.pick(Object.keys(SUM_PROPERTIES));
  const { text, test } = SUM_PROPERTIES[property]!;
  const sums = range(2, 2 * sides).filter(test);
  const ways = sums.reduce((acc, s) => acc + waysToSum(sides, s), 0),
    total = sides * sides;
  return problem(
    "dice.sum-property",
    { sides, property },
    `${capitalize(twoDice(sides))} are rolled. What is the probability that the sum is ${text}?`,
    [
      pairSpace(sides),
      `The possible sums ${sides === 6 ? "2 to 12" : `2 to ${2 * sides}`} that are ${text}: ${sums.join(", ")}.`,
      `Pairs for each (a sum s arises in min(s − 1, ${2 * sides + 1} − s) ways): ${sums.map((s) => `${s} → ${waysToSum(sides, s)}`).join(", ")}; total ${ways}.`,
      `P = ${showFraction(ways, total)}.`,
    ],
    ways,
    total,
  );
}

export const dice: Family = {
  name: "dice",
  templates: {
    "dice.sum-equals": sumEquals,
    "dice.sum-range": sumRange,
    "dice.doubles": doubles,
    "dice.at-least-one-face": atLeastOneFace,
    "dice.max-min": maxMin,
    "dice.sum-property": sumProperty,
  },
};
