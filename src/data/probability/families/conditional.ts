// Conditional probability and Bayes: medical tests, two urns, dice and cards given information,
// children, and which coin was picked.
import { r, Rational } from "../rational.js";
import { choose, type Family, powerText, type ProbabilityProblem, range, showFraction, word } from "../problem.js";
import type { Random } from "../random.js";
import { aRank, aSuit, RANKS, rankPlural, SUITS } from "./cards.js";
import { waysToSum } from "./dice.js";

function problem(
  kind: string,
  params: ProbabilityProblem["params"],
  question: string,
  steps: string[],
  answer: Rational,
): ProbabilityProblem {
  return { family: "conditional", kind, params, question, steps, answer, asks: "probability" };
}

/** The steps of Bayes' rule for two hypotheses H and not-H after evidence E. */
function bayesSteps(
  h: string,
  notH: string,
  e: string,
  prior: Rational,
  likeH: Rational,
  likeNotH: Rational,
): { steps: string[]; posterior: Rational } {
  const joint = prior.mul(likeH),
    jointNot = prior.complement().mul(likeNotH),
    evidence = joint.add(jointNot);
  const posterior = joint.div(evidence);
  return {
    steps: [
      `P(${h} and ${e}) = P(${h}) × P(${e} | ${h}) = ${prior} × ${likeH} = ${joint}.`,
      `P(${notH} and ${e}) = P(${notH}) × P(${e} | ${notH}) = ${prior.complement()} × ${likeNotH} = ${jointNot}.`,
      `Total probability: P(${e}) = ${joint} + ${jointNot} = ${evidence}.`,
      `Bayes' rule: P(${h} | ${e}) = (${joint}) / (${evidence}) = ${posterior}.`,
    ],
    posterior,
  };
}

function diseaseTest(rng: Random): ProbabilityProblem {
  const prevalencePct = rng.pick([1, 2, 5, 10, 20]),
    sensitivityPct = rng.pick([80, 90, 95, 99]),
    falsePositivePct = rng.pick([1, 2, 5, 10, 20]);
  const result = rng.pick(["positive", "negative"] as const);
  const prior = r(prevalencePct, 100),
    sens = r(sensitivityPct, 100),
    fp = r(falsePositivePct, 100);
  const positive = result === "positive";
  const e = positive ? "+" : "−";
  const bayes = bayesSteps("D", "not D", e, prior, positive ? sens : sens.complement(), positive ? fp : fp.complement());
  const question = `A disease affects ${prevalencePct}% of a population. A test for it comes back positive for ${sensitivityPct}% of people who have the disease and for ${falsePositivePct}% of people who do not. A person chosen at random tests ${result}. What is the probability that this person has the disease?`;
  const facts = `Let D be "has the disease" and ${e} a ${result} test. P(D) = ${prevalencePct}/100 = ${prior}; P(+ | D) = ${sens}; P(+ | not D) = ${fp}.`;
  const steps = [facts];
  if (!positive) steps.push(`So P(− | D) = 1 − ${sens} = ${sens.complement()} and P(− | not D) = 1 − ${fp} = ${fp.complement()}.`);
  return problem(
    "conditional.disease-test",
    { prevalencePct, sensitivityPct, falsePositivePct, result },
    question,
    [...steps, ...bayes.steps],
    bayes.posterior,
  );
}

function twoUrns(rng: Random): ProbabilityProblem {
  const colors = rng.pick([
    ["red", "blue"],
    ["white", "black"],
    ["green", "yellow"],
  ] as const);
  const a = [rng.int(1, 8), rng.int(1, 8)],
    b = [rng.int(1, 8), rng.int(1, 8)];
  const chooser = rng.pick(["coin", "die"] as const),
    t = chooser === "die" ? rng.int(1, 5) : 0;
  const drawn = rng.int(0, 1),
    color = colors[drawn]!;
  const prior = chooser === "coin" ? r(1, 2) : r(t, 6);
  const howChosen =
    chooser === "coin"
      ? "A fair coin is flipped: on heads a ball is drawn at random from urn A, on tails from urn B."
      : `A fair six-sided die is rolled: if it shows ${t === 1 ? "1" : `${t} or less`}, a ball is drawn at random from urn A, otherwise from urn B.`;
  const likeA = r(a[drawn]!, a[0]! + a[1]!),
    likeB = r(b[drawn]!, b[0]! + b[1]!);
  const bayes = bayesSteps("A", "B", color, prior, likeA, likeB);
  return problem(
    "conditional.two-urns",
    { colors, a, b, chooser, t, drawn },
    `Urn A contains ${a[0]} ${colors[0]} and ${a[1]} ${colors[1]} balls; urn B contains ${b[0]} ${colors[0]} and ${b[1]} ${colors[1]} balls. ${howChosen} The ball drawn is ${color}. What is the probability that it came from urn A?`,
    [
      `P(A) = ${prior}${chooser === "die" ? ` (the die shows ${t === 1 ? "1" : `1 to ${t}`})` : ""}, P(B) = ${prior.complement()}.`,
      `P(${color} | A) = ${a[drawn]}/${a[0]! + a[1]!}${likeA.toString() !== `${a[drawn]}/${a[0]! + a[1]!}` ? ` = ${likeA}` : ""}; P(${color} | B) = ${b[drawn]}/${b[0]! + b[1]!}${likeB.toString() !== `${b[drawn]}/${b[0]! + b[1]!}` ? ` = ${likeB}` : ""}.`,
      ...bayes.steps,
    ],
    bayes.posterior,
  );
}

function diceGiven(rng: Random): ProbabilityProblem {
  const variant = rng.pick(["sum-doubles", "sum-contains", "face-sum"] as const);
  const intro = "Two fair six-sided dice are rolled.";
  const restrict = "Conditioning restricts the 36 equally likely ordered pairs to those where the condition holds.";
  if (variant === "sum-doubles") {
    const s = rng.pick([4, 6, 8, 10]),
      ways = waysToSum(6, s);
    const pairs = range(Math.max(1, s - 6), Math.min(6, s - 1)).map((x) => `(${x}, ${s - x})`);
    return problem(
      "conditional.dice",
      { variant, s },
      `${intro} Given that the sum is ${s}, what is the probability that both dice show the same number?`,
      [
        restrict,
        `Pairs with sum ${s}: ${pairs.join(", ")}: ${ways} pairs.`,
        `Only (${s / 2}, ${s / 2}) is a double, so P = ${showFraction(1, ways)}.`,
      ],
      r(1, ways),
    );
  }
  if (variant === "sum-contains") {
    const s = rng.int(3, 11),
      lo = Math.max(1, s - 6),
      hi = Math.min(6, s - 1),
      f = rng.int(lo, hi);
    const xs = range(lo, hi),
      good = xs.filter((x) => x === f || s - x === f);
    return problem(
      "conditional.dice",
      { variant, s, f },
      `${intro} Given that the sum is ${s}, what is the probability that at least one of the dice shows a ${f}?`,
      [
        restrict,
        `Pairs with sum ${s}: ${xs.map((x) => `(${x}, ${s - x})`).join(", ")}: ${xs.length} pairs.`,
        `Those containing a ${f}: ${good.map((x) => `(${x}, ${s - x})`).join(", ")}: ${good.length}.`,
        `P = ${showFraction(good.length, xs.length)}.`,
      ],
      r(good.length, xs.length),
    );
  }
  const f = rng.int(1, 6),
    t = rng.int(f + 2, f + 6);
  const given = range(1, 6)
    .flatMap((x) => range(1, 6).map((y) => [x, y] as const))
    .filter(([x, y]) => x === f || y === f);
  const good = given.filter(([x, y]) => x + y >= t);
  return problem(
    "conditional.dice",
    { variant, f, t },
    `${intro} Given that at least one of the dice shows a ${f}, what is the probability that the sum is at least ${t}?`,
    [
      restrict,
      `Pairs with at least one ${f}: 6 with the first die ${f}, 6 with the second, minus (${f}, ${f}) counted twice: 11 pairs.`,
      `Among them, the sum is at least ${t} for ${good.map(([x, y]) => `(${x}, ${y})`).join(", ")}: ${good.length} pairs.`,
      `P = ${showFraction(good.length, 11)}.`,
    ],
    r(good.length, 11),
  );
}

function children(rng: Random): ProbabilityProblem {
  const n = rng.int(2, 4),
    sex = rng.pick(["boy", "girl"] as const),
    other = sex === "boy" ? "girl" : "boy",
    j = rng.int(1, n);
  const all = 2 ** n,
    given = all - 1,
    ways = choose(n, j);
  const what =
    j === n
      ? n === 2
        ? `both are ${sex}s`
        : `all ${word(n)} are ${sex}s`
      : `exactly ${word(j)} ${j === 1 ? `is a ${sex}` : `are ${sex}s`}`;
  return problem(
    "conditional.children",
    { n, sex, j },
    `A family has ${word(n)} children, and each child is a boy or a girl with probability 1/2, independently. Given that at least one of the children is a ${sex}, what is the probability that ${what}?`,
    [
      `There are 2^${n} = ${all} equally likely ${sex}/${other} sequences (by birth order).`,
      `"At least one ${sex}" rules out only the all-${other} sequence, leaving ${given}.`,
      `Sequences with exactly ${j} ${sex}${j === 1 ? "" : "s"}: C(${n}, ${j}) = ${ways}, and all of them satisfy the condition.`,
      `P = ${showFraction(ways, given)}.`,
    ],
    r(ways, given),
  );
}

function cardsGiven(rng: Random): ProbabilityProblem {
  const variant = rng.pick(["second-same-category", "both-given-one-rank", "both-given-one-suit"] as const);
  const intro = "Two cards are dealt without replacement from a well-shuffled standard 52-card deck.";
  if (variant === "second-same-category") {
    const category = rng.pick(["suit", "face", "red", "rank"] as const);
    const suit = rng.pick(SUITS),
      rank = rng.pick(RANKS);
    const [size, name, one] = {
      suit: [13, suit, aSuit(suit)],
      face: [12, "face cards", "a face card"],
      red: [26, "red cards", "red"],
      rank: [4, rankPlural(rank), aRank(rank)],
    }[category] as [number, string, string];
    const params: ProbabilityProblem["params"] =
      category === "suit" ? { variant, category, suit } : category === "rank" ? { variant, category, rank } : { variant, category };
    return problem(
      "conditional.cards",
      params,
      `${intro} Given that the first card is ${one}, what is the probability that the second card is also ${one}?`,
      [
        `Once the first card is known to be ${one}, ${size - 1} ${name} are left among the 51 remaining cards.`,
        `Every remaining card is equally likely to be second, so P = ${showFraction(size - 1, 51)}.`,
      ],
      r(size - 1, 51),
    );
  }
  const [params, size, one, many] =
    variant === "both-given-one-rank"
      ? (() => {
          const rank = rng.pick(RANKS);
          return [{ variant, rank }, 4, aRank(rank), rankPlural(rank)] as const;
        })()
      : (() => {
          const suit = rng.pick(SUITS);
          return [{ variant, suit }, 13, aSuit(suit), suit] as const;
        })();
  const hands = choose(52, 2),
    none = choose(52 - size, 2),
    both = choose(size, 2),
    atLeast = hands - none;
  return problem(
    "conditional.cards",
    params,
    `${intro} Given that at least one of the two cards is ${one}, what is the probability that both are ${many}?`,
    [
      `Count unordered two-card hands: C(52, 2) = ${hands}.`,
      `Hands with none of the ${many}: C(${52 - size}, 2) = ${none}, so ${hands} − ${none} = ${atLeast} hands have at least one.`,
      `Hands with two ${many}: C(${size}, 2) = ${both}; all of them have at least one.`,
      `P = ${showFraction(both, atLeast)}.`,
    ],
    r(both, atLeast),
  );
}

function whichCoin(rng: Random): ProbabilityProblem {
  const fair = rng.int(1, 3),
    bias = rng.pick([r(1), r(3, 4), r(2, 3), r(4, 5)]),
    n = rng.int(1, 4);
  const special = bias.equals(Rational.ONE) ? "a two-headed coin" : `a biased coin that lands heads with probability ${bias}`;
  const name = bias.equals(Rational.ONE) ? "the two-headed coin" : "the biased coin";
  const flips = n === 1 ? "flipped once and lands heads" : `flipped ${word(n)} times and lands heads every time`;
  const prior = r(1, fair + 1);
  const bayes = bayesSteps("S", "F", "H", prior, bias.pow(n), r(1, 2).pow(n));
  return problem(
    "conditional.which-coin",
    { fair, bias: bias.toString(), n },
    `A bag holds ${word(fair)} fair coin${fair === 1 ? "" : "s"} and ${special}. A coin is taken from the bag at random, then ${flips}. What is the probability that it is ${name}?`,
    [
      `Let S be "picked ${name}", F "picked a fair coin", and H the observed ${n === 1 ? "head" : `${n} heads`}. P(S) = ${prior}, P(F) = ${prior.complement()}.`,
      n === 1
        ? `P(H | S) = ${bias}; P(H | F) = 1/2.`
        : `P(H | S) = ${powerText(bias.toString(), n)} = ${bias.pow(n)}; P(H | F) = ${powerText("1/2", n)} = ${r(1, 2).pow(n)}.`,
      ...bayes.steps,
    ],
    bayes.posterior,
  );
}

export const conditional: Family = {
  name: "conditional",
  templates: {
    "conditional.disease-test": diseaseTest,
    "conditional.two-urns": twoUrns,
    "conditional.dice": diceGiven,
    "conditional.children": children,
    "conditional.cards": cardsGiven,
    "conditional.which-coin": whichCoin,
  },
};
