import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { exponentialDecayRate, spectrumMetrics } from "../../src/lowrank/metrics.js";
import { exactSvd, reconstruct, truncateSvd } from "../../src/lowrank/svd.js";
import * as torch from "../../src/torch/index.js";
import { gaussian, relativeDistance } from "./helpers.js";

describe("spectrumMetrics", () => {
  it("computes error, energy and ratios of a known spectrum", () => {
    const m = spectrumMetrics([1, 3, 2, 0], 2); // unsorted on purpose
    assert.deepEqual(m.spectrum, [3, 2, 1, 0]);
    assert.equal(m.energyRatio, 13 / 14);
    assert.equal(m.relativeError, Math.sqrt(1 / 14));
    assert.equal(m.sigmaRatio, 2 / 3);
    assert.equal(m.numericalRank, 3);
    assert.equal(m.frobeniusNorm, Math.sqrt(14));
    assert.equal(m.rank, 2);
  });

  it("recovers the rate of an exactly exponential spectrum", () => {
    const spectrum = Array.from({ length: 20 }, (_, i) => 5 * Math.exp(-0.3 * i));
    assert.ok(Math.abs(spectrumMetrics(spectrum, 4).decayRate - 0.3) < 1e-12);
    assert.equal(exponentialDecayRate([2]), 0);
    // zeros are left out of the fit instead of giving −∞
    assert.ok(Math.abs(spectrumMetrics([...spectrum, 0, 0], 4).decayRate - 0.3) < 1e-12);
  });

  it("agrees with the dense truncation error ‖ΔW − ΔW_r‖_F / ‖ΔW‖_F (Eckart–Young)", () => {
    torch.tidy(() => {
      const M = gaussian(21, 40, 25, "float64");
      const svd = exactSvd(M);
      for (const r of [1, 5, 24, 25]) {
        const dense = relativeDistance(reconstruct(truncateSvd(svd, r)), M);
        const m = spectrumMetrics(svd.S, r);
        assert.ok(Math.abs(m.relativeError - dense) < 1e-10, `r=${r}: ${m.relativeError} vs ${dense}`);
        assert.ok(Math.abs(m.energyRatio + m.relativeError ** 2 - 1) < 1e-12);
      }
    });
  });

  it("treats a zero matrix as losing nothing and rejects bad input", () => {
    const zero = spectrumMetrics([0, 0, 0], 2);
    assert.deepEqual([zero.relativeError, zero.energyRatio, zero.decayRate, zero.numericalRank], [0, 1, 0, 0]);
    assert.throws(() => spectrumMetrics([1, -1], 1), /non-negative/);
    assert.throws(() => spectrumMetrics([1, Number.NaN], 1), /finite/);
    assert.throws(() => spectrumMetrics([1], 0), /positive integer/);
  });
});
