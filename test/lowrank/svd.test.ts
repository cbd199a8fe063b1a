import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { exactSvd, factoredSumSvd, factoredSvd, randomizedSvd, truncateSvd } from "../../src/lowrank/svd.js";
import * as torch from "../../src/torch/index.js";
import { settledMemory, values } from "../helpers.js";
import { assertValidSvd, gaussian, maxRelativeError, relativeDistance } from "./helpers.js";

describe("factoredSvd", () => {
  // [m, n, k]: tall, wide, square; k up to and beyond min(m, n)
  const cases = [
    [120, 40, 8],
    [40, 150, 16],
    [64, 64, 64],
    [30, 200, 30],
    [25, 12, 20],
  ];
  for (const [m, n, k] of cases) {
    it(`matches the dense SVD of scale·B·A for ${m}×${n}, inner ${k} (fp32)`, () => {
      torch.tidy(() => {
        const B = gaussian(m + k, m, k);
        const A = gaussian(n + k + 1, k, n);
        const scale = 0.37;
        const dense = B.matmul(A).mul(scale);
        const f = factoredSvd(B, A, scale);
        const p = Math.min(m, n, k);
        assert.deepEqual([f.U.shape, f.S.shape, f.Vh.shape], [[m, p], [p], [p, n]]);
        // reference: the exact product in float64, so the tolerance measures factoredSvd, not the
        // round-off of an fp32 dense product (which alone exceeds 1e-4 on the ill-conditioned 64³ case)
        const ref = values(torch.svdvals(B.to("float64").matmul(A.to("float64")).mul(scale))).slice(0, p);
        const err = maxRelativeError(values(f.S), ref);
        assert.ok(err <= 1e-4, `singular values max relative error ${err}`);
        assertValidSvd(f, dense, 1e-4, "factored");
        // same singular vectors as the dense SVD (signs are canonical in both) where σ is simple
        const d = exactSvd(dense);
        const top = Math.min(p, 4);
        assert.ok(relativeDistance(f.U.narrow(1, 0, top), d.U.narrow(1, 0, top)) < 1e-3, "top U columns agree with dense");
        assert.ok(relativeDistance(f.Vh.narrow(0, 0, top), d.Vh.narrow(0, 0, top)) < 1e-3, "top Vh rows agree with dense");
      });
    });
  }

  it("is exact to float64 round-off in float64", () => {
    torch.tidy(() => {
      const B = gaussian(1, 50, 6, "float64");
      const A = gaussian(2, 6, 70, "float64");
      const f = factoredSvd(B, A, -2);
      assert.equal(f.U.dtype, "float64");
      assert.ok(maxRelativeError(values(f.S), values(torch.svdvals(B.matmul(A).mul(-2))).slice(0, 6)) < 1e-12);
      assertValidSvd(f, B.matmul(A).mul(-2), 1e-12, "float64");
    });
  });

  it("handles a rank-deficient product (zero and repeated columns of B)", () => {
    torch.tidy(() => {
      const B = torch.cat([gaussian(3, 40, 2), torch.zeros([40, 2])], 1);
      const A = gaussian(4, 4, 30);
      const f = factoredSvd(B, A);
      const s = values(f.S);
      assert.ok(s[2] < 1e-5 * s[0] && s[3] < 1e-5 * s[0], `two zero singular values: ${s}`);
      assertValidSvd(f, B.matmul(A), 1e-4, "rank-deficient");
    });
  });

  it("sums factored terms exactly", () => {
    torch.tidy(() => {
      const terms = [
        { B: gaussian(5, 60, 3), A: gaussian(6, 3, 45), scale: 2 },
        { B: gaussian(7, 60, 5), A: gaussian(8, 5, 45), scale: -0.5 },
      ];
      const dense = terms[0].B.matmul(terms[0].A).mul(2).add(terms[1].B.matmul(terms[1].A).mul(-0.5));
      const f = factoredSumSvd(terms);
      assert.equal(f.S.shape[0], 8);
      const exact = terms[0].B.to("float64")
        .matmul(terms[0].A.to("float64"))
        .mul(2)
        .add(terms[1].B.to("float64").matmul(terms[1].A.to("float64")).mul(-0.5));
      assert.ok(maxRelativeError(values(f.S), values(torch.svdvals(exact)).slice(0, 8)) < 1e-4);
      assertValidSvd(f, dense, 1e-4, "sum");
    });
  });

  it("rejects mismatched factors with a clear message", () => {
    torch.tidy(() => {
      assert.throws(() => factoredSvd(torch.zeros([5, 3]), torch.zeros([4, 7])), /inner sizes differ/);
      assert.throws(() => factoredSvd(torch.zeros([5]), torch.zeros([4, 7])), /must be a matrix/);
    });
  });

  it("frees its temporaries", () => {
    const B = gaussian(9, 80, 8);
    const A = gaussian(10, 8, 90);
    torch.dispose(factoredSvd(B, A));
    const before = torch.memory().count;
    for (let i = 0; i < 3; i++) torch.dispose(factoredSvd(B, A, 1.5));
    assert.equal(torch.memory().count, before);
    torch.dispose([A, B]);
  });
});

describe("exactSvd and randomizedSvd", () => {
  it("truncateSvd's triplets are copies: once they and the full SVD are freed, nothing is left", async () => {
    const M = gaussian(13, 12, 9);
    const before = await settledMemory();
    const full = exactSvd(M);
    const top = truncateSvd(full, 3);
    assert.deepEqual([top.U.shape, top.S.shape, top.Vh.shape], [[12, 3], [3], [3, 9]]);
    torch.dispose([full, top]);
    assert.deepEqual(torch.memory(), before);
    M.dispose();
  });

  it("exactSvd gives a valid reduced SVD in fp32 and fp64, converting bf16 to fp32", () => {
    torch.tidy(() => {
      for (const [m, n] of [
        [30, 12],
        [12, 30],
      ]) {
        const M = gaussian(m * n, m, n, "float64");
        assertValidSvd(exactSvd(M), M, 1e-12, `fp64 ${m}×${n}`);
        assertValidSvd(exactSvd(M.to("float32")), M.to("float32"), 1e-5, `fp32 ${m}×${n}`);
      }
      assert.equal(exactSvd(gaussian(1, 4, 3).to("bfloat16")).S.dtype, "float32");
    });
  });

  it("randomizedSvd recovers the top singular triplets of a matrix with a decaying spectrum", () => {
    torch.tidy(() => {
      for (const [m, n] of [
        [300, 120],
        [120, 300],
      ]) {
        const p = Math.min(m, n);
        const U = torch.qr(gaussian(11, m, p, "float64")).Q;
        const V = torch.qr(gaussian(12, n, p, "float64")).Q;
        const sigma = torch.tensor(Float64Array.from({ length: p }, (_, i) => Math.exp(-0.25 * i)));
        const M = U.mul(sigma).matmul(V.T).to("float32");
        const r = randomizedSvd(M, 10, { seed: 3 });
        assert.deepEqual([r.U.shape, r.S.shape, r.Vh.shape], [[m, 10], [10], [10, n]]);
        const err = maxRelativeError(values(r.S), values(sigma).slice(0, 10));
        assert.ok(err < 1e-4, `top-10 singular values relative error ${err}`);
        const exact = truncateSvd(exactSvd(M), 10);
        assert.ok(relativeDistance(r.U, exact.U) < 1e-3 && relativeDistance(r.Vh, exact.Vh) < 1e-3, "same vectors as the exact SVD");
        // seeded: the same seed gives the same result
        assert.deepEqual(values(randomizedSvd(M, 10, { seed: 3 }).S), values(r.S));
      }
    });
  });

  it("randomizedSvd rejects ranks outside [1, min(m, n)]", () => {
    torch.tidy(() => {
      assert.throws(() => randomizedSvd(torch.zeros([5, 3]), 4), /rank must be an integer in \[1, 3\]/);
      assert.throws(() => randomizedSvd(torch.zeros([5, 3]), 0), /rank/);
    });
  });
});
