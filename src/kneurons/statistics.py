"""The statistics behind the summary: bootstrap intervals, the random baseline, empirical
p-values, accuracy-vs-retention AUC, enrichment of selected neurons and class overlap.

Every function takes arrays or DataFrames and returns numbers or DataFrames; nothing reads files.
Conventions (README, "Statistics"):
- bootstrap: resample test sequences with replacement, `n_boot` times with one seeded generator;
  all evaluations of a model share the same resamples (paired), so differences are comparable;
  the interval is the percentile interval at `level`.
- random band: over random seeds, mean, sample std (ddof=1) and the central `level` quantile
  range (numpy's linear interpolation; with 10 seeds the 95% band is nearly min-max).
- empirical p-value of beating random: k = number of random seeds whose value is at or above
  the method's. `p_raw = k / n` (0 for a method above every seed); the reported `p_value` is
  (k + 1) / (n + 1), the standard correction that counts the method itself as one draw of the
  null, so it is never 0 and its floor 1 / (n + 1) says how many seeds the claim rests on.
- AUC: trapezoid area of accuracy over log10(retention), divided by the log range: the mean
  accuracy over the retention levels on a log axis, in [0, 1]; a single level gives its accuracy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd


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


def empirical_p_value(value: float, null: Sequence[float]) -> tuple[float, float]:
    """(p_value, p_raw) of `value` beating the null draws; see the module docstring."""
    null = np.asarray(null, dtype=np.float64)
    if null.size == 0 or value is None or math.isnan(value):
        return float("nan"), float("nan")
    k = int(np.sum(null >= value))
    return (k + 1) / (null.size + 1), k / null.size


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
    """P(X >= k) for X ~ Hypergeometric(population, successes, draws), exact in log space.

    The pmf of the first term comes from log-gamma; the rest follow from the ratio
    pmf(i + 1) / pmf(i) = (K - i)(n - i) / ((i + 1)(N - K - n + i + 1)), summed stably.
    """

    def log_comb(n: int, m: int) -> float:
        return math.lgamma(n + 1) - math.lgamma(m + 1) - math.lgamma(n - m + 1)

    big_n, big_k, n = population, successes, draws
    lo, hi = max(k, 0, n - (big_n - big_k)), min(big_k, n)
    if lo > hi:
        return 0.0 if k > hi else 1.0
    first = log_comb(big_k, lo) + log_comb(big_n - big_k, n - lo) - log_comb(big_n, n)
    i = np.arange(lo, hi, dtype=np.float64)
    steps = np.log(big_k - i) + np.log(n - i) - np.log(i + 1) - np.log(big_n - big_k - n + i + 1)
    logs = first + np.concatenate([[0.0], np.cumsum(steps)])
    top = logs.max()
    return float(min(1.0, math.exp(top) * np.exp(logs - top).sum()))


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
    """E|A & B| / (2k - E|A & B|) for two independent uniform k-subsets of n units: the overlap
    two unrelated selections of that size have by chance (a close approximation of E[J])."""
    if n == 0 or k == 0:
        return float("nan")
    inter = k * k / n
    return inter / (2 * k - inter)
