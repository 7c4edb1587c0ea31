"""The simulated cells of benchmarks/calibration.py (its docstring describes them): scenarios,
the simulation of one cell, the OLD and NEW tests on it, and `run_scenario`, which runs both on
many cells. Imported by calibration.py, which re-exports these names."""

from __future__ import annotations

import math
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
from scipy import special

from kneurons import statistics as st

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
    """`baseline._cell_tests` on the accuracy of row 0 against rows 1..S (plain bootstrap)."""
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
