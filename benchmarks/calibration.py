"""Calibration of the test against random selections (issue 23): false-positive rate and power.

A summary tests each cell (a selection method's masked-model accuracy at one retention level)
against S random selections ("seeds") of the same size, evaluated on the same n test
sequences. This benchmark simulates such cells, with per-sequence correctness, and counts how
often each test calls the method better than random:

- OLD: p = max(p_t, p_boot), exactly as `kneurons.summary.tables._cell_tests` computes it
  (`t_p_value`; `paired_delta` on `bootstrap_counts` / `bootstrap_accuracy`;
  `combined_p_value`). A NaN p-value (every seed tied and the method beyond them) is no finding.
- NEW: `statistics.random_test` as it is now, fed the resampled means of `resample_counts` with
  the test sequences' classes as strata and their homology clusters as clusters (how the
  summary calls it). Δ = method − mean of the seeds; z = Δ / sqrt(max(s²(1 + 1/S), v_seq))
  against Student's t (p_z; s² the seeds' variance, v_seq the test set's resampling variance
  of Δ); with k seeds tied with or beyond the method p ≥ (k + 1) / (S + 1) (p_rank); and at a
  floor or ceiling (at least `statistics.FLOOR_SHARE` of the seeds share one value) a method
  beyond every seed is judged against the seeds that escape the floor: p = (m + 1) / (S + 1) x
  the t tail of the method among the m escapes (their spread at least the test set's noise;
  (m + 1) / (S + 1) alone with fewer than 2 escapes).
- draft (SUPERSEDED, for reference only): the first version of NEW, recomputed here from the
  same quantities (`draft_test`): variance s²(1 + 1/S) + v_seq (the sum), p = p_z for a method
  beyond every seed (k = 0) and max(p_z, p_rank) otherwise, p_rank where the scale is 0; no
  floor reading.
- t only: OLD's t p-value alone.

Why the floor reading: on a "bimodal floor" most random selections sit on the floor and a few
leave it by many sequences. Often no seed leaves it (with S = 10 and a 20% escape chance, one
cell in nine), so s² is 0 or small while the method, one more random draw, escapes; Δ is then
large against a spread that the seeds never showed, and a normal model (the draft, or NEW's p_z
alone) calls it a finding. NEW reads the null as a point mass at the floor plus an escape
distribution, and asks how likely a random selection is to escape (estimated with a +1, as the
rank p-value does) and then to land beyond the method. A second version held every method
beyond the seeds to 1 / (S + 1) at a floor; it was calibrated too but found nothing at a floor
with 10 seeds (power ≤ 0.006 at d = 0.2) and cost the planted-motif run its key 10% finding
(random seeds at the 0.25 floor, IG at 0.633). The cost of the reading now: at a floor with few
escapes claims stay near (m + 1) / (S + 1) (power 0.59 at d = 0.2, α = 0.05, 10 seeds; 0.94 with
20), and saturated "less" cells lose power against the draft (0.78 against 1.00 at d = 0.2).

Null cells: the method is one more random selection, drawn exactly like the seeds, so every
rejection is a false positive; the printed rate at alpha = 0.05 and 0.01 comes with its
Monte-Carlo 95% Wilson interval, and a test is "calibrated" in a scenario when that interval
contains alpha or lies below it. Planted effects: the method's selection-level mean accuracy is
shifted by d in the direction of the alternative, and the rejection rate is the power.

Simulation (one cell = one simulated test set and S + 1 selections):
- n test sequences in K classes with fixed, possibly unbalanced, shares; optional homology
  clusters of 1-5 sequences of one class.
- normal / saturated cells: per-class recall of each selection on the logit scale around the
  cell's class means (a selection-wide and a per-class random effect), and per-sequence
  correctness by thresholding a latent normal that mixes the sequence's ease (shared by all
  selections; shared within a cluster) with selection-specific noise (also correlated within a
  cluster). Each sequence's marginal probability of being correct is its class recall.
- floored cells: every selection collapses onto one sink class (it predicts the largest class;
  accuracy = that class's share) and with probability 0.2 leaves the floor by a few sequences
  (1 + Poisson(2), the easier ones more likely; whole clusters with clusters on), so most seeds
  tie. The "escapes" and "bimodal" variants let them leave it by more (1 + Poisson(6, 12, 25)):
  near a collapse some random selections keep the model working and most do not.

Run (one process, seeded, deterministic; one BLAS thread):

    python benchmarks/calibration.py            # 2000 simulations per null, 500 per effect,
                                                # n_boot 500: 6 minutes on a busy 2-core box
    python benchmarks/calibration.py --quick    # 400 / 150, n_boot 200: about 1 minute
    python benchmarks/calibration.py --only bimodal --sims 5000 --no-power
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, replace

if __name__ == "__main__":
    # One BLAS thread (set before numpy loads): the tests are many small matrix products, which
    # a multi-threaded BLAS makes several times slower on a busy machine. Not when imported.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from scipy import special, stats  # noqa: E402

from kneurons import statistics as st  # noqa: E402

ALPHAS = (0.05, 0.01)
LEVEL = 0.95

# ---------------------------------------------------------------------------------------------
# Scenarios


@dataclass(frozen=True)
class Scenario:
    """One kind of cell. `kind`: normal (moderate accuracy), floored (collapse onto a sink class,
    ties) or saturated (accuracy at or near 1, ties at the ceiling). `effect` d shifts the
    method's selection-level mean accuracy by d in the direction of `alternative` (0 = null)."""

    name: str
    kind: str = "normal"
    n: int = 100
    shares: tuple[float, ...] = (0.4, 0.3, 0.2, 0.1)
    n_seeds: int = 10
    clusters: bool = False
    alternative: str = "greater"
    effect: float = 0.0
    accuracy: float = 0.6  # normal / saturated: the centre of the per-class recalls
    class_spread: float = 0.5  # logit-scale spread of the class recalls around it
    tau: float = 0.15  # logit-scale sd of a selection's recall (selection random effect)
    rho: float = 0.5  # latent correlation of two selections on one sequence (shared ease)
    kappa: float = 0.5  # latent correlation of two sequences of one homology cluster
    p_leave: float = 0.2  # floored: probability that a selection leaves the floor
    leave_mean: float = 2.0  # floored: it gains 1 + Poisson(leave_mean) sequences
    cluster_max: int = 5


SEVEN = (0.3, 0.2, 0.15, 0.12, 0.1, 0.08, 0.05)
SATURATED = dict(kind="saturated", accuracy=0.995, class_spread=0.3, tau=0.3)


def null_scenarios() -> list[Scenario]:
    return [
        Scenario("normal"),
        Scenario("normal, clusters", clusters=True),
        Scenario("normal, S=20", n_seeds=20),
        Scenario("normal, n=20", n=20),
        Scenario("normal, n=400 K=7, clusters", n=400, shares=SEVEN, clusters=True),
        Scenario("normal, less", alternative="less"),
        Scenario("floored", kind="floored"),
        Scenario("floored, S=20", kind="floored", n_seeds=20),
        Scenario("floored, clusters", kind="floored", clusters=True),
        Scenario("floored, n=20", kind="floored", n=20),
        Scenario(
            "floored, n=400 K=7, clusters", kind="floored", n=400, shares=SEVEN, clusters=True
        ),
        # seeds that leave the floor leave it further: 1 + Poisson(6 / 12 / 25) sequences of 100
        # (the last two are bimodal nulls: a few random selections keep the model working)
        Scenario("floored, escapes 1+Poi(6)", kind="floored", leave_mean=6.0),
        Scenario("bimodal, escapes 1+Poi(12) p=0.1", kind="floored", leave_mean=12.0, p_leave=0.1),
        Scenario("bimodal, escapes 1+Poi(25)", kind="floored", leave_mean=25.0),
        Scenario("bimodal, escapes 1+Poi(25), S=20", kind="floored", leave_mean=25.0, n_seeds=20),
        Scenario("floored, less", kind="floored", alternative="less"),
        Scenario("saturated", **SATURATED),
        Scenario("saturated, less", alternative="less", **SATURATED),
        Scenario(
            "saturated, less, n=400 S=20, clusters",
            alternative="less",
            n=400,
            n_seeds=20,
            clusters=True,
            **SATURATED,
        ),
        Scenario("saturated, less, n=20", alternative="less", n=20, **SATURATED),
    ]


EFFECTS = (0.02, 0.05, 0.1, 0.2)


def effect_scenarios(effects=EFFECTS) -> list[Scenario]:
    out = []
    bases = (
        Scenario("normal"),
        Scenario("floored", kind="floored"),
        Scenario("floored, S=20", kind="floored", n_seeds=20),
        Scenario("saturated, less", alternative="less", **SATURATED),
    )
    for base in bases:
        for d in effects:
            out.append(replace(base, name=f"{base.name}, d={d:g}", effect=d))
    return out


# ---------------------------------------------------------------------------------------------
# Simulation


@dataclass
class TestSet:
    classes: np.ndarray  # (n,) class index
    clusters: np.ndarray  # (n,) homology cluster id (each sequence its own without clusters)
    ease: np.ndarray  # (n,) standard normal latent: higher = easier for every selection
    cluster_ease: np.ndarray  # (n_clusters,) the cluster part of `ease`


def class_sizes(n: int, shares: tuple[float, ...]) -> np.ndarray:
    """Sequences per class: the shares of n by largest remainder, at least one each."""
    shares = np.asarray(shares, dtype=float) / np.sum(shares)
    if n < len(shares):
        raise ValueError(f"{n} sequences cannot hold {len(shares)} classes")
    raw = shares * n
    sizes = np.maximum(np.floor(raw).astype(int), 1)
    by_remainder = np.argsort(-(raw - np.floor(raw)), kind="stable")
    i = 0
    while sizes.sum() < n:
        sizes[by_remainder[i % sizes.size]] += 1
        i += 1
    while sizes.sum() > n:  # the minimum of one pushed it over: take from the largest
        sizes[np.argmax(sizes)] -= 1
    return sizes


def make_test_set(rng: np.random.Generator, scenario: Scenario) -> TestSet:
    sizes = class_sizes(scenario.n, scenario.shares)
    classes = np.repeat(np.arange(len(sizes)), sizes)
    if scenario.clusters:
        clusters = np.empty(scenario.n, dtype=np.int64)
        start, next_id = 0, 0
        for size in sizes:  # clusters stay within a class, as homologs share their function
            end = start + size
            while start < end:
                length = min(int(rng.integers(1, scenario.cluster_max + 1)), end - start)
                clusters[start : start + length] = next_id
                start, next_id = start + length, next_id + 1
        kappa = scenario.kappa
    else:
        clusters = np.arange(scenario.n)
        kappa = 0.0
    cluster_ease = rng.standard_normal(int(clusters.max()) + 1)
    ease = math.sqrt(kappa) * cluster_ease[clusters] + math.sqrt(1 - kappa) * rng.standard_normal(
        scenario.n
    )
    return TestSet(classes, clusters, ease, cluster_ease)


def class_recalls(scenario: Scenario) -> np.ndarray:
    """The cell's mean recall per class (normal / saturated)."""
    k = len(scenario.shares)
    offsets = np.linspace(-1.0, 1.0, k) if k > 1 else np.zeros(1)
    return special.expit(special.logit(scenario.accuracy) + scenario.class_spread * offsets)


def _latent_correct(rng, scenario: Scenario, test: TestSet, recalls: np.ndarray) -> np.ndarray:
    """(R, n) correctness of R selections with per-class recalls `recalls` (R, K)."""
    n_sel = recalls.shape[0]
    kappa = scenario.kappa if scenario.clusters else 0.0
    n_clusters = int(test.clusters.max()) + 1
    noise = math.sqrt(kappa) * rng.standard_normal((n_sel, n_clusters))[:, test.clusters]
    noise += math.sqrt(1 - kappa) * rng.standard_normal((n_sel, scenario.n))
    latent = math.sqrt(scenario.rho) * test.ease + math.sqrt(1 - scenario.rho) * noise
    # P(latent > -Φ⁻¹(r)) = r: each sequence is correct with its class recall, marginally
    return latent > -special.ndtri(recalls[:, test.classes])


def _selection_recalls(rng, scenario: Scenario, means: np.ndarray, n_sel: int) -> np.ndarray:
    k = means.size
    shift = rng.standard_normal((n_sel, 1)) + rng.standard_normal((n_sel, k))
    return special.expit(special.logit(means) + scenario.tau * math.sqrt(0.5) * shift)


def _floored_correct(rng, scenario: Scenario, test: TestSet, n_sel: int) -> np.ndarray:
    """(R, n): each selection predicts the sink (largest) class; with probability p_leave it
    also gets 1 + Poisson(leave_mean) other sequences right, the easier ones more likely
    (whole clusters when there are clusters)."""
    sink = int(np.argmax(class_sizes(scenario.n, scenario.shares)))
    floor = test.classes == sink
    correct = np.repeat(floor[None, :], n_sel, axis=0)
    others = np.flatnonzero(~floor)
    # units that leave together: clusters of non-sink sequences (singletons without clusters)
    unit_ids, unit_of = np.unique(test.clusters[others], return_inverse=True)
    ease = test.cluster_ease[unit_ids] if scenario.clusters else test.ease[others]
    sizes = np.bincount(unit_of, minlength=unit_ids.size)
    leaving = np.flatnonzero(rng.random(n_sel) < scenario.p_leave)
    gains = np.minimum(1 + rng.poisson(scenario.leave_mean, leaving.size), others.size)
    # weighted order without replacement (Gumbel top-k), weights exp(1.5 * ease)
    keys = 1.5 * ease + rng.gumbel(size=(leaving.size, unit_ids.size))
    order = np.argsort(-keys, axis=1)
    for r, gain, units in zip(leaving, gains, order, strict=True):
        take = units[: int(np.searchsorted(np.cumsum(sizes[units]), gain)) + 1]
        hit = np.zeros(unit_ids.size, dtype=bool)
        hit[take] = True
        correct[r, others[hit[unit_of]]] = True
    return correct


def simulate_cell(rng: np.random.Generator, scenario: Scenario) -> tuple[TestSet, np.ndarray]:
    """A test set and the (1 + S, n) correctness of the method (row 0) and the S seeds."""
    test = make_test_set(rng, scenario)
    n_sel = 1 + scenario.n_seeds
    sign = 1.0 if scenario.alternative == "greater" else -1.0
    d = sign * scenario.effect
    if scenario.kind == "floored":
        correct = _floored_correct(rng, scenario, test, n_sel)
        if d > 0:  # the method gets about d * n more of the other sequences right
            wrong = np.flatnonzero(~correct[0])
            p = min(1.0, d * scenario.n / max(wrong.size, 1))
            correct[0, wrong[rng.random(wrong.size) < p]] = True
        elif d < 0:
            right = np.flatnonzero(correct[0])
            p = min(1.0, -d * scenario.n / max(right.size, 1))
            correct[0, right[rng.random(right.size) < p]] = False
        return test, correct
    if scenario.kind not in ("normal", "saturated"):
        raise ValueError(f"unknown scenario kind {scenario.kind!r}")
    means = class_recalls(scenario)
    recalls = _selection_recalls(rng, scenario, means, n_sel)
    if d:
        shifted = np.clip(means + d, 1e-4, 1 - 1e-4)
        recalls[0] = _selection_recalls(rng, scenario, shifted, 1)[0]
    return test, _latent_correct(rng, scenario, test, recalls)


# ---------------------------------------------------------------------------------------------
# The two tests on one simulated cell


def old_test(correct: np.ndarray, alternative: str, n_boot: int, seed: int) -> dict:
    """`tables._cell_tests` on the accuracy of row 0 against rows 1..S (plain bootstrap)."""
    counts = st.bootstrap_counts(correct.shape[1], n_boot, seed)
    samples = st.bootstrap_accuracy(correct, counts)
    accuracy = correct.mean(axis=1)
    value, null = float(accuracy[0]), accuracy[1:]
    p_t = st.t_p_value(value, null, alternative)
    delta = value - np.mean(null)
    boot = st.paired_delta(samples[0], samples[1:], delta, LEVEL, alternative)
    return {"p_t": p_t, "p_boot": boot["p_boot"], "p": st.combined_p_value(p_t, boot["p_boot"])}


def new_test(
    correct: np.ndarray, test: TestSet, scenario: Scenario, n_boot: int, seed: int
) -> dict:
    """`statistics.random_test` on stratified (class) and clustered resamples; also returns
    v_seq (the test set's resampling variance of Δ, as random_test computes it) for the draft
    (`draft_test`)."""
    clusters = test.clusters if scenario.clusters else None
    counts = st.resample_counts(
        correct.shape[1], n_boot, seed, strata=test.classes, clusters=clusters
    )
    means = st.resampled_means(correct, counts)
    accuracy = correct.mean(axis=1)
    out = st.random_test(
        float(accuracy[0]), accuracy[1:], means[0], means[1:], scenario.alternative, LEVEL, seed
    )
    v_seq = float(np.var(means[0] - means[1:].mean(axis=0), ddof=1))
    return {**out, "p": out["p_value"], "v_seq": v_seq}


@dataclass
class Result:
    """Per simulated cell: the p-values of OLD and NEW and the quantities they are computed from
    (enough to recompute NEW and the superseded draft: `recompute`)."""

    scenario: Scenario
    n_sims: int
    p_old: np.ndarray
    p_t: np.ndarray  # the old test's t p-value alone (the overclaiming half of OLD)
    p_new: np.ndarray
    p_z: np.ndarray  # NEW's p_z (variance max(s²(1 + 1/S), v_seq))
    k: np.ndarray  # seeds tied with or beyond the method (0 = beyond every seed)
    s2: np.ndarray  # the seeds' variance (ddof=1)
    v_seq: np.ndarray
    mode_share: np.ndarray  # share of the seeds holding the most common seed accuracy
    tied: np.ndarray  # the method's accuracy equals at least one seed's
    delta: np.ndarray
    seeds_mean: np.ndarray
    seconds: float

    @property
    def beyond_all(self) -> np.ndarray:
        return self.k == 0

    @property
    def floored(self) -> np.ndarray:
        """NEW's floor rule applies: at least FLOOR_SHARE of the seeds share one accuracy."""
        return self.mode_share >= st.FLOOR_SHARE


def run_scenario(
    scenario: Scenario,
    n_sims: int,
    n_boot: int = 500,
    seed: int = 0,
    tests: tuple[Callable, Callable] = (old_test, new_test),
) -> Result:
    """`n_sims` simulated cells of `scenario`, both tests on each (seeded by `seed` and the
    scenario's name, so a scenario's numbers do not depend on which others run)."""
    old, new = tests
    start = time.perf_counter()
    root = np.random.SeedSequence([seed, zlib.crc32(scenario.name.encode())])
    rng = np.random.default_rng(root)
    names = ("p_old", "p_t", "p_new", "p_z", "k", "s2", "v_seq", "mode_share", "tied", "delta")
    cols = {name: np.empty(n_sims) for name in (*names, "seeds_mean")}
    for i in range(n_sims):
        test, correct = simulate_cell(rng, scenario)
        boot_seed = int(rng.integers(2**31))
        o = old(correct, scenario.alternative, n_boot, boot_seed)
        w = new(correct, test, scenario, n_boot, boot_seed)
        hits = correct.sum(axis=1)  # accuracy * n, exact integers
        accuracy = hits / correct.shape[1]
        cols["p_old"][i], cols["p_t"][i] = o["p"], o["p_t"]
        cols["p_new"][i], cols["p_z"][i], cols["k"][i] = w["p"], w["p_z"], w["n_tied_or_beyond"]
        cols["s2"][i], cols["v_seq"][i] = np.var(accuracy[1:], ddof=1), w["v_seq"]
        cols["mode_share"][i] = np.unique(hits[1:], return_counts=True)[1].max() / (hits.size - 1)
        cols["tied"][i] = np.any(hits[1:] == hits[0])
        cols["delta"][i] = accuracy[0] - accuracy[1:].mean()
        cols["seeds_mean"][i] = accuracy[1:].mean()
    cols["k"] = cols["k"].astype(int)
    cols["tied"] = cols["tied"].astype(bool)
    return Result(scenario, n_sims, seconds=time.perf_counter() - start, **cols)


# The draft of the new test (SUPERSEDED; not in kneurons.statistics), recomputed from the
# quantities random_test works with, next to the current test.


def recompute(res: Result, variance: str, floor_rule: bool) -> np.ndarray:
    """random_test's p-value from the quantities in `res`. `variance`: "sum" (s²(1 + 1/S) +
    v_seq, the draft) or "max" (max(s²(1 + 1/S), v_seq), NEW); `floor_rule`: where at least
    FLOOR_SHARE of the seeds share one accuracy the rank bound (k + 1) / (S + 1) applies also to
    a method beyond every seed (the second version; NEW now reads a floor as the tied mass plus
    the seeds that escape it, `kneurons.statistics._floor_p_value`, which needs the seeds'
    values and is not recomputed here)."""
    if variance not in ("sum", "max"):
        raise ValueError(f"variance must be 'sum' or 'max', got {variance!r}")
    n_seeds = res.scenario.n_seeds
    sign = 1.0 if res.scenario.alternative == "greater" else -1.0
    p_rank = (res.k + 1) / (n_seeds + 1)
    seeds = res.s2 * (1 + 1 / n_seeds)
    scale = np.sqrt(seeds + res.v_seq if variance == "sum" else np.maximum(seeds, res.v_seq))
    with np.errstate(divide="ignore", invalid="ignore"):
        p_z = np.where(scale > 0, stats.t.sf(sign * res.delta / scale, df=n_seeds - 1), np.nan)
    z_alone = res.k == 0
    if floor_rule:
        z_alone &= ~res.floored
    p = np.where(z_alone, p_z, np.fmax(p_z, p_rank))
    return np.where(scale > 0, p, p_rank)  # nothing varies: the rank p-value


def draft_test(res: Result) -> np.ndarray:
    """The SUPERSEDED first version of the new test: variance s²(1 + 1/S) + v_seq, p = p_z for a
    method beyond every seed and max(p_z, p_rank) otherwise, p_rank where the scale is 0, no
    floor rule. It overclaims on bimodal floors (module docstring)."""
    return recompute(res, "sum", floor_rule=False)


def rejection_rate(p: np.ndarray, alpha: float) -> tuple[int, float]:
    """(count, rate) of p <= alpha; NaN (no test possible) is no rejection."""
    k = int(np.sum(np.nan_to_num(p, nan=1.0) <= alpha))
    return k, k / p.size


def wilson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion k / n."""
    if n == 0:
        return float("nan"), float("nan")
    if k == 0 or k == n:  # the closed form, without rounding
        bound = float(1.0 / (1.0 + n / stats.norm.ppf(0.5 + confidence / 2) ** 2))
        return (0.0, bound) if k == 0 else (1.0 - bound, 1.0)
    z = stats.norm.ppf(0.5 + confidence / 2)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def calibrated(k: int, n: int, alpha: float) -> bool:
    """The rate's Monte-Carlo interval contains alpha or lies below it."""
    return wilson(k, n)[0] <= alpha


# ---------------------------------------------------------------------------------------------
# Printing


def _rate(p: np.ndarray, alpha: float, interval: bool = True) -> str:
    k, rate = rejection_rate(p, alpha)
    if not interval:
        return f"{rate:.3f}"
    low, high = wilson(k, p.size)
    return f"{rate:.3f} [{low:.3f},{high:.3f}]"


def describe(s: Scenario) -> str:
    parts = [f"n={s.n}", f"K={len(s.shares)}", f"S={s.n_seeds}", s.alternative]
    if s.clusters:
        parts.append("clust")
    return " ".join(parts)


TESTS = ("OLD", "draft", "NEW")  # with intervals and verdicts; then "t only" (rate alone)
WIDTH = 22


def p_values(res: Result) -> dict[str, np.ndarray]:
    """Each test's p-value per simulated cell."""
    return {"OLD": res.p_old, "draft": draft_test(res), "NEW": res.p_new, "t only": res.p_t}


def verdict(p: np.ndarray, alpha: float) -> bool:
    return calibrated(rejection_rate(p, alpha)[0], p.size, alpha)


def _columns(res: Result, alpha: float, mark: bool) -> list[str]:
    """OLD, draft and NEW with their intervals (and ! where the interval lies above alpha, if
    `mark`), then t alone (rate only)."""
    p = p_values(res)
    cols = []
    for test in TESTS:
        text = _rate(p[test], alpha) + (" !" if mark and not verdict(p[test], alpha) else "")
        cols.append(f"{text:<{WIDTH}}")
    return [*cols, f"{_rate(p['t only'], alpha, False):>6}"]


_TEST_HEAD = " ".join(f"{name:<{WIDTH}}" for name in TESTS) + f" {'t only':>6}"


def print_nulls(results: list[Result]) -> list[tuple[str, float, dict[str, bool]]]:
    """The false-positive table; returns (scenario, alpha, {test: calibrated}) verdicts."""
    print("\nFalse-positive rate under the null (the method is one more random selection)")
    print(
        "OLD = max(p_t, p_boot) (tables._cell_tests); draft = the SUPERSEDED first version of "
        "the new test (variance sum, no floor rule; `draft_test`);\nNEW = statistics.random_test "
        "(variance max; a floor read as the tied mass plus the seeds that escape it);\n"
        "rate [Monte-Carlo 95% Wilson interval], ! = the "
        "interval lies above alpha\nacc: mean seed accuracy; ties: the method ties a seed; "
        "beyond: the method is strictly beyond every seed; floor: at least "
        f"{st.FLOOR_SHARE:g} of the seeds share one accuracy\n(NEW reads a floor); "
        "t only: OLD's p_t alone"
    )
    head = (
        f"{'scenario':<38} {'setting':<24} {'acc':>5} {'ties':>5} {'beyond':>6} {'floor':>5} "
        f"{'alpha':>5}  " + _TEST_HEAD
    )
    print(head)
    print("-" * len(head))
    verdicts = []
    for res in results:
        s = res.scenario
        p = p_values(res)
        bad = {test: [] for test in TESTS}
        for j, alpha in enumerate(ALPHAS):
            ok = {test: verdict(p[test], alpha) for test in (*TESTS, "t only")}
            verdicts.append((s.name, alpha, ok))
            for test in TESTS:
                bad[test] += [] if ok[test] else [alpha]
            if j == 0:
                lead = (
                    f"{s.name:<38} {describe(s):<24} {res.seeds_mean.mean():>5.2f} "
                    f"{res.tied.mean():>5.2f} {res.beyond_all.mean():>6.3f} "
                    f"{res.floored.mean():>5.2f}"
                )
            else:
                lead = " " * len(lead)
            print(f"{lead} {alpha:>5.2f}  " + " ".join(_columns(res, alpha, mark=True)))
        words = "; ".join(
            f"{test} " + ("calibrated" if not alphas else f"MISCALIBRATED at alpha {alphas}")
            for test, alphas in bad.items()
        )
        print(f"  verdict {s.name}: {words}  ({res.n_sims} sims, {res.seconds:.0f} s)")
    return verdicts


def print_power(results: list[Result]) -> None:
    print("\nPower for planted effects (the method's selection-level mean accuracy shifted by d")
    print("in the direction of the alternative; mean Δ: the realised mean of method - seeds;")
    print("floor: share of cells where NEW reads a floor: tied mass plus escapes)")
    head = (
        f"{'scenario':<30} {'setting':<24} {'mean Δ':>7} {'floor':>5} {'alpha':>5}  " + _TEST_HEAD
    )
    print(head)
    print("-" * len(head))
    for res in results:
        s = res.scenario
        for j, alpha in enumerate(ALPHAS):
            if j == 0:
                lead = (
                    f"{s.name:<30} {describe(s):<24} {res.delta.mean():>7.3f} "
                    f"{res.floored.mean():>5.2f}"
                )
            else:
                lead = " " * len(lead)
            print(f"{lead} {alpha:>5.2f}  " + " ".join(_columns(res, alpha, mark=False)))


def _run(scenario: Scenario, n_sims: int, args) -> Result:
    res = run_scenario(scenario, n_sims, args.n_boot, args.seed)
    print(f"  ran {scenario.name!r}: {n_sims} sims in {res.seconds:.1f} s", file=sys.stderr)
    return res


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sims", type=int, default=2000, help="simulations per null scenario")
    parser.add_argument("--power-sims", type=int, default=500, help="simulations per effect")
    parser.add_argument("--n-boot", type=int, default=500, help="resamples per test")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="400 / 150 simulations, n_boot 200")
    parser.add_argument("--only", default=None, help="run the scenarios whose name contains this")
    parser.add_argument("--no-power", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.sims, args.power_sims, args.n_boot = 400, 150, 200
    start = time.perf_counter()
    print(
        f"calibration: {args.sims} sims per null, {args.power_sims} per effect, "
        f"n_boot {args.n_boot}, seed {args.seed}"
    )
    nulls = [s for s in null_scenarios() if args.only is None or args.only in s.name]
    results = [_run(s, args.sims, args) for s in nulls]
    verdicts = print_nulls(results) if results else []
    if not args.no_power:
        effects = [s for s in effect_scenarios() if args.only is None or args.only in s.name]
        power = [_run(s, args.power_sims, args) for s in effects]
        if power:
            print_power(power)
    total = len(verdicts)
    print()
    by_name = {res.scenario.name: res for res in results}
    for name, alpha, ok in verdicts:
        if not ok["NEW"]:
            k, rate = rejection_rate(by_name[name].p_new, alpha)
            low, high = wilson(k, by_name[name].n_sims)
            print(
                f"SUMMARY: NEW test exceeds alpha={alpha} in scenario '{name}': rate {rate:.3f} "
                f"[{low:.3f},{high:.3f}], {rate - alpha:+.3f} over alpha"
            )
    counts = ", ".join(
        f"{test} {sum(ok[test] for *_, ok in verdicts)}/{total}"
        for test in ("NEW", "draft", "OLD", "t only")
    )
    print(f"SUMMARY: calibrated (scenario, alpha) pairs: {counts}")
    print(f"total wall time {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
