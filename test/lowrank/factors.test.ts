import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type DeltaSource, splitFactors, svdInitFactors } from "../../src/lowrank/factors.js";
import { spectrumMetrics } from "../../src/lowrank/metrics.js";
import { exactSvd, reconstruct, truncateSvd } from "../../src/lowrank/svd.js";
import { disposeDelta, synthesizeTeacher } from "../../src/lowrank/synthesis.js";
import * as torch from "../../src/torch/index.js";
import type { Tensor } from "../../src/torch/index.js";
import { values } from "../helpers.js";
import { gaussian, orthonormalityError, relativeDistance, tinyLoras } from "./helpers.js";

const r = 3;
const scaling = 2;

/** The best rank-r approximation of a dense ΔW, in float64. */
const denseTruncation = (M: Tensor, rank: number) => torch.tidy(() => reconstruct(truncateSvd(exactSvd(M.to("float64")), rank)));

describe("svdInitFactors", () => {
  const teacher = () => {
    const loras = tinyLoras();
    const delta = synthesizeTeacher(loras, { targetRank: 8, seed: 1 });
    torch.dispose([...loras.values()]);
    return delta;
  };

  for (const split of ["seed", "balanced"] as const) {
    it(`${split} split: s·B·A equals the best rank-r approximation, from factored and dense sources alike`, () => {
      const delta = teacher();
      const dense = new Map<string, DeltaSource>([...delta.modules].map(([p, d]) => [p, reconstruct(d)]));
      const fromFactored = svdInitFactors(delta.modules, { rank: r, scaling, split });
      const fromDense = svdInitFactors(dense, { rank: r, scaling, split });
      assert.equal(fromFactored.scaling, 2);
      assert.equal(fromFactored.split, split);
      for (const [p, M] of dense as Map<string, Tensor>) {
        const { A, B } = fromFactored.weights.get(p)!;
        const [m, n] = M.shape;
        assert.deepEqual(
          [A.shape, B.shape],
          [
            [r, n],
            [m, r],
          ],
        );
        torch.tidy(() => {
          const target = denseTruncation(M, r);
          assert.ok(relativeDistance(B.matmul(A).mul(2).to("float64"), target) < 1e-5, `${p}: s·B·A = ΔW_r`);
          const d = fromDense.weights.get(p)!;
          assert.ok(
            relativeDistance(d.B, B) < 1e-4 && relativeDistance(d.A, A) < 1e-4,
            `${p}: dense and factored sources give the same factors`,
          );
          if (split === "seed") assert.ok(orthonormalityError(A.T) < 1e-5, "A = V_rᵀ has orthonormal rows");
          else assertClose(values(B.norm(2, 0)), values(A.norm(2, 1)), 1e-5, `${p}: balanced column/row norms`);
        });
        const metrics = fromFactored.metrics.get(p)!;
        const expected = spectrumMetrics(delta.modules.get(p)!.S, r);
        assert.ok(Math.abs(metrics.relativeError - expected.relativeError) < 1e-9);
        assert.ok(Math.abs(fromDense.metrics.get(p)!.energyRatio - metrics.energyRatio) < 1e-5);
        assert.deepEqual(metrics.shape, [m, n]);
      }
      torch.dispose([...fromFactored.weights.values(), ...fromDense.weights.values(), ...dense.values()]);
      disposeDelta(delta);
    });
  }

  it("initializes from LoRA factors and from the randomized dense path", () => {
    const loras = tinyLoras(5, 10);
    const fromAdapter = svdInitFactors(loras, { rank: r, scaling });
    const dense = new Map([...loras].map(([p, { A, B, scale }]) => [p, B.matmul(A).mul(scale)]));
    const randomized = svdInitFactors(dense, { rank: r, scaling, denseMethod: "randomized" });
    for (const [p, M] of dense) {
      const got = fromAdapter.weights.get(p)!;
      torch.tidy(() => {
        assert.ok(relativeDistance(got.B.matmul(got.A).mul(2).to("float64"), denseTruncation(M, r)) < 1e-5, p);
        const rnd = randomized.weights.get(p)!;
        assert.ok(relativeDistance(rnd.B.matmul(rnd.A), got.B.matmul(got.A)) < 1e-4, `${p}: randomized agrees`);
      });
      assert.ok(Math.abs(randomized.metrics.get(p)!.energyRatio - fromAdapter.metrics.get(p)!.energyRatio) < 1e-5);
    }
    torch.dispose([...loras.values(), ...dense.values(), ...fromAdapter.weights.values(), ...randomized.weights.values()]);
  });

  it("splitFactors puts Σ_r / s on B (seed) or √(Σ_r / s) on both sides (balanced)", () => {
    torch.tidy(() => {
      const svd = exactSvd(gaussian(4, 12, 9, "float64"));
      const seed = splitFactors(svd, r, scaling, "seed", "float64");
      const balanced = splitFactors(svd, r, scaling, "balanced", "float64");
      const sigma = svd.S.narrow(0, 0, r);
      assert.ok(relativeDistance(seed.A, svd.Vh.narrow(0, 0, r)) < 1e-12, "seed: A = V_rᵀ");
      assert.ok(relativeDistance(seed.B, svd.U.narrow(1, 0, r).mul(sigma.div(scaling))) < 1e-12, "seed: B = U_r Σ_r / s");
      const root = sigma.div(scaling).sqrt();
      assert.ok(relativeDistance(balanced.B, svd.U.narrow(1, 0, r).mul(root)) < 1e-12, "balanced: B = U_r √(Σ_r/s)");
      assert.ok(relativeDistance(balanced.A, svd.Vh.narrow(0, 0, r).mul(root.unsqueeze(1))) < 1e-12, "balanced: A = √(Σ_r/s) V_rᵀ");
    });
  });

  it("rejects impossible ranks with one clear line, freeing what it made", () => {
    const deltas = tinyLoras(4);
    const before = torch.memory().count;
    const oneLine = (pattern: RegExp) => (e: unknown) => pattern.test((e as Error).message) && !(e as Error).message.includes("\n");
    assert.throws(
      () => svdInitFactors(deltas, { rank: 17, scaling }),
      oneLine(/^model\.layers\.0\.self_attn\.q_proj: rank 17 exceeds min\(out, in\) = 16 of this 24×16 matrix$/),
    );
    assert.throws(() => svdInitFactors(deltas, { rank: 5, scaling }), oneLine(/rank 5 exceeds the delta's rank 4/));
    assert.equal(torch.memory().count, before, "nothing left behind");
    torch.tidy(() => {
      const rank2 = new Map([["m", gaussian(1, 20, 2).matmul(gaussian(2, 2, 15))]]);
      assert.throws(() => svdInitFactors(rank2, { rank: 3, scaling }), oneLine(/^m: rank 3 exceeds the delta's numerical rank 2/));
      assert.throws(() => svdInitFactors(new Map([["z", torch.zeros([6, 5])]]), { rank: 1, scaling }), oneLine(/^z: ΔW is zero/));
      assert.throws(() => svdInitFactors(rank2, { rank: 1, scaling: 0 }), /scaling s must be a positive number, got 0/);
      assert.throws(() => svdInitFactors(rank2, { rank: 1, scaling, split: "half" as never }), /split must be "seed" or "balanced"/);
      assert.throws(() => svdInitFactors(new Map(), { rank: 1, scaling }), /no modules/);
    });
    torch.dispose([...deltas.values()]);
  });

  it("holds two tensors per module and nothing more", () => {
    const delta = teacher();
    svdInitFactors(delta.modules, { rank: r, scaling }).weights.forEach((f) => torch.dispose(f)); // warm-up
    const before = torch.memory().count;
    const factors = svdInitFactors(delta.modules, { rank: r, scaling });
    assert.equal(torch.memory().count, before + 2 * delta.modules.size);
    torch.dispose([...factors.weights.values()]);
    disposeDelta(delta);
  });
});

function assertClose(actual: number[], expected: number[], rtol: number, what: string): void {
  actual.forEach((a, i) => assert.ok(Math.abs(a - expected[i]) <= rtol * Math.abs(expected[i]), `${what}[${i}]: ${a} vs ${expected[i]}`));
}
