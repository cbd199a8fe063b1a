// src/stats against scipy: test/fixtures/golden/stats/scipy.json was written by
// scripts/golden/make_stats.py (numpy + scipy; the versions are in the file). Deterministic
// quantities agree within 1e-9 relative; the Monte Carlo ones within the tolerances stated below.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import {
  DEFAULT_BOOTSTRAP,
  DEFAULT_SIGN_FLIP,
  holm,
  mcnemarExact,
  normalCdf,
  normalQuantile,
  pairedComparison,
  proportionCi,
  SIGN_FLIP_EXACT_MAX_N,
  studentTCdf,
  studentTQuantile,
} from "../../src/stats/index.js";
import { assertClose } from "../helpers.js";

// Compiled to dist/test/stats/; the fixtures stay in the source tree.
const FIXTURE = fileURLToPath(new URL("../../../test/fixtures/golden/stats/scipy.json", import.meta.url));
const skip = existsSync(FIXTURE)
  ? false
  : "test/fixtures/golden/stats/scipy.json is missing: make it with `python3 scripts/golden/make_stats.py test/fixtures/golden/stats/scipy.json` (numpy + scipy)";

/** Relative tolerance for everything computed deterministically. */
const RTOL = 1e-9;
const close = (actual: number | null, expected: number, what: string) => {
  assert.ok(actual !== null, `${what}: null, scipy ${expected}`);
  assertClose([actual], [expected], 0, RTOL, what);
};

interface PairedCase {
  name: string;
  baseline: (number | null)[];
  arm: (number | null)[];
  n: number;
  mean_diff: number;
  sd_diff: number;
  dz: number | null;
  df: number;
  p_t: number | null;
  ci_t: [number, number];
  p_permutation_exact: number;
  ci_bootstrap_percentile: [number, number];
}

interface Golden {
  made_with: Record<string, string>;
  confidence: number;
  bootstrap: { method: string; resamples: number };
  paired: PairedCase[];
  t_cdf: { df: number; t: number; cdf: number }[];
  t_ppf: { df: number; p: number; q: number }[];
  normal_cdf: { z: number; cdf: number }[];
  normal_ppf: { p: number; q: number }[];
  holm: { p: (number | null)[]; adjusted: (number | null)[] }[];
  proportions: { k: number; n: number; confidence: number; wilson: [number, number]; clopper_pearson: [number, number] }[];
  mcnemar: { b: number; c: number; p: number }[];
}

let cached: Golden | undefined;
const golden = (): Golden => {
  cached ??= JSON.parse(readFileSync(FIXTURE, "utf8")) as Golden;
  return cached;
};
/** Each paired case with svdlora's comparison (computed once, checked by three tests). */
let compared: { c: PairedCase; r: ReturnType<typeof pairedComparison> }[] | undefined;
const pairedResults = () => {
  compared ??= golden().paired.map((c) => ({ c, r: pairedComparison(c.baseline, c.arm) }));
  return compared;
};

test("the fixture covers the cases the comparisons below rely on", { skip }, () => {
  const g = golden();
  assert.ok(g.made_with.scipy && g.made_with.numpy, "scipy and numpy versions recorded");
  assert.equal(g.confidence, 0.95);
  assert.equal(g.bootstrap.method, "percentile");
  const ns = new Set(g.paired.map((c) => c.n));
  for (const n of [2, 3, 5, 8, 12, 20, 25]) assert.ok(ns.has(n), `a paired case with n = ${n}`);
  assert.ok(
    g.paired.some((c) => c.sd_diff === 0 && c.mean_diff !== 0),
    "a zero-variance case",
  );
  assert.ok(
    g.paired.some((c) => c.baseline.length > c.n),
    "a case with null pairs",
  );
  assert.ok(g.paired.some((c) => c.mean_diff < 0) && g.paired.some((c) => c.mean_diff > 0), "negative and positive effects");
  assert.ok(
    g.paired.some((c) => c.n > SIGN_FLIP_EXACT_MAX_N),
    "a case for the Monte Carlo permutation p",
  );
  assert.ok(g.t_cdf.length >= 100 && g.t_ppf.length >= 100 && g.proportions.length >= 20 && g.mcnemar.length >= 5 && g.holm.length >= 5);
});

test("paired comparisons: mean, sd, d_z, t test, t interval and exact permutation p as scipy", { skip }, () => {
  for (const { c, r } of pairedResults()) {
    assert.equal(r.n, c.n, `${c.name}: n`);
    assert.equal(r.df, c.df, `${c.name}: df`);
    // Zero means are exact on both sides (identical arms), so an absolute 1e-15 suffices there.
    assertClose([r.meanDiff!, r.sdDiff!], [c.mean_diff, c.sd_diff], 1e-15, RTOL, `${c.name}: mean, sd`);
    assertClose(r.ciT!, c.ci_t, 1e-15, RTOL, `${c.name}: ciT`);
    if (c.sd_diff === 0) {
      // scipy says t = ±inf, p = 0 (or nan for identical arms); the statistic is undefined and svdlora says null.
      assert.equal(r.pT, null, `${c.name}: pT`);
      assert.equal(r.dz, null, `${c.name}: dz`);
    } else {
      close(r.pT, c.p_t!, `${c.name}: pT`);
      close(r.dz, c.dz!, `${c.name}: dz`);
    }
    if (c.n <= SIGN_FLIP_EXACT_MAX_N) {
      assert.equal(r.permutationMethod, "exact", c.name);
      close(r.pPermutation, c.p_permutation_exact, `${c.name}: pPermutation`);
    }
  }
});

test("paired comparisons: Monte Carlo permutation p within 5 standard errors of the exact one", { skip }, () => {
  // p̂ = (b + 1)/(m + 1) with b ~ Binomial(m, p): standard error √(p(1 − p)/m), bias at most 1/(m + 1).
  const m = DEFAULT_SIGN_FLIP.resamples;
  for (const { c, r } of pairedResults().filter(({ c }) => c.n > SIGN_FLIP_EXACT_MAX_N)) {
    assert.equal(r.permutationMethod, "monte-carlo", c.name);
    const p = c.p_permutation_exact;
    const tolerance = 5 * Math.sqrt((p * (1 - p)) / m) + 1 / (m + 1);
    assert.ok(Math.abs(r.pPermutation! - p) <= tolerance, `${c.name}: ${r.pPermutation} vs exact ${p} (± ${tolerance})`);
  }
});

test("paired comparisons: percentile bootstrap interval within 0.1 bootstrap standard deviations of scipy's", { skip }, () => {
  // An endpoint is the 2.5 % (97.5 %) quantile of B bootstrap means; for a near-normal bootstrap
  // distribution with spread σ* = sd·√((n − 1)/n)/√n its standard error is
  // √(0.025·0.975/B)/φ(1.96)·σ* = 2.67σ*/√B: 0.019σ* at svdlora's B = 20 000 (scipy's 10^6 adds
  // 0.003σ*), so 0.1σ* is about 5 standard errors. Zero variance must match exactly.
  assert.equal(DEFAULT_BOOTSTRAP.resamples, 20_000, "the tolerance above assumes 20 000 resamples");
  for (const { c, r } of pairedResults()) {
    const spread = (c.sd_diff * Math.sqrt((c.n - 1) / c.n)) / Math.sqrt(c.n);
    assertClose(r.ciBootstrap!, c.ci_bootstrap_percentile, 0.1 * spread, 0, `${c.name}: ciBootstrap`);
  }
});

test("Student t CDF and quantile as scipy.stats.t, tails included", { skip }, () => {
  const g = golden();
  for (const { df, t, cdf } of g.t_cdf) {
    if (cdf === 0) assert.ok(studentTCdf(t, df) < 1e-300, `F(${t}), df ${df} underflows`);
    else close(studentTCdf(t, df), cdf, `F(${t}), df ${df}`);
  }
  for (const { df, p, q } of g.t_ppf) assertClose([studentTQuantile(p, df)], [q], 0, RTOL, `q(${p}), df ${df}`);
});

test("normal CDF and quantile as scipy.stats.norm", { skip }, () => {
  const g = golden();
  for (const { z, cdf } of g.normal_cdf) close(normalCdf(z), cdf, `Φ(${z})`);
  for (const { p, q } of g.normal_ppf) assertClose([normalQuantile(p)], [q], 0, RTOL, `Φ⁻¹(${p})`);
});

test("Holm-adjusted p as the script's explicit step-down", { skip }, () => {
  for (const { p, adjusted } of golden().holm) {
    const ours = holm(p);
    assert.deepEqual(
      ours.map((v) => v === null),
      adjusted.map((v) => v === null),
      `nulls of ${p}`,
    );
    ours.forEach((v, i) => v !== null && close(v, adjusted[i]!, `holm(${p})[${i}]`));
  }
});

test("Wilson and Clopper–Pearson intervals as scipy.stats.binomtest / beta.ppf", { skip }, () => {
  for (const { k, n, confidence, wilson, clopper_pearson } of golden().proportions) {
    assertClose(proportionCi(k, n, { confidence, method: "wilson" }), wilson, 0, RTOL, `Wilson ${k}/${n} at ${confidence}`);
    assertClose(
      proportionCi(k, n, { confidence, method: "clopper-pearson" }),
      clopper_pearson,
      0,
      RTOL,
      `Clopper–Pearson ${k}/${n} at ${confidence}`,
    );
  }
});

test("McNemar exact p as scipy.stats.binomtest(b, b + c, 0.5)", { skip }, () => {
  for (const { b, c, p } of golden().mcnemar) {
    const base = [...Array(b).fill(true), ...Array(c).fill(false), true, false];
    const arm = [...Array(b).fill(false), ...Array(c).fill(true), true, false];
    const r = mcnemarExact(base, arm);
    assert.deepEqual([r.b, r.c], [b, c]);
    close(r.p, p, `McNemar ${b} vs ${c}`);
  }
});
