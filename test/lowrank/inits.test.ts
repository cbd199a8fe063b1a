// The LoRA inits of lowrank/inits on small random matrices: shapes, the properties that define each
// method, W = residual + s·B·A where the base weight changes, determinism under a seed, and the
// calibration accumulators. Parity with PEFT and the authors' code: inits-parity.test.ts.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  EvaState,
  GradientMean,
  IncrementalPca,
  InputCovariance,
  NF4_CODE,
  choleskyQr,
  corda,
  loftq,
  loraGa,
  loraOne,
  loraOnePreconditioned,
  maskedRows,
  mica,
  milora,
  moduleInit,
  nf4RoundTrip,
  olora,
  orthogonal,
  parseInitMethod,
  pissa,
  pissaNiter,
  seededRandom,
  sharedInputs,
  splitSvd,
  svdLowrank,
  svdLowrankRight,
} from "../../src/lowrank/inits/index.js";
import { loadCausalLM } from "../../src/model/loader.js";
import { addLora, loraParameters } from "../../src/model/lora.js";
import * as torch from "../../src/torch/index.js";
import type { Tensor } from "../../src/torch/index.js";
import { settledMemory, values } from "../helpers.js";
import { gaussian, orthonormalityError } from "./helpers.js";

const maxDiff = (a: Tensor, b: Tensor) => torch.tidy(() => a.sub(b).abs().max().item());
const singularValues = (M: Tensor) => values(torch.svdvals(M.to("float64")));
const r = 3;
const rs = { rank: r, scaling: 2 };
/** A 12 × 8 weight with a clear spectrum: σ_i = 2^(−i/2) in random directions. */
const weight = (seed = 1): Tensor =>
  torch.tidy(() => {
    const { Q: U } = torch.qr(gaussian(seed, 12, 8, "float64"));
    const { Q: V } = torch.qr(gaussian(seed + 100, 8, 8, "float64"));
    const S = torch.tensor(
      Array.from({ length: 8 }, (_, i) => 2 ** (-i / 2)),
      { dtype: "float64" },
    );
    return U.mul(S).matmul(V.T).to("float32");
  });

/** residual + s·B·A = W within tol. */
function assertReconstructs(f: { A: Tensor; B: Tensor; residual?: Tensor }, W: Tensor, scaling: number, tol = 1e-6): void {
  assert.ok(f.residual, "the init returns a residual base weight");
  const err = maxDiff(f.residual.add(f.B.mul(scaling).matmul(f.A)), W);
  assert.ok(err < tol, `residual + s·B·A differs from W by ${err}`);
}

describe("SVD-based inits of W", () => {
  it("splitSvd: both splits give s·B·A = U diag(S) Vh; balanced gives B and A equal norms", () => {
    const svd = torch.svd(weight().to("float64"));
    for (const split of ["balanced", "seed"] as const) {
      const { A, B } = splitSvd(svd, 2, split);
      assert.ok(maxDiff(B.matmul(A).mul(2), svd.U.mul(svd.S).matmul(svd.Vh)) < 1e-12, split);
      if (split === "balanced") assert.ok(Math.abs(A.norm().item() - B.norm().item()) < 1e-12);
      else assert.ok(orthonormalityError(A.T) < 1e-12, "seed: A = Vh has orthonormal rows");
    }
  });

  it("pissa: the top-r triplets of W, orthogonal factors, residual + s·B·A = W", () => {
    const W = weight();
    const f = pissa(W, rs);
    assert.deepEqual(
      [f.A.shape, f.B.shape],
      [
        [r, 8],
        [12, r],
      ],
    );
    assertReconstructs(f, W, 2);
    const top = singularValues(W).slice(0, r);
    values(torch.svdvals(f.B.matmul(f.A).mul(2)))
      .slice(0, r)
      .forEach((v, i) => assert.ok(Math.abs(v - top[i]) < 1e-6));
    assert.ok(Math.abs(singularValues(f.residual!)[0] - singularValues(W)[r]) < 1e-6, "the residual keeps σ_r+1 … σ_n");
    const gram = f.A.matmul(f.A.T);
    assert.ok(maxDiff(gram, gram.mul(torch.eye(r, r))) < 1e-6, "A's rows are orthogonal");
  });

  it("pissa-niter-N: torch.svd_lowrank's result; exact when q covers the matrix, seeded and repeatable", () => {
    const W = weight();
    const exact = pissa(W, rs);
    const full = svdLowrank(W, 8, 0, seededRandom(3));
    assert.ok(maxDiff(full.U.mul(full.S).matmul(full.V.T), W) < 1e-5, "q = min(m, n): the SVD is exact");
    const wide = svdLowrank(W.T, 8, 0, seededRandom(3));
    assert.deepEqual(
      [wide.U.shape, wide.V.shape],
      [
        [8, 8],
        [12, 8],
      ],
    );
    const fast = pissaNiter(W, { ...rs, niter: 40, random: seededRandom(3) });
    assertReconstructs(fast, W, 2);
    assert.ok(maxDiff(fast.B.matmul(fast.A), exact.B.matmul(exact.A)) < 1e-5, "40 subspace iterations reach the top-r subspace");
    const again = pissaNiter(W, { ...rs, niter: 40, random: seededRandom(3) });
    assert.equal(maxDiff(again.A, fast.A), 0, "same seed, same factors");
    const rough = pissaNiter(W, { ...rs, niter: 0, random: seededRandom(4) });
    assert.ok(maxDiff(rough.B.matmul(rough.A), exact.B.matmul(exact.A)) > 1e-3, "without iterations the sketch is only approximate");
  });

  it("milora: the r smallest singular triplets, residual + s·B·A = W", () => {
    const W = weight();
    const f = milora(W, rs);
    assertReconstructs(f, W, 2);
    const all = singularValues(W);
    const got = singularValues(f.B.matmul(f.A).mul(2)).slice(0, r);
    all.slice(-r).forEach((v, i) => assert.ok(Math.abs(v - got[i]) < 1e-6, `σ ${v} vs ${got[i]}`));
    assert.ok(Math.abs(singularValues(f.residual!)[0] - all[0]) < 1e-6, "the residual keeps the principal directions");
  });

  it("mica: B = the r minor left singular vectors, frozen; A = 0, so W and the model are unchanged", () => {
    const W = weight();
    const f = mica(W, { rank: r });
    assert.equal(f.frozenB, true);
    assert.equal(f.residual, undefined);
    assert.ok(values(f.A).every((v) => v === 0));
    assert.ok(orthonormalityError(f.B) < 1e-6);
    const minor = Math.sqrt(
      singularValues(W)
        .slice(-r)
        .reduce((s, v) => s + v * v, 0),
    );
    assert.ok(Math.abs(f.B.T.matmul(W).norm().item() - minor) < 1e-6, "Bᵀ W keeps only the r smallest σ");
  });

  it("olora: B = Q_r orthonormal, A = R_r upper triangular, residual + s·B·A = W (tall and wide)", () => {
    for (const W of [weight(), weight(2).T.contiguous()]) {
      const f = olora(W, rs);
      assertReconstructs(f, W, 2);
      assert.ok(orthonormalityError(f.B) < 1e-6);
      assert.ok(
        values(f.A.narrow(1, 0, r).tril(-1)).every((v) => v === 0),
        "A is the top of R",
      );
    }
  });

  it("orthogonal: B·A = 0, A of rank r/2, seeded; an odd rank is refused", () => {
    const W = weight();
    const f = orthogonal(W, { rank: 4, random: seededRandom(5) });
    assert.deepEqual(
      [f.A.shape, f.B.shape],
      [
        [4, 8],
        [12, 4],
      ],
    );
    assert.ok(maxDiff(f.B.matmul(f.A), torch.zeros([12, 8])) < 1e-7);
    const s = values(torch.svdvals(f.A));
    assert.ok(s[1] > 1e-3 && s[2] < 1e-6, `A has rank 2 = r/2 (σ ${s})`);
    assert.equal(maxDiff(orthogonal(W, { rank: 4, random: seededRandom(5) }).B, f.B), 0);
    assert.ok(maxDiff(orthogonal(W, { rank: 4, random: seededRandom(6) }).B, f.B) > 1e-3);
    assert.throws(() => orthogonal(W, { rank: 3, random: seededRandom(5) }), /even LoRA rank/);
  });

  it("a rank beyond min(out, in) gets one clear line", () => {
    assert.throws(
      () => pissa(weight(), { rank: 9, scaling: 1 }),
      /pissa of a 12×8 weight: the LoRA rank must be an integer in \[1, 8\], got 9/,
    );
    assert.throws(() => loraGa(weight(), weight(), { rank: 5, scaling: 1, random: seededRandom(1) }), /2r gradient directions/);
  });
});

describe("LoftQ", () => {
  it("nf4RoundTrip: every value is a code value times its block's absmax, the block maximum survives exactly", () => {
    const W = gaussian(7, 4, 40); // 160 values: blocks of 64, 64 and 32
    const q = nf4RoundTrip(W);
    const w = values(W),
      d = values(q);
    for (let start = 0; start < w.length; start += 64) {
      const block = w.slice(start, start + 64);
      const absmax = Math.max(...block.map(Math.abs));
      d.slice(start, start + 64).forEach((v, i) => {
        const nearest = NF4_CODE.reduce((best, c) => (Math.abs(c - block[i] / absmax) < Math.abs(best - block[i] / absmax) ? c : best));
        assert.ok(Math.abs(v - Math.fround(nearest * absmax)) <= 1e-7 * absmax, `value ${start + i}: ${v} vs ${nearest * absmax}`);
      });
    }
    assert.equal(maxDiff(nf4RoundTrip(q), q), 0, "dequantized values are fixed points");
  });

  it("loftq: the base weight becomes its NF4 round trip and B·A fits the quantization error", () => {
    const W = gaussian(8, 16, 64);
    const f = loftq(W, { rank: 4 });
    assert.equal(maxDiff(f.residual!, nf4RoundTrip(W)), 0);
    const before = W.sub(f.residual!).norm().item();
    const after = W.sub(f.residual!).sub(f.B.matmul(f.A)).norm().item();
    assert.ok(after < before, `‖W − Q − B·A‖ ${after} < ‖W − Q‖ ${before}`);
    const more = loftq(W, { rank: 4, iterations: 3 });
    assert.ok(W.sub(more.residual!).sub(more.B.matmul(more.A)).norm().item() < before);
  });
});

describe("data-dependent inits", () => {
  const X = gaussian(20, 50, 8).mul(torch.tensor([3, 2, 1.5, 1, 0.5, 0.3, 0.2, 0.1]));
  const C = X.T.matmul(X).div(50);

  it("corda: residual + s·B·A = W; with C = I, IPM is PiSSA and KPM is MiLoRA", () => {
    const W = weight();
    for (const mode of ["ipm", "kpm"] as const) assertReconstructs(corda(W, C, { ...rs, mode }), W, 2, 1e-5);
    const eye = torch.eye(8, 8);
    const ipm = corda(W, eye, { ...rs, mode: "ipm" }),
      kpm = corda(W, eye, { ...rs, mode: "kpm" });
    assert.ok(maxDiff(ipm.B.matmul(ipm.A), pissa(W, rs).B.matmul(pissa(W, rs).A)) < 1e-5);
    assert.ok(maxDiff(kpm.B.matmul(kpm.A), milora(W, rs).B.matmul(milora(W, rs).A)) < 1e-5);
    assert.throws(() => corda(W, torch.eye(5, 5), { ...rs, mode: "ipm" }), /covariance is 5×5 but the weight takes 8 inputs/);
  });

  it("corda: IPM's directions are those of W·C (what the data excites), not of W alone", () => {
    const W = weight();
    const f = corda(W, C, { ...rs, mode: "ipm" });
    const excited = (M: Tensor) => M.matmul(C).norm().item();
    assert.ok(excited(f.B.matmul(f.A).mul(2)) > excited(pissa(W, rs).B.matmul(pissa(W, rs).A).mul(2)) * 0.99);
  });

  it("lora-ga: A = top right singular vectors of G, B ∝ the next left ones; W unchanged in function", () => {
    const W = weight(),
      G = gaussian(30, 12, 8);
    const f = loraGa(W, G, { ...rs, random: seededRandom(1) });
    assertReconstructs(f, W, 2);
    const { U, S, Vh } = torch.svd(G);
    const overlap = (P: Tensor, Q: Tensor) => P.matmul(Q.T).abs().sum(1);
    assert.ok(
      values(overlap(f.A, Vh.narrow(0, 0, r))).every((v) => Math.abs(v - 1) < 1e-4),
      "A spans V_r",
    );
    const stable = 12 ** 0.25 / 4;
    const Bdir = f.B.div(S.narrow(0, r, r).mul(stable));
    assert.ok(
      values(overlap(Bdir.T, U.narrow(1, r, r).T)).every((v) => Math.abs(v - 1) < 1e-4),
      "B = U[:, r:2r] σ · out^¼/√γ",
    );
    const unit = loraGa(W, G, { ...rs, scale: "unit", direction: "ArBr", random: seededRandom(1) });
    assert.ok(Math.abs(unit.B.norm().item() - Math.hypot(...values(S).filter((_, i) => i % 2 === 0 && i < 2 * r))) < 1e-4);
  });

  it("lora-one: s·B·A = s/(γ σ₁) · (−G)_r, W unchanged; the preconditioner solves with (BᵀB + λI)", () => {
    const G = gaussian(31, 12, 8);
    const f = loraOne(G, { rank: r, stableGamma: 4 });
    assert.equal(f.residual, undefined);
    const { U, S, Vh } = torch.svd(G.neg());
    const best = U.narrow(1, 0, r)
      .mul(S.narrow(0, 0, r))
      .matmul(Vh.narrow(0, 0, r))
      .div(S.select(0, 0).mul(4));
    assert.ok(maxDiff(f.B.matmul(f.A), best) < 1e-6);
    const gA = gaussian(32, r, 8),
      gB = gaussian(33, 12, r);
    const p = loraOnePreconditioned(f, { A: gA, B: gB }, 0);
    assert.ok(maxDiff(f.B.T.matmul(f.B).matmul(p.A), gA) < 1e-3, "(BᵀB) ∇̃A = ∇A");
    assert.ok(maxDiff(p.B.matmul(f.A.matmul(f.A.T)), gB) < 1e-3, "∇̃B (A Aᵀ) = ∇B");
  });

  it("choleskyQr: orthonormal columns spanning Y's, for a batch; flags a Y of lower rank", () => {
    // Condition number 10⁶: columns scaled from 1 down to 1e-6.
    const scale = torch.tensor(
      Array.from({ length: 6 }, (_, j) => 10 ** (-j * 1.2)),
      { dtype: "float64" },
    );
    const Y = torch.stack([gaussian(80, 40, 6, "float64").mul(scale), gaussian(81, 40, 6, "float64")]);
    const { Q, failed } = choleskyQr(Y);
    assert.equal(failed.item(), 0);
    for (const b of [0, 1]) {
      assert.ok(orthonormalityError(Q.select(0, b)) < 1e-13, "orthonormal");
      const y = Y.select(0, b);
      assert.ok(maxDiff(Q.select(0, b).matmul(Q.select(0, b).T.matmul(y)), y) < 1e-13, "spans Y");
    }
    const lowRank = gaussian(82, 40, 3, "float64").matmul(gaussian(83, 3, 6, "float64"));
    assert.ok(choleskyQr(lowRank).failed.item() > 0, "a rank-3 Y of 6 columns is flagged");
  });

  it("svdLowrankRight: svdLowrank's singular values and right singular vectors, batched, wide or tall, and where Cholesky QR breaks down", () => {
    const spectrum = (n: number) =>
      torch.tensor(
        Array.from({ length: n }, (_, j) => 10 ** (-j / 8)),
        { dtype: "float64" },
      );
    const cases: [string, Tensor][] = [
      ["wide", torch.stack([0, 1, 2].map((b) => gaussian(90 + b, 30, 50, "float64").mul(spectrum(50))))],
      ["tall", torch.stack([0, 1].map((b) => gaussian(95 + b, 50, 30, "float64").mul(spectrum(30))))],
      [
        "rank 4",
        gaussian(97, 30, 4, "float64")
          .matmul(gaussian(98, 4, 50, "float64"))
          .unsqueeze(0),
      ],
    ];
    for (const [what, M] of cases) {
      const want = svdLowrank(M, 12, 4, seededRandom(42));
      const got = svdLowrankRight(M, 12, 4, seededRandom(42));
      const k = what === "rank 4" ? 4 : 6; // the components EVA keeps: those with a σ > 0
      assert.ok(maxDiff(got.S.narrow(1, 0, k), want.S.narrow(1, 0, k)) < 1e-12, `${what}: S`);
      // The same vectors up to sign: |vᵢ·wᵢ| = 1.
      const dots = got.V.narrow(2, 0, k)
        .mul(want.V.narrow(2, 0, k))
        .sum(1)
        .abs();
      assert.ok(torch.tidy(() => dots.sub(1).abs().max().item()) < 1e-10, `${what}: V up to sign`);
    }
  });

  it("IncrementalPca over batches equals the PCA of all rows at once (all components kept)", () => {
    const data = gaussian(40, 90, 6).mul(torch.tensor([4, 3, 2, 1, 0.5, 0.25]));
    const pca = new IncrementalPca(1, 6, (M) => {
      const { S, Vh } = torch.svd(M);
      return { S, Vt: Vh };
    });
    for (let i = 0; i < 90; i += 30) pca.partialFit(data.narrow(0, i, 30).unsqueeze(0));
    const centred = data.to("float64").sub(data.to("float64").mean(0));
    const { S, Vh } = torch.svd(centred);
    assert.ok(maxDiff(pca.singularValues!.select(0, 0), S) < 1e-4);
    assert.ok(maxDiff(pca.components!.select(0, 0).abs(), Vh.abs()) < 1e-4);
    const ratios = values(pca.explainedVarianceRatio!.select(0, 0));
    assert.ok(Math.abs(ratios.reduce((a, b) => a + b, 0) - 1) < 1e-6, "all components explain all the variance");
  });

  it("EvaState: converges, gives the rank budget to the layer with the most explained variance, shares inputs", () => {
    const rows = (seed: number, spread: number[]) => gaussian(seed, 40, 6).mul(torch.tensor(spread));
    const peaked = [10, 0.1, 0.1, 0.1, 0.1, 0.1],
      flat = [1, 1, 1, 1, 1, 1];
    const batches = [0, 1, 2].map(
      (b) =>
        new Map([
          ["a", rows(50 + b, peaked)],
          ["b", rows(60 + b, flat)],
        ]),
    );
    const first = new Map([...batches[0], ["a2", batches[0].get("a")!]]);
    const shared = sharedInputs(first);
    assert.deepEqual([...shared], [["a2", "a"]]);
    const eva = new EvaState(["a", "a2", "b"], shared, { rank: () => 2, alpha: 4, svd: "exact" });
    let fed = 0;
    for (let want = eva.next(); want; want = eva.next()) {
      eva.feed(batches[fed % 3]);
      fed++;
    }
    assert.ok(fed >= 2 && fed < 100, `converged after ${fed} batches`);
    const result = eva.result();
    const ranks = Object.fromEntries([...result].map(([k, v]) => [k, v.rank]));
    assert.equal(ranks.a + ranks.a2 + ranks.b, 6, "the budget 3 × r is spent");
    assert.ok(ranks.b > ranks.a, `the flat spectrum needs more components (${JSON.stringify(ranks)})`);
    assert.ok(ranks.a >= ranks.a2, "the fitted layer keeps at least its sharer's rank");
    assert.equal(result.get("b")!.alpha, 4 * (ranks.b / 2), "α follows the rank so α / r stays");
    assert.ok(orthonormalityError(result.get("b")!.A.T) < 1e-5, "A has orthonormal rows");
  });

  it("EvaState: the layers of a batch fitted together or one per step (stepBytes) give the same result", () => {
    const layers = ["l0", "l1", "l2"];
    const spread = torch.tensor(Array.from({ length: 12 }, (_, j) => 3 / (1 + j)));
    const batches = [0, 1, 2].map((b) => new Map(layers.map((name, l) => [name, gaussian(110 + 10 * b + l, 30, 12).mul(spread)])));
    const run = (stepBytes?: number) => {
      const eva = new EvaState(layers, new Map(), { rank: () => 2, alpha: 4, stepBytes });
      let fed = 0;
      for (let want = eva.next(); want; want = eva.next()) eva.feed(batches[fed++ % 3]);
      return { fed, result: eva.result() };
    };
    const together = run();
    const apart = run(1); // less than one layer's step: one layer at a time
    assert.equal(apart.fed, together.fed);
    assert.ok(together.fed > 2, `converged after ${together.fed} batches`);
    for (const name of layers) {
      const [a, b] = [together.result.get(name)!, apart.result.get(name)!];
      assert.equal(a.rank, b.rank, `${name}: rank`);
      if (a.rank > 0) assert.ok(maxDiff(a.A, b.A) < 1e-6, `${name}: A`);
    }
  });
});

describe("calibration statistics", () => {
  it("GradientMean: gyᵀ x per batch equals autograd's dL/dW, averaged over batches", () => {
    const W = gaussian(70, 5, 4).requiresGrad_();
    const mean = new GradientMean();
    const expected = torch.zeros([5, 4]);
    for (const b of [0, 1]) {
      const x = gaussian(71 + b, 6, 4).reshape(2, 3, 4);
      const y = torch.linear(x, W);
      y.retainGrad();
      y.square().mean().backward();
      mean.addProducts("w", x, y.grad!);
      expected.add_(W.grad!);
      W.grad = null;
    }
    assert.ok(maxDiff(mean.takeMean("w"), expected.div(2)) < 1e-6);
    assert.throws(() => mean.takeMean("other"), /no calibration statistics for other/);
  });

  it("InputCovariance: each sequence scaled by its largest entry, XᵀX averaged over sequences", () => {
    const cov = new InputCovariance();
    const x1 = torch.tensor([
      [1, -4],
      [2, 0],
    ]);
    const x2 = torch.tensor([[0.5, 0.25]]);
    cov.add("l", x1);
    cov.add("l", x2.unsqueeze(0));
    // x1 / |max| = x1 / 2; x2 / 0.5
    const want = torch.tensor([
      [(0.25 + 1 + 1) / 2, (-1 + 0.5) / 2],
      [(-1 + 0.5) / 2, (4 + 0.25) / 2],
    ]);
    assert.ok(maxDiff(cov.takeMean("l"), want) < 1e-6);
  });

  it("maskedRows keeps the positions whose mask is set, in order, and leaves no other tensor behind", async () => {
    const x = torch.arange(0, 12).reshape(2, 3, 2).to("float32");
    const mask = torch.tensor([
      [1, 0, 1],
      [0, 0, 1],
    ]);
    const before = await settledMemory();
    const rows = maskedRows(x, mask);
    assert.deepEqual(values(rows), [0, 1, 4, 5, 10, 11]);
    rows.dispose();
    assert.deepEqual(torch.memory(), before);
  });
});

describe("the init registry and addLora", () => {
  it("parseInitMethod: names and pissa-niter-N; anything else gets the list", () => {
    assert.deepEqual(parseInitMethod("pissa-niter-16"), { name: "pissa-niter-N", niter: 16 });
    assert.deepEqual(parseInitMethod("corda-kpm"), { name: "corda-kpm" });
    assert.throws(() => parseInitMethod("pisa"), /unknown LoRA init "pisa": use one of random, gaussian, svd, pissa, pissa-niter-N, olora/);
    assert.throws(() => moduleInit({ name: "lora-ga" }, { rank: 2, alpha: 2 }), /--init lora-ga needs the calibration gradient/);
  });

  const modelDir = new URL("../../../test/fixtures/golden/qwen2-tiny", import.meta.url).pathname;
  const ids = () => torch.tensor([[5, 17, 250, 3, 99, 42, 7, 7]], { dtype: "int64" });

  it("addLora with a residual-changing init keeps the model's function (olora on all linears)", () => {
    const model = loadCausalLM(modelDir);
    const before = torch.noGrad(() => model.forward(ids()));
    const w0 = model.linears().get("model.layers.1.mlp.up_proj")!.weight.clone();
    const loras = addLora(model, { rank: 4, alpha: 8, targets: "all-linear" }, moduleInit({ name: "olora" }, { rank: 4, alpha: 8 }));
    assert.equal(loras.size, 14);
    assert.ok(maxDiff(model.linears().get("model.layers.1.mlp.up_proj")!.weight, w0) > 1e-3, "the base weight changed");
    assert.ok(
      maxDiff(
        torch.noGrad(() => model.forward(ids())),
        before,
      ) < 1e-4,
    );
  });

  it("addLora with mica: B frozen (not a trained parameter); with an init returning null: no adapter", () => {
    const model = loadCausalLM(modelDir);
    const loras = addLora(model, { rank: 2, alpha: 2, targets: ["q_proj"] }, moduleInit({ name: "mica" }, { rank: 2, alpha: 2 }));
    assert.equal(loraParameters(loras).length, 2, "A of two layers only");
    assert.equal([...loras.values()][0].B.requiresGrad, false);
    const none = loadCausalLM(modelDir);
    const some = addLora(none, { rank: 2, alpha: 2, targets: ["q_proj"] }, (path, W) =>
      path.includes("layers.0") ? null : { A: torch.zeros([2, W.shape[1]]), B: torch.zeros([W.shape[0], 2]) },
    );
    assert.deepEqual([...some.keys()], ["model.layers.1.self_attn.q_proj"]);
    assert.throws(
      () =>
        addLora(loadCausalLM(modelDir), { rank: 2, alpha: 2, targets: ["q_proj"] }, (_, W) => ({
          A: torch.zeros([2, 3]),
          B: torch.zeros([W.shape[0], 2]),
        })),
      /model\.layers\.0\.self_attn\.q_proj: the init gave A \[2,3\], B \[64,2\], want A \[2,64\], B \[64,2\]/,
    );
  });
});
