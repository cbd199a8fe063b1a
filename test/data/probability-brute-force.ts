// Exact answers by enumerating every outcome of a problem's sample space, written independently
// of the generator's formulas: the generator's answers are checked against these.
import { Rational, r } from "../../src/data/probability/rational.js";
import type { ProbabilityProblem, ProblemParams } from "../../src/data/probability/problem.js";

// ---- sample spaces ----

/** Every sequence of length n over values (values^n of them). */
function sequences<T>(values: readonly T[], n: number): T[][] {
  let out: T[][] = [[]];
  for (let i = 0; i < n; i++) out = out.flatMap((s) => values.map((v) => [...s, v]));
  return out;
}
/** Every k-subset of 0..n−1, as sorted index lists. */
function combinations(n: number, k: number, start = 0): number[][] {
  if (k === 0) return [[]];
  const out: number[][] = [];
  for (let i = start; i <= n - k; i++) for (const rest of combinations(n, k - 1, i + 1)) out.push([i, ...rest]);
  return out;
}
/** Every ordered selection of k distinct indices of 0..n−1. */
function arrangements(n: number, k: number): number[][] {
  if (k === 0) return [[]];
  return arrangements(n, k - 1).flatMap((s) =>
    Array.from({ length: n }, (_, i) => i)
      .filter((i) => !s.includes(i))
      .map((i) => [...s, i]),
  );
}
const permutations = (n: number) => arrangements(n, n);
const ordered = (n: number, k: number, replace: boolean) =>
  replace
    ? sequences(
        Array.from({ length: n }, (_, i) => i),
        k,
      )
    : arrangements(n, k);

interface Weighted<T> {
  value: T;
  weight: Rational;
}
/** Independent trials: each outcome sequence with the product of its probabilities. */
function weightedSequences(probs: readonly Rational[]): Weighted<boolean[]>[] {
  let out: Weighted<boolean[]>[] = [{ value: [], weight: Rational.ONE }];
  for (const p of probs)
    out = out.flatMap((s) => [
      { value: [...s.value, true], weight: s.weight.mul(p) },
      { value: [...s.value, false], weight: s.weight.mul(p.complement()) },
    ]);
  return out;
}
const uniform = <T>(values: readonly T[]): Weighted<T>[] => values.map((value) => ({ value, weight: r(1, values.length) }));

// ---- measuring ----

function probability<T>(space: readonly T[], event: (x: T) => boolean, given: (x: T) => boolean = () => true): Rational {
  const cond = space.filter(given);
  return r(cond.filter(event).length, cond.length);
}
function weightedProbability<T>(space: readonly Weighted<T>[], event: (x: T) => boolean, given: (x: T) => boolean = () => true): Rational {
  const total = (f: (x: T) => boolean) => space.filter((o) => f(o.value)).reduce((acc, o) => acc.add(o.weight), Rational.ZERO);
  return total((x) => given(x) && event(x)).div(total(given));
}
function mean<T>(space: readonly T[], f: (x: T) => number | Rational): Rational {
  const sum = space.reduce((acc, x) => {
    const v = f(x);
    return acc.add(typeof v === "number" ? r(v) : v);
  }, Rational.ZERO);
  return sum.div(r(space.length));
}
function weightedMean<T>(space: readonly Weighted<T>[], f: (x: T) => number): Rational {
  return space.reduce((acc, o) => acc.add(o.weight.mul(r(f(o.value)))), Rational.ZERO);
}

// ---- parameters ----

const num = (p: ProblemParams, k: string): number => {
  const v = p[k];
  if (typeof v !== "number") throw new Error(`param ${k} is not a number`);
  return v;
};
const str = (p: ProblemParams, k: string): string => {
  const v = p[k];
  if (typeof v !== "string") throw new Error(`param ${k} is not a string`);
  return v;
};
const nums = (p: ProblemParams, k: string): number[] => {
  const v = p[k];
  if (!Array.isArray(v)) throw new Error(`param ${k} is not a list`);
  return v.map(Number);
};
const frac = (p: ProblemParams, k: string): Rational => {
  const v = Rational.parse(str(p, k));
  if (!v) throw new Error(`param ${k} is not a fraction`);
  return v;
};

const count = <T>(xs: readonly T[], f: (x: T, i: number) => boolean) => xs.filter(f).length;
const range1 = (n: number) => Array.from({ length: n }, (_, i) => i + 1);
const dicePairs = (sides: number) => sequences(range1(sides), 2) as [number, number][];
const compareCount = (c: number, k: number, mode: string) => (mode === "at-least" ? c >= k : c <= k);

interface Card {
  rank: string;
  suit: string;
}
const RANK_CODES = ["2", "3", "4", "5", "6", "7", "8", "9", "10", "J", "Q", "K", "A"];
const DECK: Card[] = ["hearts", "diamonds", "clubs", "spades"].flatMap((suit) => RANK_CODES.map((rank) => ({ rank, suit })));
let threeCardHandsCache: Card[][] | undefined;
const threeCardHands = () => (threeCardHandsCache ??= combinations(52, 3).map((h) => h.map((i) => DECK[i]!)));
const isFace = (c: Card) => ["J", "Q", "K"].includes(c.rank);
const isRed = (c: Card) => c.suit === "hearts" || c.suit === "diamonds";
/** Balls as color indices: counts [2, 3] → [0, 0, 1, 1, 1]. */
const balls = (counts: readonly number[]) => counts.flatMap((c, i) => Array.from({ length: c }, () => i));
const isPrime = (n: number) =>
  n > 1 &&
  range1(n - 1)
    .slice(1)
    .every((q) => n % q !== 0);

type BruteForce = (p: ProblemParams) => Rational;

export const BRUTE_FORCE: Readonly<Record<string, BruteForce>> = {
  // coins
  "coins.exact-heads": (p) =>
    probability(sequences(["heads", "tails"], num(p, "n")), (s) => count(s, (x) => x === str(p, "face")) === num(p, "k")),
  "coins.at-least-heads": (p) =>
    probability(sequences(["heads", "tails"], num(p, "n")), (s) =>
      compareCount(
        count(s, (x) => x === str(p, "face")),
        num(p, "k"),
        str(p, "mode"),
      ),
    ),
  "coins.pattern": (p) => probability(sequences(["H", "T"], str(p, "pattern").length), (s) => s.join("") === str(p, "pattern")),
  "coins.first-head": (p) => probability(sequences(["heads", "tails"], num(p, "k")), (s) => s.indexOf(str(p, "face")) === num(p, "k") - 1),
  "coins.no-consecutive": (p) =>
    probability(sequences(["heads", "tails"], num(p, "n")), (s) => !s.some((x, i) => i > 0 && x === str(p, "face") && s[i - 1] === x)),
  "coins.same-or-alternating": (p) =>
    probability(sequences(["H", "T"], num(p, "n")), (s) =>
      str(p, "variant") === "same" ? s.every((x) => x === s[0]) : s.every((x, i) => i === 0 || x !== s[i - 1]),
    ),

  // dice
  "dice.sum-equals": (p) => probability(dicePairs(num(p, "sides")), ([a, b]) => a + b === num(p, "s")),
  "dice.sum-range": (p) => probability(dicePairs(num(p, "sides")), ([a, b]) => compareCount(a + b, num(p, "t"), str(p, "mode"))),
  "dice.doubles": (p) =>
    probability(dicePairs(num(p, "sides")), ([a, b]) => {
      const v = str(p, "variant");
      return v === "doubles" ? a === b : v === "not-doubles" ? a !== b : a === b && a + b > num(p, "t");
    }),
  "dice.at-least-one-face": (p) => probability(sequences(range1(6), num(p, "n")), (s) => s.includes(num(p, "face"))),
  "dice.max-min": (p) =>
    probability(dicePairs(num(p, "sides")), ([a, b]) => {
      const m = num(p, "m");
      return {
        "max-equals": Math.max(a, b) === m,
        "max-at-most": Math.max(a, b) <= m,
        "min-equals": Math.min(a, b) === m,
        "min-at-least": Math.min(a, b) >= m,
      }[str(p, "mode")]!;
    }),
  "dice.sum-property": (p) =>
    probability(dicePairs(num(p, "sides")), ([a, b]) => {
      const s = a + b;
      return {
        prime: isPrime(s),
        "multiple-of-3": s % 3 === 0,
        "multiple-of-4": s % 4 === 0,
        "multiple-of-5": s % 5 === 0,
        "perfect-square": [1, 4, 9, 16, 25].includes(s),
      }[str(p, "property")]!;
    }),

  // cards
  "cards.single": (p) =>
    probability(DECK, (c) => {
      switch (str(p, "event")) {
        case "suit":
          return c.suit === str(p, "suit");
        case "rank":
          return c.rank === str(p, "rank");
        case "face":
          return isFace(c);
        case "suit-face":
          return isFace(c) && c.suit === str(p, "suit");
        case "rank-or-suit":
          return c.rank === str(p, "rank") || c.suit === str(p, "suit");
        case "face-or-suit":
          return isFace(c) || c.suit === str(p, "suit");
        case "number-range": {
          const v = Number(c.rank);
          return v >= num(p, "lo") && v <= num(p, "hi");
        }
        case "color-or-rank":
          return (str(p, "color") === "red") === isRed(c) || c.rank === str(p, "rank");
        default:
          throw new Error(`unknown event ${p.event}`);
      }
    }),
  "cards.two": (p) =>
    probability(ordered(52, 2, num(p, "replace") === 1), ([i, j]) => {
      const a = DECK[i!]!,
        b = DECK[j!]!;
      switch (str(p, "event")) {
        case "both-suit":
          return a.suit === str(p, "suit") && b.suit === str(p, "suit");
        case "both-rank":
          return a.rank === str(p, "rank") && b.rank === str(p, "rank");
        case "both-face":
          return isFace(a) && isFace(b);
        case "same-suit":
          return a.suit === b.suit;
        case "same-rank":
          return a.rank === b.rank;
        case "first-then":
          return a.rank === str(p, "rank") && b.rank === str(p, "rank2");
        case "different-colors":
          return isRed(a) !== isRed(b);
        case "at-least-one-rank":
          return a.rank === str(p, "rank") || b.rank === str(p, "rank");
        default:
          throw new Error(`unknown event ${p.event}`);
      }
    }),
  "cards.three": (p) =>
    probability(threeCardHands(), (h) => {
      switch (str(p, "event")) {
        case "all-suit":
          return h.every((c) => c.suit === str(p, "suit"));
        case "all-rank":
          return h.every((c) => c.rank === str(p, "rank"));
        case "all-same-suit":
          return h.every((c) => c.suit === h[0]!.suit);
        case "all-red":
          return h.every(isRed);
        case "no-face":
          return !h.some(isFace);
        default:
          throw new Error(`unknown event ${p.event}`);
      }
    }),

  // urns
  "urns.two-draws": (p) => {
    const b = balls(nums(p, "counts")),
      i = typeof p.i === "number" ? p.i : -1; // -1: the event names no color
    return probability(
      ordered(b.length, 2, num(p, "replace") === 1).map(([x, y]) => [b[x!]!, b[y!]!] as const),
      ([x, y]) => {
        switch (str(p, "event")) {
          case "both":
            return x === i && y === i;
          case "exactly-one":
            return (x === i) !== (y === i);
          case "same-color":
            return x === y;
          case "different-colors":
            return x !== y;
          case "first-then":
            return x === i && y === num(p, "j");
          default:
            throw new Error(`unknown event ${p.event}`);
        }
      },
    );
  },
  "urns.hypergeometric": (p) => {
    const b = balls(nums(p, "counts"));
    return probability(combinations(b.length, num(p, "k")), (set) => count(set, (x) => b[x] === 0) === num(p, "j"));
  },
  "urns.repeated-draws": (p) => {
    const b = balls(nums(p, "counts"));
    return probability(ordered(b.length, num(p, "k"), true), (s) => count(s, (x) => b[x] === 0) === num(p, "j"));
  },

  // binomial
  "binomial.exact": (p) =>
    weightedProbability(weightedSequences(Array(num(p, "n")).fill(frac(p, "p"))), (s) => count(s, Boolean) === num(p, "k")),
  "binomial.at-least": (p) =>
    weightedProbability(weightedSequences(Array(num(p, "n")).fill(frac(p, "p"))), (s) =>
      compareCount(count(s, Boolean), num(p, "k"), str(p, "mode")),
    ),

  // at least one
  "at-least-one.independent": (p) => {
    const probs = (p.probs as readonly string[]).map((x) => Rational.parse(x)!);
    return weightedProbability(weightedSequences(probs), (s) => s.some(Boolean));
  },
  "at-least-one.repeated": (p) =>
    str(p, "context") === "die-high"
      ? probability(sequences(range1(6), num(p, "n")), (s) => s.some((x) => x >= num(p, "t")))
      : weightedProbability(weightedSequences(Array(num(p, "n")).fill(frac(p, "p"))), (s) => s.some(Boolean)),
  "at-least-one.defective": (p) => probability(combinations(num(p, "total"), num(p, "k")), (set) => set.some((x) => x < num(p, "bad"))),
  "at-least-one.shared": (p) =>
    probability(sequences(range1(str(p, "unit") === "month" ? 12 : 7), num(p, "k")), (s) => new Set(s).size < s.length),
  "at-least-one.matching": (p) => probability(permutations(num(p, "n")), (perm) => perm.some((x, i) => x === i)),

  // conditional
  "conditional.disease-test": (p) => {
    const prior = r(num(p, "prevalencePct"), 100),
      sens = r(num(p, "sensitivityPct"), 100),
      fp = r(num(p, "falsePositivePct"), 100);
    const space: Weighted<{ sick: boolean; positive: boolean }>[] = [
      { value: { sick: true, positive: true }, weight: prior.mul(sens) },
      { value: { sick: true, positive: false }, weight: prior.mul(sens.complement()) },
      { value: { sick: false, positive: true }, weight: prior.complement().mul(fp) },
      { value: { sick: false, positive: false }, weight: prior.complement().mul(fp.complement()) },
    ];
    return weightedProbability(
      space,
      (x) => x.sick,
      (x) => x.positive === (str(p, "result") === "positive"),
    );
  },
  "conditional.two-urns": (p) => {
    const choosers = str(p, "chooser") === "coin" ? uniform(["A", "B"]) : uniform(range1(6).map((f) => (f <= num(p, "t") ? "A" : "B")));
    const space = choosers.flatMap((u) =>
      uniform(balls(nums(p, u.value === "A" ? "a" : "b"))).map((ball) => ({
        value: { urn: u.value, color: ball.value },
        weight: u.weight.mul(ball.weight),
      })),
    );
    return weightedProbability(
      space,
      (x) => x.urn === "A",
      (x) => x.color === num(p, "drawn"),
    );
  },
  "conditional.dice": (p) => {
    const pairs = dicePairs(6);
    switch (str(p, "variant")) {
      case "sum-doubles":
        return probability(
          pairs,
          ([a, b]) => a === b,
          ([a, b]) => a + b === num(p, "s"),
        );
      case "sum-contains":
        return probability(
          pairs,
          ([a, b]) => a === num(p, "f") || b === num(p, "f"),
          ([a, b]) => a + b === num(p, "s"),
        );
      case "face-sum":
        return probability(
          pairs,
          ([a, b]) => a + b >= num(p, "t"),
          ([a, b]) => a === num(p, "f") || b === num(p, "f"),
        );
      default:
        throw new Error(`unknown variant ${p.variant}`);
    }
  },
  "conditional.children": (p) =>
    probability(
      sequences(["boy", "girl"], num(p, "n")),
      (s) => count(s, (x) => x === str(p, "sex")) === num(p, "j"),
      (s) => s.includes(str(p, "sex")),
    ),
  "conditional.cards": (p) => {
    const pairs = arrangements(52, 2).map(([i, j]) => [DECK[i!]!, DECK[j!]!] as const);
    const variant = str(p, "variant");
    if (variant === "second-same-category") {
      const inCategory = (c: Card) =>
        ({ suit: c.suit === p.suit, face: isFace(c), red: isRed(c), rank: c.rank === p.rank })[str(p, "category")]!;
      return probability(
        pairs,
        ([, b]) => inCategory(b),
        ([a]) => inCategory(a),
      );
    }
    const hit = (c: Card) => (variant === "both-given-one-rank" ? c.rank === p.rank : c.suit === p.suit);
    return probability(
      pairs,
      ([a, b]) => hit(a) && hit(b),
      ([a, b]) => hit(a) || hit(b),
    );
  },
  "conditional.which-coin": (p) => {
    const coins = [...Array(num(p, "fair")).fill(r(1, 2)), frac(p, "bias")] as Rational[];
    const special = coins.length - 1;
    const space = uniform(coins.map((_, i) => i)).flatMap((c) =>
      weightedSequences(Array(num(p, "n")).fill(coins[c.value]!)).map((s) => ({
        value: { coin: c.value, flips: s.value },
        weight: c.weight.mul(s.weight),
      })),
    );
    return weightedProbability(
      space,
      (x) => x.coin === special,
      (x) => x.flips.every(Boolean),
    );
  },

  // expectation
  "expectation.dice-sum": (p) => mean(sequences(range1(num(p, "sides")), num(p, "n")), (s) => s.reduce((a, b) => a + b, 0)),
  "expectation.game": (p) => {
    switch (str(p, "variant")) {
      case "threshold":
        return mean(range1(6), (f) => (f >= num(p, "h") ? num(p, "win") : -num(p, "lose")));
      case "face-value":
        return mean(range1(6), (f) => (f % 2 === 0 ? f : -num(p, "lose")));
      case "two-coins":
        return mean(sequences(["H", "T"], 2), (s) => [-num(p, "c"), num(p, "b"), num(p, "a")][count(s, (x) => x === "H")]!);
      default:
        throw new Error(`unknown variant ${p.variant}`);
    }
  },
  "expectation.indicators": (p) => {
    switch (str(p, "variant")) {
      case "heads":
        return weightedMean(weightedSequences(Array(num(p, "n")).fill(frac(p, "p"))), (s) => count(s, Boolean));
      case "distinct-faces":
        return mean(sequences(range1(6), num(p, "n")), (s) => new Set(s).size);
      case "fixed-points":
        return mean(permutations(num(p, "n")), (perm) => count(perm, (x, i) => x === i));
      case "adjacent-heads":
        return mean(sequences(["H", "T"], num(p, "n")), (s) => count(s, (x, i) => i > 0 && x === "H" && s[i - 1] === "H"));
      case "red-draws": {
        const b = balls(nums(p, "counts"));
        return mean(combinations(b.length, num(p, "k")), (set) => count(set, (x) => b[x] === 0));
      }
      case "empty-boxes":
        return mean(sequences(range1(num(p, "boxes")), num(p, "balls")), (s) => num(p, "boxes") - new Set(s).size);
      default:
        throw new Error(`unknown variant ${p.variant}`);
    }
  },
  "expectation.max-min": (p) => mean(dicePairs(num(p, "sides")), ([a, b]) => (str(p, "mode") === "max" ? Math.max(a, b) : Math.min(a, b))),
};

export function bruteForce(problem: ProbabilityProblem): Rational {
  const solve = BRUTE_FORCE[problem.kind];
  if (!solve) throw new Error(`no brute force for ${problem.kind}`);
  return solve(problem.params);
}
