import assert from "node:assert/strict";
import { test } from "node:test";
import { lrAt, lrFactor, type Schedule } from "../../src/train/schedule.js";

const base = 2e-4;
const at = (kind: Schedule["kind"], step: number, warmupSteps = 10, totalSteps = 110) =>
  lrAt(step, { base, warmupSteps, totalSteps, kind });

/** Equal within a few ulps (the schedules are a handful of float operations). */
const near = (actual: number, expected: number, what: string) =>
  assert.ok(Math.abs(actual - expected) <= 1e-15 * Math.max(1, Math.abs(expected)), `${what}: ${actual} != ${expected}`);

test("warmup is linear from 0 for every kind, and the first update has lr 0 (as transformers)", () => {
  for (const kind of ["linear", "cosine", "constant"] as const) {
    assert.equal(at(kind, 0), 0);
    near(at(kind, 1), base / 10, `${kind} step 1`);
    near(at(kind, 5), base / 2, `${kind} step 5`);
    near(at(kind, 10), base, `${kind} step 10`);
  }
});

test("linear decay reaches 0 at totalSteps and stays there", () => {
  // (total − step) / (total − warmup): (110 − 60) / 100 = 0.5, (110 − 35) / 100 = 0.75.
  near(at("linear", 60), 1e-4, "step 60");
  near(at("linear", 35), 1.5e-4, "step 35");
  near(at("linear", 109), 2e-6, "step 109");
  assert.equal(at("linear", 110), 0);
  assert.equal(at("linear", 500), 0);
});

test("cosine follows half a cosine from base to 0", () => {
  // progress = (step − 10) / 100; factor = (1 + cos(π·progress)) / 2.
  near(at("cosine", 35), base * (0.5 + Math.SQRT1_2 / 2), "progress 0.25");
  near(at("cosine", 60), base * 0.5, "progress 0.5");
  near(at("cosine", 85), base * (0.5 - Math.SQRT1_2 / 2), "progress 0.75");
  near(at("cosine", 110), 0, "progress 1");
});

test("constant holds base after warmup; no warmup means full lr from the start", () => {
  assert.equal(at("constant", 11), base);
  assert.equal(at("constant", 10_000), base);
  assert.equal(lrAt(0, { base, warmupSteps: 0, totalSteps: 100, kind: "constant" }), base);
  assert.equal(lrAt(0, { base, warmupSteps: 0, totalSteps: 100, kind: "linear" }), base);
  assert.equal(lrAt(0, { base, warmupSteps: 0, totalSteps: 100, kind: "cosine" }), base);
  near(lrAt(50, { base, warmupSteps: 0, totalSteps: 100, kind: "linear" }), 1e-4, "no warmup, half way");
});

test("invalid steps and kinds are rejected", () => {
  assert.throws(() => lrFactor(-1, { warmupSteps: 0, totalSteps: 10, kind: "linear" }), /step/);
  assert.throws(() => lrFactor(1.5, { warmupSteps: 0, totalSteps: 10, kind: "linear" }), /step/);
  assert.throws(() => lrFactor(1, { warmupSteps: -2, totalSteps: 10, kind: "linear" }), /warmupSteps/);
  assert.throws(() => lrFactor(20, { warmupSteps: 0, totalSteps: 10, kind: "step" as never }), /unknown schedule 'step'/);
});
