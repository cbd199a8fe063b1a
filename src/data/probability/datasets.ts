// The probability data sets shipped in data/probability/: their seeds, sizes and file contents.
import { generateProblems } from "./generator.js";
import { type ProbabilityProblem, solutionText } from "./problem.js";

/** Fixed seeds and sizes: changing any of them changes the committed files. */
export const PROBABILITY_DATA = {
  trainSeed: 81,
  evalSeed: 20_250_200,
  /** As in the reference experiment: 81 question/answer pairs. */
  trainSize: 81,
  evalSize: 240,
  trainFile: "data/probability/train.json",
  evalFile: "data/probability/eval.json",
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

/** The exact text of a data set file: a JSON array of {question, answer}, two-space indented. */
export function serializeDataSet(problems: readonly ProbabilityProblem[]): string {
  return `${JSON.stringify(problems.map(toQuestionAnswer), null, 2)}\n`;
}
