// Runs trained together are each charged a share of the pass's time (train/concurrent.ts chargeShares).
import assert from "node:assert/strict";
import { test } from "node:test";
import { chargeShares } from "../../src/train/concurrent.js";
import type { LoopOutcome, LoopResult } from "../../src/train/loop.js";

const result = (tokens: number, seconds: number): LoopResult => ({
  steps: 10,
  stepsPerEpoch: 10,
  tokens,
  seconds,
  history: [],
  evals: [],
  skipped: 0,
  resumedFrom: null,
});

test("runs of one pass share its wall time in proportion to their tokens; a failed run is left out", () => {
  const outcomes: LoopOutcome[] = [
    { ok: true, result: result(3000, 11.9) },
    { ok: true, result: result(1000, 12) },
    { ok: false, error: new Error("non-finite loss") },
  ];
  chargeShares(outcomes);
  const seconds = outcomes.flatMap((o) => (o.ok ? [o.result.seconds] : []));
  assert.deepEqual(seconds, [9, 3]);
});

test("a run alone keeps its own time", () => {
  const outcomes: LoopOutcome[] = [{ ok: true, result: result(3000, 11.9) }];
  chargeShares(outcomes);
  assert.equal(outcomes[0].ok && outcomes[0].result.seconds, 11.9);
});
