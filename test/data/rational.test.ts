import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Rational, r, sum } from "../../src/data/probability/rational.js";
import { Random } from "../../src/data/probability/random.js";
import { choose, showFraction } from "../../src/data/probability/problem.js";

describe("Rational", () => {
  it("reduces and keeps the sign in the numerator", () => {
    assert.equal(r(10, 32).toString(), "5/16");
    assert.equal(r(3, -6).toString(), "-1/2");
    assert.equal(r(-4, -8).toString(), "1/2");
    assert.equal(r(0, 7).toString(), "0");
    assert.equal(r(12, 4).toString(), "3");
    assert.equal(r(0, -3).den, 1n);
  });

  it("does exact arithmetic", () => {
    assert.equal(r(1, 2).add(r(1, 3)).toString(), "5/6");
    assert.equal(r(1, 2).sub(r(3, 4)).toString(), "-1/4");
    assert.equal(r(2, 3).mul(r(9, 4)).toString(), "3/2");
    assert.equal(r(2, 3).div(r(4, 9)).toString(), "3/2");
    assert.equal(r(2, 3).pow(3).toString(), "8/27");
    assert.equal(r(5, 7).pow(0).toString(), "1");
    assert.equal(r(1, 6).complement().toString(), "5/6");
    assert.equal(r(3, 5).neg().toString(), "-3/5");
    assert.equal(sum([r(1, 2), r(1, 4), r(1, 8), r(1, 8)]).toString(), "1");
    // far beyond float precision: (5/6)^60 stays exact
    const tiny = r(5, 6).pow(60);
    assert.equal(tiny.num, 5n ** 60n);
    assert.equal(tiny.complement().add(tiny).toString(), "1");
  });

  it("compares", () => {
    assert.equal(r(1, 3).compare(r(1, 2)), -1);
    assert.equal(r(2, 4).compare(r(1, 2)), 0);
    assert.equal(r(-1, 2).compare(r(-2, 3)), 1);
    assert.ok(r(6, 8).equals(r(3, 4)));
    assert.ok(!r(3, 4).equals(r(-3, 4)));
    assert.ok(r(0, 5).isZero() && r(4, 2).isInteger() && !r(1, 2).isInteger());
    assert.equal(r(3, 8).toNumber(), 0.375);
  });

  it("parses integers and a/b only", () => {
    assert.equal(Rational.parse("3/8")?.toString(), "3/8");
    assert.equal(Rational.parse(" -6 / 8 ")?.toString(), "-3/4");
    assert.equal(Rational.parse("42")?.toString(), "42");
    for (const bad of ["", "3/0", "0.5", "a/b", "1/2/3", "3/"]) assert.equal(Rational.parse(bad), null, bad);
  });

  it("rejects a zero denominator and non-integer inputs", () => {
    assert.throws(() => r(1, 0), /division by zero/);
    assert.throws(() => r(1, 2).div(r(0)), /division by zero/);
    assert.throws(() => r(0.5, 1), /safe integer/);
    assert.throws(() => r(1, 2).pow(-1), /exponent/);
  });
});

describe("helpers", () => {
  it("choose and showFraction", () => {
    assert.equal(choose(5, 2), 10n);
    assert.equal(choose(52, 5), 2598960n);
    assert.equal(choose(4, 5), 0n);
    assert.equal(showFraction(10, 32), "10/32 = 5/16");
    assert.equal(showFraction(5, 16), "5/16");
    assert.equal(showFraction(36, 36), "36/36 = 1");
  });
});

describe("Random (mulberry32)", () => {
  it("gives the same stream for the same seed, pinned to fixed values", () => {
    const a = new Random(42),
      b = new Random(42);
    const xs = Array.from({ length: 5 }, () => a.next());
    assert.deepEqual(
      xs,
      Array.from({ length: 5 }, () => b.next()),
    );
    // Pinned: any change to the generator silently changes every seeded data set.
    const ref = new Random(1);
    assert.deepEqual(
      Array.from({ length: 3 }, () => ref.next() * 2 ** 32),
      [2693262067, 11749833, 2265367787],
    );
    const other = new Random(43);
    assert.notDeepEqual(
      xs,
      Array.from({ length: 5 }, () => other.next()),
    );
  });

  it("draws integers in range, covering it, and shuffles to a permutation", () => {
    const rng = new Random(3),
      seen = new Set<number>();
    for (let i = 0; i < 2000; i++) {
      const v = rng.int(2, 7);
      assert.ok(Number.isInteger(v) && v >= 2 && v <= 7);
      seen.add(v);
    }
    assert.equal(seen.size, 6);
    const items = [1, 2, 3, 4, 5, 6, 7, 8];
    const shuffled = rng.shuffle(items);
    assert.deepEqual([...shuffled].sort(), items);
    assert.deepEqual(items, [1, 2, 3, 4, 5, 6, 7, 8], "shuffle must not touch its input");
    assert.equal(new Set(rng.sample(items, 3)).size, 3);
    assert.throws(() => rng.pick([]), /empty/);
    assert.throws(() => rng.int(5, 4), /bad range/);
    assert.throws(() => new Random(1.5), /integer/);
  });
});
