// Independent repeated trials with success probability p: exactly k, at least / at most k.
import { type Rational, r, sum } from "../rational.js";
import { capitalize, choose, type Family, NICE_PROBABILITIES, powerText, type ProbabilityProblem, range, word } from "../problem.js";
import type { Random } from "../random.js";

/** One binomial term C(n, j) p^j q^(n−j), with the arithmetic written out. */
export function binomialTerm(n: number, j: number, p: Rational): { value: Rational; text: string } {
  const q = p.complement(),
    c = choose(n, j);
  const value = r(c)
    .mul(p.pow(j))
    .mul(q.pow(n - j));
  const symbolic = [`C(${n}, ${j})`, powerText(p.toString(), j), powerText(q.toString(), n - j)].filter((f) => f !== "1");
  const numeric = [`${c}`, ...(j > 0 ? [p.pow(j).toString()] : []), ...(n - j > 0 ? [q.pow(n - j).toString()] : [])];
  return { value, text: `P(X = ${j}) = ${symbolic.join(" × ")} = ${numeric.join(" × ")} = ${value}` };
}

interface Story {
  intro: string;
  trials: string;
  success: string;
  /** The end of the question: "she makes at least 2 of them". */
  ask: (phrase: string, k: number) => string;
}
const verb = (k: number, one: string, many: string) => (k === 1 ? one : many);

const CONTEXTS = ["coin", "free-throw", "quiz", "seeds", "defects"] as const;
type Context = (typeof CONTEXTS)[number];

function story(context: Context, n: number, p: Rational): Story {
  switch (context) {
    case "coin":
      return {
        intro: `A biased coin lands heads with probability ${p}. It is flipped ${word(n)} times.`,
        trials: "flips",
        success: "heads",
        ask: (ph, k) => `of getting ${ph} ${k} ${verb(k, "head", "heads")}`,
      };
    case "free-throw":
      return {
        intro: `A basketball player makes each free throw with probability ${p}, independently of the others. She attempts ${word(n)} free throws.`,
        trials: "free throws",
        success: "made free throws",
        ask: (ph, k) => `that she makes ${ph} ${k} of them`,
      };
    case "quiz":
      return {
        intro: `A quiz has ${word(n)} multiple-choice questions, each with ${word(Number(p.den))} options of which exactly one is correct. A student guesses every answer at random.`,
        trials: "questions",
        success: "correct answers",
        ask: (ph, k) => `that ${ph} ${k} of the answers ${verb(k, "is", "are")} correct`,
      };
    case "seeds":
      return {
        intro: `Each seed in a packet germinates with probability ${p}, independently of the others. ${capitalize(word(n))} seeds are planted.`,
        trials: "seeds",
        success: "seeds that germinate",
        ask: (ph, k) => `that ${ph} ${k} of them ${verb(k, "germinates", "germinate")}`,
      };
    case "defects":
      return {
        intro: `A machine makes a defective part with probability ${p}, independently for each part. It makes a batch of ${word(n)} parts.`,
        trials: "parts",
        success: "defective parts",
        ask: (ph, k) => `that ${ph} ${k} of the parts ${verb(k, "is", "are")} defective`,
      };
  }
}

function drawSetting(rng: Random, nLo: number, nHi: number): { context: Context; p: Rational; n: number } {
  const context = rng.pick(CONTEXTS),
    n = rng.int(nLo, nHi);
  const p =
    context === "quiz"
      ? r(1, rng.int(2, 5))
      : context === "defects"
        ? rng.pick([r(1, 20), r(1, 10), r(1, 5), r(1, 4), r(3, 10)]) // defects are rare
        : rng.pick(NICE_PROBABILITIES);
  return { context, p, n };
}

function setupStep(s: Story, n: number, p: Rational): string {
  return `Let X be the number of ${s.success}. The ${n} ${s.trials} are independent with success probability p = ${p}, so X is binomial with n = ${n}, p = ${p}, and P(X = j) = C(${n}, j) p^j (1 − p)^(${n} − j).`;
}

function exact(rng: Random): ProbabilityProblem {
  const { context, p, n } = drawSetting(rng, 2, 6);
  const k = rng.int(1, n),
    s = story(context, n, p),
    term = binomialTerm(n, k, p); // k = 0 reads badly; "at most" covers it
  return {
    family: "binomial",
    kind: "binomial.exact",
    params: { context, p: p.toString(), n, k },
    question: `${s.intro} What is the probability ${s.ask("exactly", k)}?`,
    steps: [setupStep(s, n, p), `${term.text}.`],
    answer: term.value,
    asks: "probability",
  };
}

function atLeast(rng: Random): ProbabilityProblem {
  const { context, p, n } = drawSetting(rng, 2, 5);
  const k = rng.int(1, n - 1),
    mode = rng.pick(["at-least", "at-most"] as const),
    s = story(context, n, p);
  const wanted = mode === "at-least" ? range(k, n) : range(0, k);
  const other = mode === "at-least" ? range(0, k - 1) : range(k + 1, n);
  const useComplement = other.length < wanted.length;
  const listed = (useComplement ? other : wanted).map((j) => binomialTerm(n, j, p));
  const listedSum = sum(listed.map((t) => t.value));
  const answer = useComplement ? listedSum.complement() : listedSum;
  const phrase = mode === "at-least" ? "at least" : "at most";
  const steps = [setupStep(s, n, p)];
  if (useComplement) steps.push(`"${capitalize(phrase)} ${k}" is the complement of X = ${other.join(" or ")}, which has fewer terms.`);
  else steps.push(`"${capitalize(phrase)} ${k}" means X = ${wanted.join(", ")}.`);
  steps.push(...listed.map((t) => `${t.text}.`));
  const adding = listed.length > 1 ? `${listed.map((t) => t.value.toString()).join(" + ")} = ${listedSum}` : `${listedSum}`;
  steps.push(useComplement ? `P = 1 − (${adding}) = ${answer}.` : `P = ${adding}.`);
  return {
    family: "binomial",
    kind: "binomial.at-least",
    params: { context, p: p.toString(), n, k, mode },
    question: `${s.intro} What is the probability ${s.ask(phrase, k)}?`,
    steps,
    answer,
    asks: "probability",
  };
}

export const binomial: Family = {
  name: "binomial",
  templates: { "binomial.exact": exact, "binomial.at-least": atLeast },
};
