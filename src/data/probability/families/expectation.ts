// Expected values: dice sums, simple games, indicator sums, maximum/minimum of two dice.
import { r, type Rational } from "../rational.js";
import { capitalize, type Family, NICE_PROBABILITIES, powerText, type ProbabilityProblem, range, word } from "../problem.js";
import type { Random } from "../random.js";
import { oneDie } from "./dice.js";
import { describeUrn } from "./urns.js";

function problem(
  kind: string,
  params: ProbabilityProblem["params"],
  question: string,
  steps: string[],
  answer: Rational,
  asks: string,
): ProbabilityProblem {
  return { family: "expectation", kind, params, question, steps, answer, asks };
}

function diceSum(rng: Random): ProbabilityProblem {
  const sides = rng.pick([4, 6, 6, 8, 10, 12]),
    n = rng.int(1, 3);
  const one = r(sides + 1, 2),
    total = one.mul(r(n));
  const steps = [`One die: E = (1 + 2 + … + ${sides})/${sides} = ${(sides * (sides + 1)) / 2}/${sides} = ${one}.`];
  if (n > 1) steps.push(`By linearity of expectation, the sum of ${n} dice has E = ${n} × ${one} = ${total}.`);
  const question =
    n === 1
      ? `${capitalize(oneDie(sides))} is rolled. What is the expected value of the number shown?`
      : `${capitalize(word(n))} ${sides === 6 ? "fair six-sided dice" : `fair ${word(sides)}-sided dice (faces 1 to ${sides})`} are rolled. What is the expected value of the sum of the numbers shown?`;
  return problem("expectation.dice-sum", { sides, n }, question, steps, total, n === 1 ? "expected value" : "expected sum");
}

function game(rng: Random): ProbabilityProblem {
  const variant = rng.pick(["threshold", "face-value", "two-coins"] as const);
  const asks = "expected gain in dollars";
  const ask = "What is your expected gain, in dollars, per game?";
  if (variant === "threshold") {
    const h = rng.int(3, 6),
      win = rng.int(2, 12),
      lose = rng.int(1, 6);
    const pw = r(7 - h, 6),
      pl = r(h - 1, 6),
      e = pw.mul(r(win)).sub(pl.mul(r(lose)));
    return problem(
      "expectation.game",
      { variant, h, win, lose },
      `In a game you roll a fair six-sided die. If it shows ${h === 6 ? "6" : `${h} or more`}, you win $${win}; otherwise you lose $${lose}. ${ask}`,
      [
        `P(win) = ${7 - h}/6${pw.toString() !== `${7 - h}/6` ? ` = ${pw}` : ""} and P(lose) = ${h - 1}/6${pl.toString() !== `${h - 1}/6` ? ` = ${pl}` : ""}.`,
        `E = ${pw} × ${win} + ${pl} × (−${lose}) = ${pw.mul(r(win))} − ${pl.mul(r(lose))} = ${e}.`,
      ],
      e,
      asks,
    );
  }
  if (variant === "face-value") {
    const lose = rng.int(1, 8),
      e = r(12, 6).sub(r(3 * lose, 6));
    return problem(
      "expectation.game",
      { variant, lose },
      `In a game you roll a fair six-sided die. If it shows an even number, you win that many dollars; if it shows an odd number, you lose $${lose}. ${ask}`,
      [
        `Each face has probability 1/6. The even faces pay 2, 4 and 6 dollars; each of the three odd faces costs ${lose}.`,
        `E = (2 + 4 + 6)/6 − 3 × ${lose}/6 = 12/6 − ${3 * lose}/6 = ${e}.`,
      ],
      e,
      asks,
    );
  }
  const a = rng.int(2, 10),
    b = rng.int(0, 4),
    c = rng.int(1, 8);
  const e = r(a, 4).add(r(b, 2)).sub(r(c, 4));
  return problem(
    "expectation.game",
    { variant, a, b, c },
    `In a game you flip two fair coins. If both land heads you win $${a}; if exactly one lands heads you win $${b}; if neither does you lose $${c}. ${ask}`,
    [
      "P(two heads) = 1/4, P(exactly one head) = 2/4 = 1/2, P(no heads) = 1/4.",
      `E = 1/4 × ${a} + 1/2 × ${b} + 1/4 × (−${c}) = ${r(a, 4)} + ${r(b, 2)} − ${r(c, 4)} = ${e}.`,
    ],
    e,
    asks,
  );
}

function indicators(rng: Random): ProbabilityProblem {
  const variant = rng.pick(["heads", "distinct-faces", "fixed-points", "adjacent-heads", "red-draws", "empty-boxes"] as const);
  const linearity = "By linearity of expectation, the expected count is the sum of the indicators' expectations.";
  switch (variant) {
    case "heads": {
      const n = rng.int(2, 12),
        p = rng.pick(NICE_PROBABILITIES),
        e = p.mul(r(n));
      return problem(
        "expectation.indicators",
        { variant, n, p: p.toString() },
        `A biased coin lands heads with probability ${p}. It is flipped ${word(n)} times. What is the expected number of heads?`,
        [`Let I_i = 1 if flip i is heads, else 0; E[I_i] = ${p}.`, linearity, `E = ${n} × ${p} = ${e}.`],
        e,
        "expected number of heads",
      );
    }
    case "distinct-faces": {
      const n = rng.int(2, 5),
        miss = r(5, 6).pow(n),
        e = r(6).mul(miss.complement());
      return problem(
        "expectation.indicators",
        { variant, n },
        `A fair six-sided die is rolled ${word(n)} times. What is the expected number of different faces that appear?`,
        [
          "Let I_f = 1 if face f appears at least once, for f = 1, …, 6.",
          `P(face f never appears) = ${powerText("5/6", n)} = ${miss}, so E[I_f] = 1 − ${miss} = ${miss.complement()}.`,
          linearity,
          `E = 6 × ${miss.complement()} = ${e}.`,
        ],
        e,
        "expected number of different faces",
      );
    }
    case "fixed-points": {
      const n = rng.int(3, 7);
      return problem(
        "expectation.indicators",
        { variant, n },
        `${capitalize(word(n))} people leave their hats in a cloakroom, and the hats are handed back in a random order, each order equally likely. What is the expected number of people who get their own hat back?`,
        [
          `Let I_i = 1 if person i gets their own hat. In a random order each person is equally likely to get any of the ${n} hats, so E[I_i] = 1/${n}.`,
          linearity,
          `E = ${n} × 1/${n} = 1.`,
        ],
        r(1),
        "expected number",
      );
    }
    case "adjacent-heads": {
      const n = rng.int(3, 10),
        e = r(n - 1, 4);
      return problem(
        "expectation.indicators",
        { variant, n },
        `A fair coin is flipped ${word(n)} times. Counting every pair of consecutive flips (overlapping pairs count separately), what is the expected number of pairs in which both flips are heads?`,
        [
          `There are ${n - 1} adjacent pairs of flips (1, 2), (2, 3), …, (${n - 1}, ${n}). Let I_i = 1 if flips i and i + 1 are both heads.`,
          "E[I_i] = 1/2 × 1/2 = 1/4.",
          linearity,
          `E = ${n - 1} × 1/4 = ${e}.`,
        ],
        e,
        "expected number of such pairs",
      );
    }
    case "red-draws": {
      const colors = rng.pick([
        ["red", "blue"],
        ["white", "black"],
        ["green", "yellow"],
      ] as const);
      const counts = [rng.int(2, 9), rng.int(2, 9)],
        total = counts[0]! + counts[1]!,
        k = rng.int(2, Math.min(5, total - 1));
      const e = r(k * counts[0]!, total);
      return problem(
        "expectation.indicators",
        { variant, colors, counts, k },
        `${describeUrn(colors, counts)} ${capitalize(word(k))} balls are drawn at random without replacement. What is the expected number of ${colors[0]} balls drawn?`,
        [
          `Let I_j = 1 if the j-th ball drawn is ${colors[0]}. By symmetry every draw is equally likely to be any ball, so E[I_j] = ${counts[0]}/${total}.`,
          `${linearity} (This holds even though the draws are dependent.)`,
          `E = ${k} × ${counts[0]}/${total} = ${e}.`,
        ],
        e,
        `expected number of ${colors[0]} balls`,
      );
    }
    case "empty-boxes": {
      const balls = rng.int(2, 5),
        boxes = rng.int(2, 5),
        empty = r(boxes - 1, boxes).pow(balls),
        e = empty.mul(r(boxes));
      return problem(
        "expectation.indicators",
        { variant, balls, boxes },
        `${capitalize(word(balls))} balls are thrown one at a time into ${word(boxes)} boxes; each ball lands in each box with equal probability, independently. What is the expected number of empty boxes?`,
        [
          "Let I_b = 1 if box b ends up empty.",
          `A given box stays empty if every ball misses it: E[I_b] = ${powerText(r(boxes - 1, boxes).toString(), balls)} = ${empty}.`,
          linearity,
          `E = ${boxes} × ${empty} = ${e}.`,
        ],
        e,
        "expected number of empty boxes",
      );
    }
  }
}

function maxMin(rng: Random): ProbabilityProblem {
  const sides = rng.pick([4, 6, 6, 8]),
    mode = rng.pick(["max", "min"] as const);
  const d2 = sides * sides;
  // P(max = m) = (2m − 1)/d²; P(min = m) = (2(d − m) + 1)/d²
  const ways = (m: number) => (mode === "max" ? 2 * m - 1 : 2 * (sides - m) + 1);
  const ms = range(1, sides),
    weighted = ms.reduce((acc, m) => acc + m * ways(m), 0),
    e = r(weighted, d2);
  const word2 = mode === "max" ? "larger" : "smaller";
  return problem(
    "expectation.max-min",
    { sides, mode },
    `Two ${sides === 6 ? "fair six-sided dice" : `fair ${word(sides)}-sided dice (faces 1 to ${sides})`} are rolled. What is the expected value of the ${word2} of the two numbers (either one, if they are equal)?`,
    [
      `There are ${d2} equally likely ordered pairs.`,
      mode === "max"
        ? `The maximum is m for m² − (m − 1)² = 2m − 1 pairs: ${ms.map((m) => `${m} → ${ways(m)}`).join(", ")}.`
        : `The minimum is m for (${sides} − m + 1)² − (${sides} − m)² = ${2 * sides + 1} − 2m pairs: ${ms.map((m) => `${m} → ${ways(m)}`).join(", ")}.`,
      `E = (${ms.map((m) => `${m}×${ways(m)}`).join(" + ")})/${d2} = ${weighted}/${d2}${e.toString() !== `${weighted}/${d2}` ? ` = ${e}` : ""}.`,
    ],
    e,
    `expected ${mode === "max" ? "maximum" : "minimum"}`,
  );
}

export const expectation: Family = {
  name: "expectation",
  templates: {
    "expectation.dice-sum": diceSum,
    "expectation.game": game,
    "expectation.indicators": indicators,
    "expectation.max-min": maxMin,
  },
};
