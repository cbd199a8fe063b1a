// Fair coins: exactly / at least k heads, fixed patterns, first head, runs.
import { r } from "../rational.js";
import { capitalize, choose, count, type Family, ordinal, type ProbabilityProblem, range, showFraction, word } from "../problem.js";
import type { Random } from "../random.js";

const FACES = ["heads", "tails"] as const;
const singular = (face: string) => face.slice(0, -1); // "heads" → "head"

function problem(
  kind: string,
  params: ProbabilityProblem["params"],
  question: string,
  steps: string[],
  num: bigint,
  den: bigint,
): ProbabilityProblem {
  return { family: "coins", kind, params, question, steps, answer: r(num, den), asks: "probability" };
}

function opening(n: number, tossAll: boolean): string {
  return tossAll ? `${capitalize(word(n))} fair coins are tossed.` : `A fair coin is flipped ${word(n)} times.`;
}

function exactHeads(rng: Random): ProbabilityProblem {
  const n = rng.int(3, 10),
    k = rng.int(0, n),
    face = rng.pick(FACES),
    tossAll = rng.int(0, 1) === 1;
  const total = 2n ** BigInt(n),
    ways = choose(n, k);
  const question = tossAll
    ? `${opening(n, true)} What is the probability that exactly ${word(k)} of them ${k === 1 ? "lands" : "land"} ${face}?`
    : `${opening(n, false)} What is the probability of getting exactly ${count(k, singular(face))}?`;
  return problem(
    "coins.exact-heads",
    { n, k, face, tossAll: tossAll ? 1 : 0 },
    question,
    [
      `Each toss has 2 equally likely outcomes, so there are 2^${n} = ${total} equally likely sequences.`,
      `A sequence with exactly ${count(k, singular(face))} is fixed by choosing which ${k} of the ${n} positions show ${face}: C(${n}, ${k}) = ${ways} way${ways === 1n ? "" : "s"}.`,
      `P = ${showFraction(ways, total)}.`,
    ],
    ways,
    total,
  );
}

function atLeastHeads(rng: Random): ProbabilityProblem {
  const n = rng.int(3, 8),
    k = rng.int(1, n - 1),
    face = rng.pick(FACES),
    mode = rng.pick(["at-least", "at-most"] as const);
  const total = 2n ** BigInt(n);
  const js = mode === "at-least" ? range(k, n) : range(0, k);
  const terms = js.map((j) => choose(n, j));
  const ways = terms.reduce((a, b) => a + b, 0n);
  const phrase = mode === "at-least" ? "at least" : "at most";
  return problem(
    "coins.at-least-heads",
    { n, k, face, mode },
    `${opening(n, false)} What is the probability of getting ${phrase} ${count(k, singular(face))}?`,
    [
      `There are 2^${n} = ${total} equally likely sequences, and C(${n}, j) of them have exactly j ${face}.`,
      `${capitalize(phrase)} ${k} ${face} means j = ${js.join(", ")}.`,
      `Count: ${js.map((j) => `C(${n}, ${j})`).join(" + ")} = ${terms.join(" + ")} = ${ways}.`,
      `P = ${showFraction(ways, total)}.`,
    ],
    ways,
    total,
  );
}

function pattern(rng: Random): ProbabilityProblem {
  const n = rng.int(3, 6);
  const seq = Array.from({ length: n }, () => rng.pick(["H", "T"] as const)).join("");
  const total = 2n ** BigInt(n);
  const spelled = [...seq].map((c) => (c === "H" ? "heads" : "tails")).join(", ");
  return problem(
    "coins.pattern",
    { pattern: seq },
    `${opening(n, false)} What is the probability that the results come up in exactly this order: ${spelled}?`,
    [
      `The flips are independent, and each one matches the required face with probability 1/2.`,
      `So P = (1/2)^${n} = 1/${total}; equivalently, exactly one of the 2^${n} = ${total} equally likely sequences is ${seq}.`,
    ],
    1n,
    total,
  );
}

function firstHead(rng: Random): ProbabilityProblem {
  const k = rng.int(1, 7),
    face = rng.pick(FACES);
  const other = face === "heads" ? "tails" : "heads";
  const den = 2n ** BigInt(k);
  const steps =
    k === 1
      ? [`The first flip must show ${face}, which happens with probability 1/2.`]
      : [
          `${k === 2 ? "The first flip" : `The first ${word(k - 1)} flips`} must show ${other} and flip ${k} must show ${face}.`,
          `The flips are independent, each with probability 1/2, so P = ${k === 2 ? "1/2" : `(1/2)^${k - 1}`} × 1/2 = (1/2)^${k} = 1/${den}.`,
        ];
  return problem(
    "coins.first-head",
    { k, face },
    `A fair coin is flipped repeatedly. What is the probability that the first ${singular(face)} appears on the ${ordinal(k)} flip?`,
    steps,
    1n,
    den,
  );
}

function noConsecutive(rng: Random): ProbabilityProblem {
  const n = rng.int(3, 9),
    face = rng.pick(FACES);
  const letter = face === "heads" ? "H" : "T",
    otherLetter = face === "heads" ? "T" : "H";
  const a = [1n, 2n]; // a[m]: sequences of length m with no two consecutive `face`
  for (let m = 2; m <= n; m++) a.push(a[m - 1]! + a[m - 2]!);
  const total = 2n ** BigInt(n);
  return problem(
    "coins.no-consecutive",
    { n, face },
    `${opening(n, false)} What is the probability that no two ${face} appear on consecutive flips?`,
    [
      `Let a_m be the number of length-m sequences with no two ${face} in a row.`,
      `A valid sequence ends either in ${otherLetter} (after any valid sequence of length m−1) or in ${otherLetter}${letter} (after any valid sequence of length m−2), so a_m = a_(m−1) + a_(m−2).`,
      `Starting from a_1 = 2 and a_2 = 3: ${a
        .slice(3)
        .map((v, i) => `a_${i + 3} = ${v}`)
        .join(", ")}.`,
      `There are 2^${n} = ${total} sequences in all, so P = ${showFraction(a[n]!, total)}.`,
    ],
    a[n]!,
    total,
  );
}

function allSameOrAlternating(rng: Random): ProbabilityProblem {
  const n = rng.int(3, 9),
    variant = rng.pick(["same", "alternate"] as const);
  const total = 2n ** BigInt(n);
  const h = "H".repeat(n),
    t = "T".repeat(n);
  const alt1 = Array.from({ length: n }, (_, i) => (i % 2 === 0 ? "H" : "T")).join("");
  const alt2 = Array.from({ length: n }, (_, i) => (i % 2 === 0 ? "T" : "H")).join("");
  const question =
    variant === "same"
      ? `${opening(n, false)} What is the probability that all ${word(n)} flips show the same face?`
      : `${opening(n, false)} What is the probability that heads and tails alternate, so that no two consecutive flips match?`;
  return problem(
    "coins.same-or-alternating",
    { n, variant },
    question,
    [
      `There are 2^${n} = ${total} equally likely sequences.`,
      `Only two of them qualify: ${variant === "same" ? `${h} and ${t}` : `${alt1} and ${alt2}`}.`,
      `P = ${showFraction(2n, total)}.`,
    ],
    2n,
    total,
  );
}

export const coins: Family = {
  name: "coins",
  templates: {
    "coins.exact-heads": exactHeads,
    "coins.at-least-heads": atLeastHeads,
    "coins.pattern": pattern,
    "coins.first-head": firstHead,
    "coins.no-consecutive": noConsecutive,
    "coins.same-or-alternating": allSameOrAlternating,
  },
};
