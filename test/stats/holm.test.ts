import { test } from "node:test";
import assert from "node:assert/strict";
import { Random } from "../../src/data/probability/random.js";
import { holm } from "../../src/stats/index.js";
import { assertClose } from "../helpers.js";

test("Holm on a known list: step-down multipliers 4, 3, 2, 1 with a running maximum", () => {
  // Sorted: 0.005·4 = 0.02, 0.01·3 = 0.03, 0.03·2 = 0.06, 0.04·1 = 0.04 → raised to 0.06.
  assertClose(holm([0.01, 0.04, 0.03, 0.005]) as number[], [0.03, 0.06, 0.06, 0.02], 1e-15, 0);
});

test("Holm keeps nulls in place, caps at 1, leaves a single p alone", () => {
  assert.deepEqual(holm([0.01, null, 0.02, null]), [0.02, null, 0.02, null]);
  assert.deepEqual(holm([0.3, 0.6, 0.9]), [3 * 0.3, 1, 1]);
  assert.deepEqual(holm([0.07]), [0.07]);
  assert.deepEqual(holm([]), []);
  assert.deepEqual(holm([null]), [null]);
});

test("Holm on random lists: at least the raw p, at most 1, monotone in the raw order", () => {
  const random = new Random(11);
  for (let trial = 0; trial < 50; trial++) {
    const ps = Array.from({ length: random.int(1, 8) }, () => random.next() ** 3);
    const adjusted = holm(ps) as number[];
    ps.forEach((p, i) => assert.ok(adjusted[i]! >= p && adjusted[i]! <= 1, `${adjusted[i]} for ${p}`));
    for (let i = 0; i < ps.length; i++)
      for (let j = 0; j < ps.length; j++) if (ps[i]! < ps[j]!) assert.ok(adjusted[i]! <= adjusted[j]!, `monotone: ${ps} → ${adjusted}`);
  }
});

test("Holm rejects a value that is not a probability", () => {
  assert.throws(() => holm([0.1, 1.5]), /p\[1\] = 1.5 is not a probability/);
  assert.throws(() => holm([Number.NaN]), /p\[0\] = NaN/);
});
