import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { extractAnswer, extractBoxed } from "../../src/data/answer.js";
import {
  buildAccuracyProblems,
  buildProbabilityProblems,
  corpusProblems,
  PROBABILITY_DATA,
  serializeDataSet,
} from "../../src/data/probability/datasets.js";
import { FAMILY_GENERATORS, generateProblems, TEMPLATE_KINDS } from "../../src/data/probability/generator.js";
import { FAMILIES, type ProbabilityProblem, problemKey, solutionText } from "../../src/data/probability/problem.js";
import { BRUTE_FORCE, bruteForce } from "./probability-brute-force.js";
import { Random } from "../../src/data/probability/random.js";

const repoFile = (path: string) => readFileSync(new URL(`../../../${path}`, import.meta.url), "utf8");

// Problems beyond the shipped data: 60 per family, plus up to 150 distinct ones straight from each
// template (so rarely picked variants are checked too), from seeds used nowhere else.
const sampled = [...generateProblems({ seed: 7, count: 60 * FAMILIES.length }), ...perTemplate(150)];
const shipped = buildProbabilityProblems();

function perTemplate(count: number): ProbabilityProblem[] {
  const rng = new Random(11),
    out: ProbabilityProblem[] = [];
  for (const family of FAMILIES)
    for (const template of Object.values(FAMILY_GENERATORS[family].templates)) {
      const seen = new Set<string>();
      for (let i = 0; i < count; i++) {
        const p = template(rng);
        if (!seen.has(problemKey(p))) out.push(p);
        seen.add(problemKey(p));
      }
    }
  return out;
}

function assertBruteForceAgrees(problems: readonly ProbabilityProblem[]): void {
  for (const p of problems) {
    const exact = bruteForce(p);
    assert.ok(
      exact.equals(p.answer),
      `${p.kind} ${JSON.stringify(p.params)}: generator says ${p.answer}, enumeration gives ${exact}\n${p.question}`,
    );
  }
}

describe("probability generator", () => {
  it("is deterministic: the same seed gives the same problems", () => {
    const a = generateProblems({ seed: 123, count: 40 }),
      b = generateProblems({ seed: 123, count: 40 });
    assert.deepEqual(a.map(solutionText), b.map(solutionText));
    assert.deepEqual(
      a.map((p) => p.question),
      b.map((p) => p.question),
    );
    const c = generateProblems({ seed: 124, count: 40 });
    assert.notDeepEqual(
      a.map((p) => p.question),
      c.map((p) => p.question),
    );
  });

  it("mixes the families evenly", () => {
    const perFamily = new Map<string, number>();
    for (const p of generateProblems({ seed: 5, count: 81 })) perFamily.set(p.family, (perFamily.get(p.family) ?? 0) + 1);
    assert.equal(perFamily.size, FAMILIES.length);
    for (const n of perFamily.values()) assert.ok(n === 10 || n === 11, `family count ${n}`);
  });

  it("restricts to the requested families and never repeats a problem", () => {
    const ps = generateProblems({ seed: 9, count: 50, families: ["dice"] });
    assert.ok(ps.every((p) => p.family === "dice"));
    assert.equal(new Set(ps.map(problemKey)).size, ps.length);
    assert.equal(new Set(ps.map((p) => p.question)).size, ps.length);
  });

  it("says so when a family runs out of new problems", () => {
    assert.throws(() => generateProblems({ seed: 1, count: 5000, families: ["coins"] }), /could not find a new "coins" problem/);
  });

  it("has a brute-force check for every template, and the sample covers every template", () => {
    assert.deepEqual([...TEMPLATE_KINDS].sort(), Object.keys(BRUTE_FORCE).sort());
    const seen = new Set([...sampled, ...shipped.train, ...shipped.eval].map((p) => p.kind));
    for (const kind of TEMPLATE_KINDS) assert.ok(seen.has(kind), `no sampled problem of kind ${kind}`);
    for (const f of FAMILIES) assert.ok(Object.keys(FAMILY_GENERATORS[f].templates).length >= 2, `${f} has too few templates`);
  });

  for (const family of FAMILIES) {
    it(`${family}: every answer equals an exact enumeration of the sample space`, () => {
      const mine = [...sampled, ...shipped.train, ...shipped.eval].filter((p) => p.family === family);
      assert.ok(mine.length >= 60);
      assertBruteForceAgrees(mine);
    });
  }

  it("the brute-force check catches a wrong answer", () => {
    const p = sampled.find((x) => x.kind === "dice.sum-equals")!;
    assert.throws(() => assertBruteForceAgrees([{ ...p, answer: p.answer.add(p.answer) }]), /enumeration gives/);
  });

  it("writes well-formed text: a question, several steps, the answer boxed once at the end", () => {
    for (const p of sampled) {
      assert.match(p.question, /^[A-Z].*\?$/s, p.question);
      assert.ok(p.steps.length >= 1 && p.steps.every((s) => s.trim().length > 0), p.kind);
      const text = solutionText(p);
      assert.doesNotMatch(`${p.question}\n${text}`, /undefined|NaN|null|\[object|Infinity/, p.kind);
      assert.equal(text.match(/\\boxed\{/g)?.length, 1);
      assert.match(text, /\\boxed\{-?\d+(\/\d+)?\}\.$/);
      assert.equal(extractBoxed(text), p.answer.toString());
      if (p.asks === "probability") assert.ok(p.answer.compare(p.answer.mul(p.answer)) >= 0, `probability ${p.answer} out of [0, 1]`);
    }
  });
});

describe("probability data files", () => {
  const train = JSON.parse(repoFile(PROBABILITY_DATA.trainFile)) as { question: string; answer: string }[];
  const evalSet = JSON.parse(repoFile(PROBABILITY_DATA.evalFile)) as { question: string; answer: string }[];

  it("are exactly what the generator writes for the fixed seeds", () => {
    assert.equal(repoFile(PROBABILITY_DATA.trainFile), serializeDataSet(shipped.train));
    assert.equal(repoFile(PROBABILITY_DATA.evalFile), serializeDataSet(shipped.eval));
  });

  it("have 81 training items and at least 200 held-out items, in the {question, answer} shape", () => {
    assert.equal(train.length, 81);
    assert.ok(evalSet.length >= 200);
    for (const item of [...train, ...evalSet]) assert.deepEqual(Object.keys(item), ["question", "answer"]);
  });

  it("the accuracy set: 1,000 problems, none in train, eval or the embedded model's pretraining corpus, exactly as generated", () => {
    const accuracy = buildAccuracyProblems();
    assert.equal(repoFile(PROBABILITY_DATA.accuracyFile), serializeDataSet(accuracy));
    assert.equal(accuracy.length, 1000);
    const seen = new Set(
      [...shipped.train, ...shipped.eval, ...corpusProblems(PROBABILITY_DATA.corpusSize, PROBABILITY_DATA.corpusSeed)].flatMap((p) => [
        problemKey(p),
        p.question,
      ]),
    );
    assert.deepEqual(
      accuracy.filter((p) => seen.has(problemKey(p)) || seen.has(p.question)),
      [],
    );
  });

  it("share no question between train and eval", () => {
    const trainQuestions = new Set(train.map((x) => x.question));
    assert.equal(trainQuestions.size, train.length);
    assert.equal(new Set(evalSet.map((x) => x.question)).size, evalSet.length);
    assert.deepEqual(
      evalSet.filter((x) => trainQuestions.has(x.question)),
      [],
    );
    const trainKeys = new Set(shipped.train.map(problemKey));
    assert.deepEqual(
      shipped.eval.filter((p) => trainKeys.has(problemKey(p))),
      [],
    );
  });

  it("box an answer that checks against the generator's exact answer", () => {
    const problems = [...shipped.train, ...shipped.eval];
    [...train, ...evalSet].forEach((item, i) => {
      const got = extractAnswer(item.answer);
      assert.ok(got?.equals(problems[i]!.answer), `item ${i}: ${item.answer.slice(-40)}`);
    });
  });

  it("mix the families evenly", () => {
    for (const set of [shipped.train, shipped.eval]) {
      const counts = FAMILIES.map((f) => set.filter((p) => p.family === f).length);
      assert.ok(Math.max(...counts) - Math.min(...counts) <= 1, counts.join(","));
    }
  });
});
