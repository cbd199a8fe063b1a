// Seeded probability problems with exact answers.
export { Rational, r, sum } from "./rational.js";
export { Random } from "./random.js";
export { FAMILIES, type FamilyName, type ProbabilityProblem, type ProblemParams, problemKey, solutionText } from "./problem.js";
export { FAMILY_GENERATORS, generateProblem, generateProblems, type GenerateOptions, TEMPLATE_KINDS } from "./generator.js";
export {
  buildAccuracyProblems,
  buildProbabilityProblems,
  corpusProblems,
  PROBABILITY_DATA,
  type QuestionAnswer,
  serializeDataSet,
  toQuestionAnswer,
} from "./datasets.js";
