// The probability data sets shipped in data/probability/: their seeds, sizes and file contents.
import { generateProblem, generateProblems } from "./generator.js";
import { FAMILIES, type ProbabilityProblem, problemKey, solutionText } from "./problem.js";
import { Random } from "./random.js";

/** Fixed seeds and sizes: changing any of them changes the committed files. */
export const PROBABILITY_DATA = {
  trainSeed: 81,
  evalSeed: 20_250_200,
  /** As in the reference experiment: 81 question/answer pairs. */
  trainSize: 81,
  evalSize: 240,
  trainFile: "data/probability/train.json",
  evalFile: "data/probability/eval.json",
  /** The accuracy set: questions answered by greedy decoding, enough that arms' accuracies can be told apart. */
  accuracySeed: 20_261_201,
  accuracySize: 1000,
  accuracyFile: "data/probability/accuracy.json",
  /** The embedded model's pretraining corpus (models/tiny-prob was made from it: see its README). */
  corpusSeed: 2024,
  corpusSize: 16_000,
} as const;

export interface QuestionAnswer {
  question: string;
  /** The full step-by-step solution, ending in \boxed{…}. */
  answer: string;
}

export function toQuestionAnswer(p: ProbabilityProblem): QuestionAnswer {
  return { question: p.question, answer: solutionText(p) };
}

/** The training and held-out problems; eval shares no problem (or question text) with train. */
export function buildProbabilityProblems(): { train: ProbabilityProblem[]; eval: ProbabilityProblem[] } {
  const train = generateProblems({ seed: PROBABILITY_DATA.trainSeed, count: PROBABILITY_DATA.trainSize });
  const evalSet = generateProblems({ seed: PROBABILITY_DATA.evalSeed, count: PROBABILITY_DATA.evalSize, exclude: train });
  return { train, eval: evalSet };
}

/** Problems for a pretraining corpus; repeats are fine, the shipped train and eval questions are not. */
export function corpusProblems(count: number, seed: number): ProbabilityProblem[] {
  const { train, eval: held } = buildProbabilityProblems();
  const banned = new Set([...train, ...held].flatMap((p) => [problemKey(p), p.question]));
  const rng = new Random(seed);
  const out: ProbabilityProblem[] = [];
  for (let i = 0; out.length < count; i++) {
    const p = generateProblem(rng, FAMILIES[i % FAMILIES.length]);
    if (!banned.has(problemKey(p)) && !banned.has(p.question)) out.push(p);
  }
  return out;
}

/**
 * The accuracy problems: distinct, and none in the training set, the held-out set or the embedded
 * model's pretraining corpus. The families take turns; one whose new problems run out (the corpus
 * used most dice questions, say) drops out of the rotation, so the mix is as even as the unused
 * problems allow.
 */
export function buildAccuracyProblems(): ProbabilityProblem[] {
  const { train, eval: held } = buildProbabilityProblems();
  const corpus = corpusProblems(PROBABILITY_DATA.corpusSize, PROBABILITY_DATA.corpusSeed);
  const seen = new Set([...train, ...held, ...corpus].flatMap((p) => [problemKey(p), p.question]));
  const rng = new Random(PROBABILITY_DATA.accuracySeed);
  const exhausted = new Set<string>();
  const out: ProbabilityProblem[] = [];
  for (let i = 0; out.length < PROBABILITY_DATA.accuracySize; i++) {
    const family = FAMILIES[i % FAMILIES.length];
    if (exhausted.has(family)) continue;
    let found: ProbabilityProblem | null = null;
    for (let attempt = 0; attempt < 1000 && !found; attempt++) {
      const p = generateProblem(rng, family);
      if (!seen.has(problemKey(p)) && !seen.has(p.question)) found = p;
    }
    if (!found) {
      exhausted.add(family);
      if (exhausted.size === FAMILIES.length) throw new Error(`buildAccuracyProblems: only ${out.length} new problems exist`);
      continue;
    }
    seen.add(problemKey(found)).add(found.question);
    out.push(found);
  }
  return out;
}

/** The exact text of a data set file: a JSON array of {question, answer}, two-space indented. */
export function serializeDataSet(problems: readonly ProbabilityProblem[]): string {
  return `${JSON.stringify(problems.map(toQuestionAnswer), null, 2)}\n`;
}
