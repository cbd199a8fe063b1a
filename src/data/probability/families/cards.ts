// A standard 52-card deck: one card, two cards (with or without replacement), three cards.
import { r } from "../rational.js";
import { type Family, type ProbabilityProblem, showFraction } from "../problem.js";
import type { Random } from "../random.js";

export const SUITS = ["hearts", "diamonds", "clubs", "spades"] as const;
export const RANKS = ["2", "3", "4", "5", "6", "7", "8", "9", "10", "J", "Q", "K", "A"] as const;
const RANK_NAMES: Record<string, string> = {
  "2": "two",
  "3": "three",
  "4": "four",
  "5": "five",
  "6": "six",
  "7": "seven",
  "8": "eight",
  "9": "nine",
  "10": "ten",
  J: "jack",
  Q: "queen",
  K: "king",
  A: "ace",
};
const DECK_FACTS =
  "A standard deck has 52 cards: 13 ranks (2–10, jack, queen, king, ace) in each of 4 suits; hearts and diamonds are red, clubs and spades are black, and the 12 face cards are the jacks, queens and kings.";

export const rankName = (rank: string) => RANK_NAMES[rank]!;
export const aRank = (rank: string) => `${/^[ae]/.test(rankName(rank)) ? "an" : "a"} ${rankName(rank)}`;
export const rankPlural = (rank: string) => (rank === "6" ? "sixes" : `${rankName(rank)}s`);
export const aSuit = (suit: string) => `a ${suit.slice(0, -1)}`; // "a heart"

function problem(
  kind: string,
  params: ProbabilityProblem["params"],
  question: string,
  steps: string[],
  num: bigint | number,
  den: bigint | number,
): ProbabilityProblem {
  return { family: "cards", kind, params, question, steps, answer: r(num, den), asks: "probability" };
}

function singleCard(rng: Random): ProbabilityProblem {
  const intro = rng.pick([
    "A card is drawn at random from a standard 52-card deck.",
    "You pick one card at random from a well-shuffled standard deck of 52 cards.",
  ]);
  const event = rng.pick(["suit", "rank", "face", "suit-face", "rank-or-suit", "face-or-suit", "number-range", "color-or-rank"] as const);
  const suit = rng.pick(SUITS),
    rank = rng.pick(RANKS);
  let params: ProbabilityProblem["params"], what: string, counting: string, ways: number;
  switch (event) {
    case "suit":
      [params, what, ways, counting] = [{ event, suit }, aSuit(suit), 13, `There are 13 ${suit}.`];
      break;
    case "rank":
      [params, what, ways, counting] = [{ event, rank }, aRank(rank), 4, `There are 4 ${rankPlural(rank)}, one in each suit.`];
      break;
    case "face":
      [params, what, ways, counting] = [
        { event },
        "a face card (jack, queen or king)",
        12,
        "There are 3 face cards in each of the 4 suits: 12 in all.",
      ];
      break;
    case "suit-face":
      [params, what, ways, counting] = [
        { event, suit },
        `a face card of ${suit}`,
        3,
        `The face cards of ${suit} are its jack, queen and king: 3 cards.`,
      ];
      break;
    case "rank-or-suit": {
      [params, what, ways] = [{ event, rank, suit }, `${aRank(rank)} or ${aSuit(suit)} (or both)`, 16];
      counting = `By inclusion–exclusion: 4 ${rankPlural(rank)} + 13 ${suit} − 1 card that is both (the ${rankName(rank)} of ${suit}) = 16 cards.`;
      break;
    }
    case "face-or-suit":
      [params, what, ways] = [{ event, suit }, `a face card or ${aSuit(suit)} (or both)`, 22];
      counting = `By inclusion–exclusion: 12 face cards + 13 ${suit} − 3 face cards of ${suit} = 22 cards.`;
      break;
    case "number-range": {
      const lo = rng.int(2, 9),
        hi = rng.int(lo + 1, 10);
      const n = hi - lo + 1;
      [params, what, ways] = [{ event, lo, hi }, `a number card from ${lo} to ${hi} inclusive`, 4 * n];
      counting = `The ranks ${lo} to ${hi} are ${n} ranks, with 4 cards each: ${n} × 4 = ${4 * n} cards.`;
      break;
    }
    case "color-or-rank": {
      const color = rng.pick(["red", "black"] as const);
      [params, what, ways] = [{ event, color, rank }, `a ${color} card or ${aRank(rank)} (or both)`, 28];
      counting = `By inclusion–exclusion: 26 ${color} cards + 4 ${rankPlural(rank)} − 2 ${color} ${rankPlural(rank)} = 28 cards.`;
      break;
    }
  }
  return problem(
    "cards.single",
    params,
    `${intro} What is the probability that it is ${what}?`,
    [DECK_FACTS, counting, `Every card is equally likely, so P = ${showFraction(ways, 52)}.`],
    ways,
    52,
  );
}

/** Product of two sequential draw probabilities, with the work shown. */
function twoStep(first: [number, number], second: [number, number], why: [string, string]): { steps: string[]; num: number; den: number } {
  const num = first[0] * second[0],
    den = first[1] * second[1];
  return {
    steps: [
      `${why[0]}: ${first[0]}/${first[1]}.`,
      `${why[1]}: ${second[0]}/${second[1]}.`,
      `Multiply: P = ${first[0]}/${first[1]} × ${second[0]}/${second[1]} = ${showFraction(num, den)}.`,
    ],
    num,
    den,
  };
}

function twoCards(rng: Random): ProbabilityProblem {
  const replace = rng.int(0, 1),
    d = replace ? 0 : 1; // d: cards removed before the second draw
  const intro = replace
    ? "A card is drawn at random from a standard 52-card deck, put back, and the deck is reshuffled before a second card is drawn."
    : "Two cards are drawn one after the other, without replacement, from a well-shuffled standard 52-card deck.";
  const left = replace ? "The first card was put back, so the deck is full again" : "One card is gone";
  const event = rng.pick([
    "both-suit",
    "both-rank",
    "both-face",
    "same-suit",
    "same-rank",
    "first-then",
    "different-colors",
    "at-least-one-rank",
  ] as const);
  const suit = rng.pick(SUITS),
    rank = rng.pick(RANKS);
  const deck2 = 52 - d;
  let params: ProbabilityProblem["params"], what: string, steps: string[], num: number, den: number;
  const finish = (w: string, p: ProbabilityProblem["params"], t: { steps: string[]; num: number; den: number }) => {
    [what, params, steps, num, den] = [w, p, t.steps, t.num, t.den];
  };
  switch (event) {
    case "both-suit":
      finish(
        `both cards are ${suit}`,
        { event, replace, suit },
        twoStep(
          [13, 52],
          [13 - d, deck2],
          [
            `P(first card is ${aSuit(suit)}) = 13 ${suit} out of 52`,
            `${left}; P(second is ${aSuit(suit)}) = ${13 - d} ${suit} out of ${deck2}`,
          ],
        ),
      );
      break;
    case "both-rank":
      finish(
        `both cards are ${rankPlural(rank)}`,
        { event, replace, rank },
        twoStep(
          [4, 52],
          [4 - d, deck2],
          [`P(first card is ${aRank(rank)}) = 4 out of 52`, `${left}; P(second is ${aRank(rank)}) = ${4 - d} out of ${deck2}`],
        ),
      );
      break;
    case "both-face":
      finish(
        "both cards are face cards (jack, queen or king)",
        { event, replace },
        twoStep(
          [12, 52],
          [12 - d, deck2],
          [
            "There are 12 face cards, so P(first is a face card) = 12 out of 52",
            `${left}; P(second is a face card) = ${12 - d} out of ${deck2}`,
          ],
        ),
      );
      break;
    case "first-then": {
      const rank2 = rng.pick(RANKS.filter((x) => x !== rank));
      finish(
        `the first card is ${aRank(rank)} and the second card is ${aRank(rank2)}`,
        { event, replace, rank, rank2 },
        twoStep(
          [4, 52],
          [4, deck2],
          [
            `P(first card is ${aRank(rank)}) = 4 out of 52`,
            `${left}, and all 4 ${rankPlural(rank2)} are still there; P(second is ${aRank(rank2)}) = 4 out of ${deck2}`,
          ],
        ),
      );
      break;
    }
    case "same-suit":
    case "same-rank":
    case "different-colors": {
      const [w, good, kindWord] =
        event === "same-suit"
          ? ["both cards have the same suit", 13 - d, "cards of the first card's suit"]
          : event === "same-rank"
            ? ["both cards have the same rank", 4 - d, "cards of the first card's rank"]
            : ["the two cards have different colors", 26, "cards of the other color"];
      [what, params, num, den] = [w, { event, replace }, good, deck2];
      steps = [
        "The first card can be anything; only the second card has to match the condition.",
        `${left}, and ${good} of the ${deck2} cards in the deck are ${kindWord}.`,
        `P = ${showFraction(good, deck2)}.`,
      ];
      break;
    }
    case "at-least-one-rank": {
      const none = 48 * (48 - d),
        all = 52 * deck2;
      [what, params, num, den] = [`at least one of the two cards is ${aRank(rank)}`, { event, replace, rank }, all - none, all];
      steps = [
        `Use the complement: no ${rankName(rank)} at all.`,
        `P(first is not ${aRank(rank)}) = 48/52. ${left}, so P(second is not ${aRank(rank)}) = ${48 - d}/${deck2}.`,
        `P(no ${rankName(rank)}) = 48/52 × ${48 - d}/${deck2} = ${showFraction(none, all)}.`,
        `P(at least one ${rankName(rank)}) = 1 − ${r(none, all)} = ${r(all - none, all)}.`,
      ];
      break;
    }
  }
  return problem("cards.two", params!, `${intro} What is the probability that ${what!}?`, steps!, num!, den!);
}

function threeCards(rng: Random): ProbabilityProblem {
  const event = rng.pick(["all-suit", "all-same-suit", "all-red", "no-face", "all-rank"] as const);
  const suit = rng.pick(SUITS),
    rank = rng.pick(RANKS);
  const intro = "Three cards are dealt without replacement from a well-shuffled standard 52-card deck.";
  const seq = (a: number, b: number, c: number) => ({
    num: a * b * c,
    den: 52 * 51 * 50,
    line: `P = ${a}/52 × ${b}/51 × ${c}/50 = ${showFraction(a * b * c, 52 * 51 * 50)}.`,
  });
  let params: ProbabilityProblem["params"], what: string, steps: string[], res: { num: number; den: number };
  switch (event) {
    case "all-suit": {
      const s = seq(13, 12, 11);
      [params, what, res] = [{ event, suit }, `all three are ${suit}`, s];
      steps = [
        `Deal the cards one at a time. There are 13 ${suit}; each card dealt leaves one fewer ${suit.slice(0, -1)} and one fewer card.`,
        s.line,
      ];
      break;
    }
    case "all-rank": {
      const s = seq(4, 3, 2);
      [params, what, res] = [{ event, rank }, `all three are ${rankPlural(rank)}`, s];
      steps = [
        `Deal the cards one at a time. There are 4 ${rankPlural(rank)}; each card dealt leaves one fewer ${rankName(rank)} and one fewer card.`,
        s.line,
      ];
      break;
    }
    case "all-red": {
      const s = seq(26, 25, 24);
      [params, what, res] = [{ event }, "all three are red", s];
      steps = [
        "Deal the cards one at a time. There are 26 red cards; each card dealt leaves one fewer red card and one fewer card.",
        s.line,
      ];
      break;
    }
    case "no-face": {
      const s = seq(40, 39, 38);
      [params, what, res] = [{ event }, "none of them is a face card (jack, queen or king)", s];
      steps = [
        "There are 52 − 12 = 40 cards that are not face cards.",
        "Deal the cards one at a time; each non-face card dealt leaves one fewer non-face card and one fewer card.",
        s.line,
      ];
      break;
    }
    case "all-same-suit": {
      const num = 12 * 11,
        den = 51 * 50;
      [params, what, res] = [{ event }, "all three have the same suit", { num, den }];
      steps = [
        "The first card can be anything; the other two must match its suit.",
        "12 cards of that suit remain among 51, then 11 among 50.",
        `P = 12/51 × 11/50 = ${showFraction(num, den)}.`,
      ];
      break;
    }
  }
  return problem("cards.three", params!, `${intro} What is the probability that ${what!}?`, steps!, res!.num, res!.den);
}

export const cards: Family = {
  name: "cards",
  templates: { "cards.single": singleCard, "cards.two": twoCards, "cards.three": threeCards },
};
