"""The statistics behind the summary: resampled intervals, the random baseline, the calibrated
test against random selections, accuracy-vs-retention AUC, enrichment of selected neurons,
class overlap and the test of a model against chance.

Every function takes arrays or DataFrames and returns numbers or DataFrames; nothing reads files.
Conventions (README, "Statistics"):
- resamples of the test set (`resample_counts`): within each class, whole homology clusters
  drawn with replacement, `n_boot` times with one seeded generator; all evaluations of a model
  share the same resamples (paired); intervals are percentile intervals at `level`.
- random band: over random seeds, mean, sample std (ddof=1) and the central `level` quantile
  range (numpy's linear interpolation; with 10 seeds the 95% band is nearly min-max).
- empirical p-value of beating random: k = number of random seeds whose value is at or above
  the method's. `p_raw = k / n` (0 for a method above every seed); the reported `p_value` is
  (k + 1) / (n + 1), the standard correction that counts the method itself as one draw of the
  null, so it is never 0 and its floor 1 / (n + 1) says how many seeds the claim rests on.
- the test against random (`random_test`, the one the summary uses): seeds and test sequences
  vary together, ties count against the method, a floor is read as the tied mass plus the
  seeds that escape it; its docstring has the definition and benchmarks/calibration.py its
  false-positive rate. Across all cells of a summary the p-values are adjusted by
  Benjamini-Hochberg (`bh_adjust`, SciPy's false_discovery_control), as q-values.
- `t_p_value`, `paired_delta`, `combined_p_value`, `bootstrap_counts` and `bootstrap_accuracy`
  are the test the summary used before (the larger of a prediction t-test, which held the test
  set fixed, and a paired bootstrap, which held the seeds' mean fixed); it overclaims at the
  chance floor and is kept as the baseline of benchmarks/calibration.py.
- AUC: trapezoid area of accuracy over log10(retention), divided by the log range: the mean
  accuracy over the retention levels on a log axis, in [0, 1]; a single level gives its accuracy.

Direction: with `keep` a method that finds knowledge neurons keeps more accuracy than random
(alternative "greater"); with `remove` it loses more (alternative "less").
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

# scipy.stats is imported where it is used: it costs ~1.3 s, and the class-specific evaluation
# jobs import this module (through kneurons.classes.report) without needing it.

ALTERNATIVES = ("greater", "less")


def alternative_of(direction: str) -> str:
    """The one-sided alternative of a masking direction: keep -> greater, remove -> less."""
    return "less" if direction == "remove" else "greater"


def bootstrap_counts(n: int, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, n) resampling counts: how often each sequence is drawn in each resample."""
    if n < 1:
        raise ValueError("bootstrap needs at least one test sequence")
    rng = np.random.default_rng(seed)
    return rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot).astype(np.float64)


def bootstrap_accuracy(correct: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Resampled accuracies (R, n_boot) of R evaluations whose correctness is (R, n)."""
    correct = np.atleast_2d(np.asarray(correct, dtype=np.float64))
    return correct @ counts.T / counts.shape[1]


def percentile_interval(samples: np.ndarray, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper bounds of the central `level` range along the last axis."""
    alpha = (1.0 - level) / 2.0
    return (
        np.quantile(samples, alpha, axis=-1),
        np.quantile(samples, 1.0 - alpha, axis=-1),
    )


def band(values: Sequence[float], level: float = 0.95) -> dict:
    """mean, std (ddof=1; 0 for one value), band_low/high (central quantiles), min, max, n."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        nan = float("nan")
        return dict(mean=nan, std=nan, band_low=nan, band_high=nan, min=nan, max=nan, n=0)
    low, high = percentile_interval(v, level)
    return {
        "mean": float(v.mean()),
        "std": float(v.std(ddof=1)) if v.size > 1 else 0.0,
        "band_low": float(low),
        "band_high": float(high),
        "min": float(v.min()),
        "max": float(v.max()),
        "n": int(v.size),
    }


def empirical_p_value(
    value: float, null: Sequence[float], alternative: str = "greater"
) -> tuple[float, float]:
    """(p_value, p_raw) of `value` beating the null draws; see the module docstring."""
    null = np.asarray(null, dtype=np.float64)
    if null.size == 0 or value is None or math.isnan(value):
        return float("nan"), float("nan")
    k = int(np.sum(null >= value)) if alternative == "greater" else int(np.sum(null <= value))
    return (k + 1) / (null.size + 1), k / null.size


def t_p_value(value: float, null: Sequence[float], alternative: str = "greater") -> float:
    """One-sided p-value of `value` as a new draw of the null's normal distribution (module
    docstring). NaN with fewer than two null draws; with no spread among them, 1.0 when `value`
    is not beyond them and NaN when it is (the normal model then has nothing to say)."""
    from scipy import stats

    if alternative not in ALTERNATIVES:
        raise ValueError(f"alternative must be one of {ALTERNATIVES}, got {alternative!r}")
    null = np.asarray(null, dtype=np.float64)
    if null.size < 2 or value is None or math.isnan(value):
        return float("nan")
    if np.ptp(null) == 0:
        beyond = value > null[0] if alternative == "greater" else value < null[0]
        return float("nan") if beyond else 1.0
    result = stats.ttest_ind([value], null, equal_var=True, alternative=alternative)
    return float(result.pvalue)


def paired_delta(
    method: np.ndarray,
    random: np.ndarray,
    observed: float,
    level: float = 0.95,
    alternative: str = "greater",
) -> dict:
    """delta (`observed`), its bootstrap percentile interval and one-sided bootstrap p-value.

    `method`: (n_boot,) resampled values of the method; `random`: (n_seeds, n_boot) those of
    the random seeds on the same resamples. NaN everywhere when there is no seed."""
    nan = float("nan")
    random = np.atleast_2d(np.asarray(random, dtype=np.float64))
    if random.shape[0] == 0 or random.size == 0:
        return {"delta": nan, "delta_ci_low": nan, "delta_ci_high": nan, "p_boot": nan}
    deltas = np.asarray(method, dtype=np.float64) - random.mean(axis=0)
    low, high = percentile_interval(deltas, level)
    wrong = np.sum(deltas <= 0) if alternative == "greater" else np.sum(deltas >= 0)
    return {
        "delta": float(observed),
        "delta_ci_low": float(low),
        "delta_ci_high": float(high),
        "p_boot": float((wrong + 1) / (deltas.size + 1)),
    }


def combined_p_value(p_t: float, p_boot: float) -> float:
    """The larger of the two (intersection-union test); NaN when either is NaN."""
    if p_t is None or p_boot is None or math.isnan(p_t) or math.isnan(p_boot):
        return float("nan")
    return max(p_t, p_boot)


def bh_adjust(p_values: Sequence[float]) -> np.ndarray:
    """Benjamini-Hochberg q-values of the finite p-values (NaN stays NaN, and is not counted
    among the tests)."""
    from scipy import stats

    p = np.asarray(p_values, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    finite = np.isfinite(p)
    if finite.any():
        out[finite] = stats.false_discovery_control(p[finite], method="bh")
    return out


def retention_auc(retention: Sequence[float], accuracy: Sequence[float]) -> float:
    """Normalised area under accuracy vs log10(retention); see the module docstring."""
    r = np.asarray(retention, dtype=np.float64)
    a = np.asarray(accuracy, dtype=np.float64)
    order = np.argsort(r)
    r, a = r[order], a[order]
    if r.size == 0:
        return float("nan")
    if r.size == 1:
        return float(a[0])
    x = np.log10(r)
    return float(np.sum((a[1:] + a[:-1]) / 2 * np.diff(x)) / (x[-1] - x[0]))


def auc_weights(retention: Sequence[float]) -> np.ndarray:
    """w with retention_auc(r, a) == w @ a (for r in the given order): AUC is linear in a."""
    r = np.asarray(retention, dtype=np.float64)
    eye = np.eye(r.size)
    return np.array([retention_auc(r, eye[i]) for i in range(r.size)])


def hypergeom_sf(k: int, population: int, successes: int, draws: int) -> float:
    """P(X >= k) for X ~ Hypergeometric(population, successes, draws) (SciPy)."""
    from scipy import stats

    return float(stats.hypergeom.sf(k - 1, population, successes, draws))


def enrichment(selection: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    """Density of selected units per group of `by`, and its ratio to the pool's density.

    `selection` holds one pool's units (columns layer_type, layer, neuron, selected).
    Columns: *by, n_units, n_selected, density (= n_selected / n_units), enrichment (= density
    / pool density; 1 = as many as a uniform choice would give), p_enriched (hypergeometric
    P(at least this many selected) under a uniform choice of the same size).
    """
    population, drawn = len(selection), int(selection["selected"].sum())
    grouped = selection.groupby(list(by), sort=True)["selected"]
    out = grouped.agg(n_units="size", n_selected="sum").reset_index()
    out["n_selected"] = out["n_selected"].astype(np.int64)
    out["density"] = out["n_selected"] / out["n_units"]
    pool_density = drawn / population if population else float("nan")
    out["enrichment"] = out["density"] / pool_density if pool_density else float("nan")
    out["p_enriched"] = [
        hypergeom_sf(int(k), population, int(n), drawn)
        for k, n in zip(out["n_selected"], out["n_units"], strict=True)
    ]
    return out


def jaccard(a: set, b: set) -> float:
    """|a & b| / |a | b| (1.0 for two empty sets)."""
    union = len(a | b)
    return len(a & b) / union if union else 1.0


def expected_random_jaccard(k: int, n: int) -> float:
    """E[J] for two independent uniform k-subsets of n units: the overlap two unrelated
    selections of that size have by chance (exact: their overlap is hypergeometric)."""
    from scipy import stats

    if n < 1 or k < 1 or k > n:
        return float("nan")
    overlap = np.arange(max(0, 2 * k - n), k + 1)
    pmf = stats.hypergeom.pmf(overlap, n, k, k)
    return float(np.sum(pmf * overlap / (2 * k - overlap)))


# ---------------------------------------------------------------------------------------------
# The test against random selections (issue 23): seeds and test sequences vary jointly


# Where at least this share of the random seeds share one value (a floor or a ceiling), a method
# beyond every seed is held to the rank p-value too (`random_test`).
FLOOR_SHARE = 0.5


def resample_counts(
    n: int,
    n_boot: int,
    seed: int,
    strata: Sequence | None = None,
    clusters: Sequence | None = None,
) -> np.ndarray:
    """(n_boot, n) multiplicities of the test sequences in `n_boot` resamples.

    Within each stratum (the sequences' classes; one stratum without `strata`) whole clusters
    (homology clusters; each sequence its own without `clusters`) are drawn with replacement,
    as many as the stratum holds, and each draw counts every member once. Every class keeps
    its place in every resample, and sequences of one cluster move together, as they do
    between the splits. Without strata or clusters this is the plain bootstrap."""
    if n < 1:
        raise ValueError("bootstrap needs at least one test sequence")
    strata = np.zeros(n, dtype=np.int64) if strata is None else np.asarray(strata)
    clusters = np.arange(n) if clusters is None else np.asarray(clusters)
    if len(strata) != n or len(clusters) != n:
        raise ValueError(f"strata and clusters must have one entry per test sequence ({n})")
    rng = np.random.default_rng(seed)
    counts = np.zeros((n_boot, n), dtype=np.float64)
    for stratum in pd.unique(strata):
        members = np.flatnonzero(strata == stratum)
        _, cluster_of = np.unique(clusters[members], return_inverse=True)
        n_clusters = int(cluster_of.max()) + 1
        drawn = rng.multinomial(n_clusters, np.full(n_clusters, 1.0 / n_clusters), size=n_boot)
        counts[:, members] = drawn[:, cluster_of]
    return counts


def resampled_means(values: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """(R, n_boot) means of R rows of per-sequence values (R, n) on each resample."""
    values = np.atleast_2d(np.asarray(values, dtype=np.float64))
    return values @ counts.T / counts.sum(axis=1)


def random_test(
    value: float,
    null: Sequence[float],
    method_boot: np.ndarray | None = None,
    null_boot: np.ndarray | None = None,
    alternative: str = "greater",
    level: float = 0.95,
    seed: int = 0,
) -> dict:
    """Does `value` (a method's accuracy, AUC or specificity) beat the random selections'
    values `null` (one per seed), counting what varies between runs: which random units are
    drawn, and which test sequences were sampled?

    `method_boot` (n_boot,) and `null_boot` (n_seeds, n_boot) are the same statistics on
    shared resamples of the test sequences (`resample_counts`: within classes, by homology
    cluster); without them the test set's noise is unknown and there is no p-value (p_z alone
    is reported, from the seeds' spread).

    - Δ = value − mean of the seeds. Its interval resamples both levels at once: on resample b
      the seeds are redrawn with replacement and Δ*_b = method_b − mean of the redrawn seeds_b
      (percentile interval at `level`): how far the method is from the average random
      selection, with the uncertainty of that average and of the test set.
    - p-value, one-sided: under the null the method's units are one more random draw, so Δ is
      a new draw's distance from the seeds' mean: variance s²(1 + 1/S) from the seeds' spread
      (s², S seeds; on a fixed test set it already holds each selection's sampling noise),
      and at least the test set's sampling variance of Δ (v_seq, the variance of method_b −
      mean seeds_b over the resamples), which carries the test where the seeds barely vary.
      z = Δ / sqrt(max(s²(1 + 1/S), v_seq)) against Student's t with S − 1 degrees of freedom
      (`p_z`).
    - Ties and seeds beyond count against the method: with k seeds at or beyond the value the
      p-value is at least (k + 1) / (S + 1), the exact rank p-value of exchangeable draws
      (`p_rank`). A method beyond every seed is judged by p_z alone, except at a floor or
      ceiling: where at least `FLOOR_SHARE` of the seeds share one value the normal model has
      nothing to stand on (a few random selections may leave the floor by many sequences), and
      the null is read as the tied mass plus the seeds that escape it (`_floor_p_value`): the
      chance that a random selection escapes, times the chance that an escape lands beyond
      the method. With fewer than two escapes that is (m + 1) / (S + 1) alone. Where nothing
      varies p_z is NaN and the p-value is the rank p-value.

    Returns delta, delta_ci_low, delta_ci_high, p_z, p_rank, n_tied_or_beyond, p_value (NaN
    with fewer than two seeds). benchmarks/calibration.py shows the false-positive rate at or
    below α on simulated nulls (normal, floored and tied, saturated, small test sets)."""
    from scipy import stats

    if alternative not in ALTERNATIVES:
        raise ValueError(f"alternative must be one of {ALTERNATIVES}, got {alternative!r}")
    nan = float("nan")
    null = np.asarray(null, dtype=np.float64)
    out = dict(
        delta=nan,
        delta_ci_low=nan,
        delta_ci_high=nan,
        p_z=nan,
        p_rank=nan,
        n_tied_or_beyond=-1,
        p_value=nan,
    )
    if null.size == 0 or value is None or math.isnan(value):
        return out
    sign = 1.0 if alternative == "greater" else -1.0
    delta = float(value - null.mean())
    out["delta"] = delta
    have_boot = method_boot is not None and null_boot is not None
    if have_boot:
        method_boot = np.asarray(method_boot, dtype=np.float64)
        null_boot = np.atleast_2d(np.asarray(null_boot, dtype=np.float64))
        n_boot = method_boot.size
        rng = np.random.default_rng(seed)
        redrawn = rng.integers(0, null.size, size=(n_boot, null.size))
        seeds_b = null_boot[redrawn, np.arange(n_boot)[:, None]].mean(axis=1)
        low, high = percentile_interval(method_boot - seeds_b, level)
        out["delta_ci_low"], out["delta_ci_high"] = float(low), float(high)
    if null.size < 2:
        return out
    k = int(np.sum(sign * (null - value) >= 0))
    out["n_tied_or_beyond"] = k
    out["p_rank"] = (k + 1) / (null.size + 1)
    v_seq = float(np.var(method_boot - null_boot.mean(axis=0), ddof=1)) if have_boot else 0.0
    s2 = float(np.var(null, ddof=1))
    scale = math.sqrt(max(s2 * (1.0 + 1.0 / null.size), v_seq))
    if scale > 0:
        out["p_z"] = float(stats.t.sf(sign * delta / scale, df=null.size - 1))
    if not have_boot:  # the test set's noise unknown: no test
        return out
    values, counts = np.unique(null, return_counts=True)
    floored = counts.max() >= FLOOR_SHARE * null.size
    if floored and k == 0:
        mode = float(values[np.argmax(counts)])
        out["p_value"] = _floor_p_value(value, null, mode, sign, v_seq)
    elif scale > 0 and k == 0:
        out["p_value"] = out["p_z"]
    elif scale > 0:
        out["p_value"] = max(out["p_z"], out["p_rank"])
    else:  # no spread to measure the gap against: the rank is all there is to go by
        out["p_value"] = out["p_rank"]
    return out


def _floor_p_value(value: float, null: np.ndarray, mode: float, sign: float, v_seq: float) -> float:
    """p-value of a method beyond every seed where most seeds share one value (`mode`: a floor
    or ceiling). The null is a point mass at the mode plus an "escape" distribution: a random
    selection beats `value` only if it leaves the mode (probability estimated by (m + 1) /
    (S + 1), m seeds beyond the mode in the method's direction: never below the rank bound's
    share) and then lands beyond `value` (a new draw of the m escapes' normal distribution, its
    scale at least the test set's noise sqrt(v_seq); unknown, so 1, with fewer than 2 escapes).
    The escapes are what random selections do when they leave the floor; a method judged
    against them, not against the tied mass, cannot pass for leaving the floor alone."""
    from scipy import stats

    escapes = null[sign * (null - mode) > 0]
    m = escapes.size
    share = (m + 1) / (null.size + 1)
    if m < 2:
        return share
    scale = math.sqrt(max(float(np.var(escapes, ddof=1)) * (1.0 + 1.0 / m), v_seq))
    if scale == 0:
        return share
    tail = float(stats.t.sf(sign * (value - escapes.mean()) / scale, df=m - 1))
    return share * tail


def above_chance_p_value(accuracy: float, n: int, chance: float) -> float:
    """One-sided exact binomial p-value of `accuracy` on `n` test sequences exceeding `chance`
    (the majority-class rate): P(X ≥ correct) for X ~ Binomial(n, chance). A model whose
    p-value is above α has not been shown to know more than the class frequencies."""
    from scipy import stats

    if n < 1 or chance is None or math.isnan(accuracy):
        return float("nan")
    correct = int(round(accuracy * n))
    return float(stats.binom.sf(correct - 1, n, chance))
