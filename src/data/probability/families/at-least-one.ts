// "At least one": complements of independent failures, sampling without replacement, shared
// birthdays, and matching letters (inclusion–exclusion).
import { r, Rational } from "../rational.js";
import {
  capitalize,
  choose,
  factorial,
  type Family,
  listing,
  NICE_PROBABILITIES,
  powerText,
  type ProbabilityProblem,
  range,
  showFraction,
  word,
} from "../problem.js";
import type { Random } from "../random.js";

function problem(
  kind: string,
  params: ProbabilityProblem["params"],
  question: string,
  steps: string[],
  answer: Rational,
): ProbabilityProblem {
  return { family: "at-least-one", kind, params, question, steps, answer, asks: "probability" };
}

function independent(rng: Random): ProbabilityProblem {
  const m = rng.int(2, 4),
    context = rng.pick(["detectors", "archers", "students"] as const);
  const ps = Array.from({ length: m }, () => rng.pick(NICE_PROBABILITIES.filter((p) => p.compare(r(1, 2)) !== 0)));
  const list = listing(ps.map((p) => p.toString()));
  const question = {
    detectors: `A building has ${word(m)} smoke detectors that work independently. In a fire they go off with probabilities ${list} respectively. What is the probability that at least one of them goes off?`,
    archers: `${capitalize(word(m))} archers each shoot once at a target, independently. They hit it with probabilities ${list} respectively. What is the probability that the target is hit at least once?`,
    students: `${capitalize(word(m))} students try to solve a puzzle independently. They solve it with probabilities ${list} respectively. What is the probability that at least one of them solves it?`,
  }[context];
  const qs = ps.map((p) => p.complement());
  const none = qs.reduce((a, b) => a.mul(b), Rational.ONE);
  return problem(
    "at-least-one.independent",
    { context, probs: ps.map(String) },
    question,
    [
      "Use the complement: the event fails only if every one of them fails.",
      `The failure probabilities are ${ps.map((p, i) => `1 − ${p} = ${qs[i]}`).join(", ")}.`,
      `By independence, P(all fail) = ${qs.join(" × ")} = ${none}.`,
      `P(at least one) = 1 − ${none} = ${none.complement()}.`,
    ],
    none.complement(),
  );
}

function repeated(rng: Random): ProbabilityProblem {
  const context = rng.pick(["ticket", "coin", "die-high"] as const),
    n = rng.int(2, 5);
  let p: Rational, question: string, params: ProbabilityProblem["params"];
  if (context === "die-high") {
    const t = rng.int(2, 5);
    p = r(7 - t, 6);
    params = { context, n, t };
    question = `A fair six-sided die is rolled ${word(n)} times. What is the probability that at least one roll shows ${t} or more?`;
  } else {
    p = rng.pick(NICE_PROBABILITIES);
    params = { context, n, p: p.toString() };
    question =
      context === "ticket"
        ? `Each scratch card in a game wins with probability ${p}, independently of the others. You buy ${word(n)} cards. What is the probability that at least one of them wins?`
        : `A biased coin lands heads with probability ${p}. It is flipped ${word(n)} times. What is the probability of getting at least one head?`;
  }
  const q = p.complement(),
    none = q.pow(n);
  const steps =
    context === "die-high"
      ? [`One roll shows ${params.t} or more with probability ${7 - Number(params.t)}/6${p.den !== 6n ? ` = ${p}` : ""}.`]
      : [];
  steps.push(
    `Use the complement: no success in any of the ${n} independent trials.`,
    `One trial fails with probability 1 − ${p} = ${q}, so P(no success) = ${powerText(q.toString(), n)} = ${none}.`,
    `P(at least one) = 1 − ${none} = ${none.complement()}.`,
  );
  return problem("at-least-one.repeated", params, question, steps, none.complement());
}

function defective(rng: Random): ProbabilityProblem {
  const total = rng.int(8, 20),
    bad = rng.int(1, 4),
    k = rng.int(2, 4);
  const item = rng.pick(["light bulbs", "batteries", "eggs"] as const);
  const badWord = item === "eggs" ? "cracked" : "defective";
  const good = total - bad,
    noneCount = choose(good, k),
    all = choose(total, k);
  const none = r(noneCount, all);
  return problem(
    "at-least-one.defective",
    { total, bad, k, item },
    `A box of ${total} ${item} contains ${bad} ${badWord} one${bad === 1 ? "" : "s"}. ${capitalize(word(k))} ${item} are picked at random without replacement. What is the probability that at least one of them is ${badWord}?`,
    [
      `Use the complement: all ${k} picked are among the ${good} good ${item}.`,
      `P(none ${badWord}) = C(${good}, ${k}) / C(${total}, ${k}) = ${showFraction(noneCount, all)}.`,
      `P(at least one ${badWord}) = 1 − ${none} = ${none.complement()}.`,
    ],
    none.complement(),
  );
}

function shared(rng: Random): ProbabilityProblem {
  const unit = rng.pick(["month", "weekday"] as const);
  const days = unit === "month" ? 12 : 7,
    k = rng.int(2, unit === "month" ? 4 : 5);
  const question =
    unit === "month"
      ? `In a group of ${word(k)} people, each person is equally likely to be born in any of the 12 months, independently. What is the probability that at least two of them were born in the same month?`
      : `In a group of ${word(k)} people, each person is equally likely to be born on any of the 7 days of the week, independently. What is the probability that at least two of them were born on the same day of the week?`;
  const factors = range(0, k - 1).map((i) => days - i);
  const distinct = factors.reduce((a, b) => a * BigInt(b), 1n),
    all = BigInt(days) ** BigInt(k);
  const none = r(distinct, all);
  return problem(
    "at-least-one.shared",
    { unit, k },
    question,
    [
      `Use the complement: all ${k} people have different ${unit === "month" ? "months" : "days"}.`,
      `Count assignments with all different: ${factors.join(" × ")} = ${distinct}, out of ${days}^${k} = ${all} equally likely assignments.`,
      `P(all different) = ${showFraction(distinct, all)}.`,
      `P(at least two share) = 1 − ${none} = ${none.complement()}.`,
    ],
    none.complement(),
  );
}

function matching(rng: Random): ProbabilityProblem {
  const n = rng.int(3, 6);
  // Inclusion–exclusion: P(some letter fixed) = Σ_{j=1..n} (−1)^(j+1) / j!
  const terms = range(1, n).map((j) => r(j % 2 === 1 ? 1n : -1n, factorial(j)));
  const answer = terms.reduce((a, b) => a.add(b), Rational.ZERO);
  const series = terms.map((t, i) => (i === 0 ? t.toString() : t.num < 0n ? `− ${t.neg()}` : `+ ${t}`)).join(" ");
  return problem(
    "at-least-one.matching",
    { n },
    `${capitalize(word(n))} letters are put at random into ${word(n)} addressed envelopes, one letter per envelope. What is the probability that at least one letter ends up in its correct envelope?`,
    [
      `Let A_i be the event that letter i is in its own envelope. For any j specific letters, P(all j are correct) = (${n} − j)!/${n}!.`,
      `There are C(${n}, j) ways to pick the j letters, so the j-th inclusion–exclusion term is C(${n}, j) × (${n} − j)!/${n}! = 1/j!.`,
      `P(at least one) = ${range(1, n)
        .map((j) => `${j === 1 ? "" : j % 2 === 0 ? "− " : "+ "}1/${j}!`)
        .join(" ")} = ${series} = ${answer}.`,
    ],
    answer,
  );
}

export const atLeastOne: Family = {
  name: "at-least-one",
  templates: {
    "at-least-one.independent": independent,
    "at-least-one.repeated": repeated,
    "at-least-one.defective": defective,
    "at-least-one.shared": shared,
    "at-least-one.matching": matching,
  },
};
