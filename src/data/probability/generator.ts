// Seeded problem sets with the families mixed evenly and no repeated problems.
import { atLeastOne } from "./families/at-least-one.js";
import { binomial } from "./families/binomial.js";
import { cards } from "./families/cards.js";
import { coins } from "./families/coins.js";
import { conditional } from "./families/conditional.js";
import { dice } from "./families/dice.js";
import { expectation } from "./families/expectation.js";
import { urns } from "./families/urns.js";
import { type Family, FAMILIES, type FamilyName, type ProbabilityProblem, problemKey } from "./problem.js";
import { Random } from "./random.js";

export const FAMILY_GENERATORS: Readonly<Record<FamilyName, Family>> = {
  coins,
  dice,
  cards,
  urns,
  binomial,
  "at-least-one": atLeastOne,
  conditional,
  expectation,
};

/** Every template kind, e.g. "coins.exact-heads". */
export const TEMPLATE_KINDS: readonly string[] = FAMILIES.flatMap((f) => Object.keys(FAMILY_GENERATORS[f].templates));

/** One problem of the given family, from a template picked at random. */
export function generateProblem(rng: Random, family: FamilyName): ProbabilityProblem {
  const templates = FAMILY_GENERATORS[family].templates;
  const kind = rng.pick(Object.keys(templates).sort());
  return templates[kind]!(rng);
}

export interface GenerateOptions {
  seed: number;
  count: number;
  /** Families to mix (evenly, round-robin before shuffling); all of them by default. */
  families?: readonly FamilyName[];
  /** Problems already used elsewhere (e.g. the training set): skipped by key and by question text. */
  exclude?: readonly ProbabilityProblem[];
}

/** Tries per problem before concluding that a family has run out of new problems. */
const MAX_TRIES = 1000;

/** `count` distinct problems; the same options give the same problems on every machine. */
export function generateProblems(options: GenerateOptions): ProbabilityProblem[] {
  const families = options.families ?? FAMILIES;
  if (families.length === 0) throw new Error("generateProblems: no families given");
  const rng = new Random(options.seed);
  const seen = new Set<string>();
  for (const p of options.exclude ?? []) seen.add(problemKey(p)).add(p.question);
  const slots = rng.shuffle(Array.from({ length: options.count }, (_, i) => families[i % families.length]!));
  return slots.map((family) => {
    for (let attempt = 0; attempt < MAX_TRIES; attempt++) {
      const p = generateProblem(rng, family);
      const key = problemKey(p);
      if (seen.has(key) || seen.has(p.question)) continue;
      seen.add(key).add(p.question);
      return p;
    }
    throw new Error(`generateProblems: could not find a new "${family}" problem after ${MAX_TRIES} tries (ask for fewer problems)`);
  });
}
