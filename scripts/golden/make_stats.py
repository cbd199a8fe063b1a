# Makes the reference values for svdlora's statistics (src/stats/) with numpy + scipy. From the
# repository root, on a machine with numpy and scipy installed:
#   python3 scripts/golden/make_stats.py test/fixtures/golden/stats/scipy.json
# The committed file was made with Python 3.11.7, numpy 2.4.6, scipy 1.17.1 (the JSON records the
# versions it was made with). It takes about 10 s. test/stats/scipy-golden.test.ts reads it.
import json, math, platform, sys
import numpy as np
import scipy
from scipy import stats

out = sys.argv[1]
CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 10**6  # practically exact percentiles: the tests' tolerance covers svdlora's own resampling
BOOTSTRAP_SEED = 20261201
rng = np.random.default_rng(20261201)


def num(x):
    """A float for JSON; NaN and infinities become null (JSON has no such numbers)."""
    x = float(x)
    return x if math.isfinite(x) else None


def generated(n, shift, noise, base_level=0.6, base_spread=0.05):
    """Baseline and arm values of n seeds, rounded to 5 decimals (the JSON holds them exactly)."""
    base = np.round(base_level + base_spread * rng.standard_normal(n), 5)
    arm = np.round(base + shift + noise * rng.standard_normal(n), 5)
    return base.tolist(), arm.tolist()


# Dyadic values (exact in binary) where exact ties or a zero variance must survive the subtraction.
PAIRED = [
    ("n2", [0.52, 0.61], [0.50, 0.58]),
    ("n3", [0.71, 0.64, 0.69], [0.66, 0.65, 0.61]),
    ("n5_all_positive", [0.41, 0.47, 0.44, 0.52, 0.45], [0.43, 0.48, 0.50, 0.53, 0.47]),
    ("n5_mixed", [0.41, 0.47, 0.44, 0.52, 0.45], [0.40, 0.49, 0.41, 0.50, 0.44]),
    ("n5_ties", [1.0, 1.0, 1.0, 1.0, 1.0], [1.25, 0.75, 1.25, 1.5, 0.5]),
    ("n5_zero_variance", [0.5, 0.75, 1.0, 1.25, 1.5], [0.625, 0.875, 1.125, 1.375, 1.625]),
    ("n5_identical", [0.5, 0.75, 1.0, 1.25, 1.5], [0.5, 0.75, 1.0, 1.25, 1.5]),
    ("n7_null_pairs", [0.61, 0.58, None, 0.66, 0.59, 0.63, 0.60], [0.55, 0.57, 0.52, 0.60, 0.58, None, 0.56]),
    ("n8_large_effect", *generated(8, -0.1, 0.004)),
    ("n8_negative_effect", *generated(8, -0.02, 0.015)),
    ("n12_moderate", *generated(12, 0.01, 0.02)),
    ("n12_large_values", *generated(12, 30.0, 12.0, base_level=250.0, base_spread=40.0)),
    ("n20_small_effect", *generated(20, -0.004, 0.02)),
    ("n25_effect", *generated(25, -0.01, 0.02)),
]


def holm(ps):
    """Holm's step-down adjustment, written out: sort the m non-null p ascending; the i-th (from 0)
    gets min(1, (m - i) p), then a running maximum keeps the adjusted values monotone. Nulls stay null."""
    order = sorted((p, i) for i, p in enumerate(ps) if p is not None)
    m = len(order)
    adjusted = [None] * len(ps)
    running = 0.0
    for rank, (p, i) in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    return adjusted


def mean_diff(x, y, axis=-1):
    return np.mean(x - y, axis=axis)


def sign_flip_enumerated(d):
    """Exact two-sided sign-flip p of mean(d) by enumerating all 2^n assignments (half sums joined),
    with scipy.stats.permutation_test's tie tolerance (100 eps |observed|) and its 2 min(less, greater)."""
    n = len(d)
    half = n // 2

    def signed_sums(xs):
        k = len(xs)
        bits = (np.arange(2**k)[:, None] >> np.arange(k)) & 1
        return (np.where(bits == 1, -1.0, 1.0) * xs).sum(axis=1)

    first, second = signed_sums(d[:half]), signed_sums(d[half:])
    observed = d.sum()
    gamma = abs(100 * np.finfo(float).eps * observed)
    less = greater = 0
    for a in first:
        sums = a + second
        less += np.count_nonzero(sums <= observed + gamma)
        greater += np.count_nonzero(sums >= observed - gamma)
    return min(1.0, 2 * min(less, greater) / 2**n)


paired = []
for name, base, arm in PAIRED:
    keep = [i for i in range(len(base)) if base[i] is not None and arm[i] is not None]
    b = np.array([base[i] for i in keep])
    a = np.array([arm[i] for i in keep])
    d = a - b
    n = len(d)
    sd = np.std(d, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        tt = stats.ttest_rel(a, b)
        ci_t = tt.confidence_interval(CONFIDENCE)
    half_width = stats.t.ppf((1 + CONFIDENCE) / 2, n - 1) * sd / math.sqrt(n)
    if sd > 0:
        assert math.isclose(ci_t.low, d.mean() - half_width, rel_tol=1e-12, abs_tol=1e-15), name
    enumerated = sign_flip_enumerated(d)
    if n <= 20:  # scipy enumerates 2^25 assignments in minutes, so n = 25 relies on the enumeration above
        perm = stats.permutation_test((a, b), mean_diff, permutation_type="samples", vectorized=True, n_resamples=np.inf, batch=1 << 16)
        assert math.isclose(perm.pvalue, enumerated, rel_tol=1e-12), (name, perm.pvalue, enumerated)
    boot = stats.bootstrap((d,), np.mean, method="percentile", confidence_level=CONFIDENCE, n_resamples=BOOTSTRAP_RESAMPLES,
                           batch=10**5, vectorized=True, rng=np.random.default_rng(BOOTSTRAP_SEED))
    paired.append({
        "name": name,
        "baseline": base,
        "arm": arm,
        "n": n,
        "mean_diff": num(d.mean()),
        "sd_diff": num(sd),
        "dz": num(d.mean() / sd) if sd > 0 else None,
        "df": n - 1,
        # scipy reports t = ±inf, p = 0 (or nan) when sd_diff = 0; svdlora reports null there.
        "t": num(tt.statistic),
        "p_t": num(tt.pvalue),
        "ci_t": [d.mean() - half_width, d.mean() + half_width],
        "p_permutation_exact": enumerated,
        "ci_bootstrap_percentile": [float(boot.confidence_interval.low), float(boot.confidence_interval.high)],
    })

T_DFS = [1, 2, 3, 4, 5, 7, 11, 19, 24, 100, 1000, 100000]
T_VALUES = [-200.0, -40.0, -12.0, -5.0, -2.5, -1.0, -0.25, 0.0, 0.6, 1.7, 3.0, 8.0, 30.0]
PROBS = [1e-12, 1e-6, 0.001, 0.005, 0.025, 0.05, 0.1, 0.3, 0.5, 0.7, 0.9, 0.95, 0.975, 0.995, 0.999]

t_cdf = [{"df": df, "t": t, "cdf": float(stats.t.cdf(t, df))} for df in T_DFS for t in T_VALUES]
t_ppf = [{"df": df, "p": p, "q": float(stats.t.ppf(p, df))} for df in T_DFS for p in PROBS]
normal_cdf = [{"z": z, "cdf": float(stats.norm.cdf(z))} for z in [-30.0, -8.0, -3.0, -1.96, -0.5, 0.0, 0.5, 1.96, 3.0, 8.0]]
normal_ppf = [{"p": p, "q": float(stats.norm.ppf(p))} for p in PROBS]

HOLM = [
    [0.01, 0.04, 0.03, 0.005],
    [0.01, None, 0.02, None, 0.5],
    [0.3, 0.2, 0.6, 0.9],
    [0.04, 0.04, 0.04],
    [0.001, 0.013, 0.014, 0.5],
    [0.07],
    [],
    [None, None],
]
holm_cases = [{"p": ps, "adjusted": holm(ps)} for ps in HOLM]

proportions = []
for k, n in [(0, 1), (1, 1), (3, 10), (50, 100), (0, 1000), (1, 1000), (537, 1000), (999, 1000), (1000, 1000), (1234, 2000), (5, 5000)]:
    for confidence in [0.9, 0.95, 0.99]:
        alpha = 1 - confidence
        # Clopper-Pearson from the beta quantiles (full precision); binomtest's own 'exact' interval
        # solves the same equations with brentq (absolute tolerance ~2e-12), so it is only checked here.
        cp = [0.0 if k == 0 else float(stats.beta.ppf(alpha / 2, k, n - k + 1)),
              1.0 if k == n else float(stats.beta.ppf(1 - alpha / 2, k + 1, n - k))]
        exact = stats.binomtest(k, n).proportion_ci(confidence_level=confidence, method="exact")
        assert abs(exact.low - cp[0]) < 1e-10 and abs(exact.high - cp[1]) < 1e-10, (k, n, confidence)
        wilson = stats.binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
        proportions.append({"k": k, "n": n, "confidence": confidence, "wilson": [float(wilson.low), float(wilson.high)], "clopper_pearson": cp})

mcnemar = [{"b": b, "c": c, "p": float(stats.binomtest(b, b + c, 0.5).pvalue)}
           for b, c in [(0, 1), (1, 0), (5, 5), (0, 6), (3, 12), (12, 3), (7, 8), (40, 61), (100, 130), (250, 310)]]

with open(out, "w") as f:
    json.dump({
        "made_with": {"python": platform.python_version(), "numpy": np.__version__, "scipy": scipy.__version__},
        "confidence": CONFIDENCE,
        "bootstrap": {"method": "percentile", "resamples": BOOTSTRAP_RESAMPLES, "seed": BOOTSTRAP_SEED},
        "paired": paired,
        "t_cdf": t_cdf,
        "t_ppf": t_ppf,
        "normal_cdf": normal_cdf,
        "normal_ppf": normal_ppf,
        "holm": holm_cases,
        "proportions": proportions,
        "mcnemar": mcnemar,
    }, f, indent=1)
    f.write("\n")
