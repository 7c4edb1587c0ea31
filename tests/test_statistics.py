"""Statistics on constructed inputs whose answers are known."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from kneurons import statistics as st


def test_method_drawn_like_random_gets_p_near_one_half():
    rng = np.random.default_rng(0)
    trials = [st.empirical_p_value(rng.random(), rng.random(19)) for _ in range(4000)]
    p, p_raw = np.array(trials).T
    assert p_raw.mean() == pytest.approx(0.5, abs=0.02)
    # (k + 1) / (n + 1) with k uniform on 0..n has mean (n + 2) / (2 (n + 1)): 0.525 for n = 19
    assert p.mean() == pytest.approx(21 / 40, abs=0.02)
    # under the null the corrected p is uniform on {1/20, ..., 20/20}: P(p <= 0.05) = 0.05
    assert (p <= 0.05).mean() == pytest.approx(0.05, abs=0.01)


def test_perfect_method_p_is_zero_raw_and_one_over_n_plus_one_corrected():
    null = [0.10, 0.12, 0.15, 0.2, 0.11, 0.13, 0.14, 0.16, 0.17, 0.18]
    p, p_raw = st.empirical_p_value(0.9, null)
    assert p_raw == 0.0
    assert p == pytest.approx(1 / 11)
    # ties count against the method ("at or above")
    assert st.empirical_p_value(0.2, null) == (pytest.approx(2 / 11), pytest.approx(1 / 10))
    assert st.empirical_p_value(0.0, null) == (1.0, 1.0)
    assert all(math.isnan(v) for v in st.empirical_p_value(0.5, []))


def test_bootstrap_interval_of_known_proportion():
    n = 400
    correct = np.zeros(n, dtype=bool)
    correct[: n // 2] = True
    counts = st.bootstrap_counts(n, 2000, seed=1)
    assert counts.shape == (2000, n) and (counts.sum(1) == n).all()
    samples = st.bootstrap_accuracy(correct, counts)
    assert samples.shape == (1, 2000)
    low, high = st.percentile_interval(samples)
    # normal approximation: 0.5 +- 1.96 * sqrt(0.25 / 400) = 0.5 +- 0.049
    assert low[0] == pytest.approx(0.451, abs=0.01) and high[0] == pytest.approx(0.549, abs=0.01)
    assert samples.mean() == pytest.approx(0.5, abs=0.005)
    perfect = st.bootstrap_accuracy(np.ones(n, dtype=bool), counts)
    assert (perfect == 1.0).all()
    again = st.bootstrap_accuracy(correct, st.bootstrap_counts(n, 2000, seed=1))
    np.testing.assert_array_equal(samples, again)  # seeded


def test_band_over_seeds():
    b = st.band([0.1, 0.2, 0.3, 0.4, 0.5], level=0.5)
    assert b["mean"] == pytest.approx(0.3)
    assert b["std"] == pytest.approx(np.std([0.1, 0.2, 0.3, 0.4, 0.5], ddof=1))
    assert (b["band_low"], b["band_high"]) == (pytest.approx(0.2), pytest.approx(0.4))
    assert (b["min"], b["max"], b["n"]) == (0.1, 0.5, 5)
    assert st.band([0.3])["std"] == 0.0
    assert st.band([])["n"] == 0


def test_retention_auc_is_mean_accuracy_on_a_log_axis():
    r = [1, 10, 100]
    assert st.retention_auc(r, [0.4, 0.4, 0.4]) == pytest.approx(0.4)
    # equal log spacing: trapezoids give (0.2 + 2 * 0.4 + 0.6) / 4
    assert st.retention_auc(r, [0.2, 0.4, 0.6]) == pytest.approx(0.4)
    assert st.retention_auc([100, 1, 10], [0.6, 0.2, 0.4]) == pytest.approx(0.4)  # any order
    assert st.retention_auc([50], [0.3]) == 0.3
    w = st.auc_weights([50, 25, 10, 1])
    acc = np.array([0.5, 0.4, 0.3, 0.2])
    assert w @ acc == pytest.approx(st.retention_auc([50, 25, 10, 1], acc))
    assert w.sum() == pytest.approx(1.0)


def test_hypergeometric_tail_by_hand():
    # population 10, 4 successes, 3 draws: P(X >= 2) = (C(4,2) C(6,1) + C(4,3)) / C(10,3) = 1/3
    assert st.hypergeom_sf(2, 10, 4, 3) == pytest.approx(1 / 3)
    assert st.hypergeom_sf(0, 10, 4, 3) == pytest.approx(1.0)
    assert st.hypergeom_sf(4, 10, 4, 3) == 0.0


def test_enrichment_over_uniform():
    # pool: 10 key + 30 value units, 8 selected: all key -> key density 0.8, pool 0.2 -> 4x
    selection = pd.DataFrame(
        {
            "layer_type": ["key"] * 10 + ["value"] * 30,
            "layer": [0] * 5 + [1] * 5 + [0] * 15 + [1] * 15,
            "neuron": list(range(5)) * 2 + list(range(15)) * 2,
            "selected": [True] * 8 + [False] * 32,
        }
    )
    by_type = st.enrichment(selection, ["layer_type"]).set_index("layer_type")
    assert by_type.loc["key", "n_selected"] == 8 and by_type.loc["key", "n_units"] == 10
    assert by_type.loc["key", "enrichment"] == pytest.approx(4.0)
    assert by_type.loc["value", "enrichment"] == 0.0
    assert by_type.loc["key", "p_enriched"] == pytest.approx(math.comb(10, 8) / math.comb(40, 8))
    by_layer = st.enrichment(selection, ["layer_type", "layer"]).set_index(["layer_type", "layer"])
    assert by_layer.loc[("key", 0), "enrichment"] == pytest.approx(5.0)
    assert by_layer.loc[("key", 1), "density"] == pytest.approx(0.6)


def test_jaccard():
    assert st.jaccard({1, 2, 3}, {2, 3, 4}) == pytest.approx(0.5)
    assert st.jaccard(set(), set()) == 1.0
    # two unrelated 10%-selections of 1000 units overlap by about 10 of 190
    assert st.expected_random_jaccard(100, 1000) == pytest.approx(10 / 190, rel=0.01)
    # by hand: 1 of 2 units: J is 0 or 1, each half the time; 2 of 3: I = 2 (J = 1) w.p. 1/3,
    # else I = 1 (J = 1/3)
    assert st.expected_random_jaccard(1, 2) == pytest.approx(0.5)
    assert st.expected_random_jaccard(2, 3) == pytest.approx(1 / 3 + 2 / 3 * 1 / 3)
    assert st.expected_random_jaccard(5, 5) == pytest.approx(1.0)
    assert math.isnan(st.expected_random_jaccard(0, 5))
    rng = np.random.default_rng(0)
    draws = [
        st.jaccard(set(rng.choice(1000, 100, replace=False)), set(rng.choice(1000, 100, False)))
        for _ in range(300)
    ]
    assert np.mean(draws) == pytest.approx(st.expected_random_jaccard(100, 1000), rel=0.05)


def test_t_p_value_is_scipys_pooled_t_test_with_the_method_as_one_draw():
    null = np.array([0.42, 0.47, 0.39, 0.44, 0.41])
    value = 0.9
    n, m, sd = len(null), null.mean(), null.std(ddof=1)
    t = (value - m) / (sd * math.sqrt(1 + 1 / n))  # the prediction form, n - 1 df
    expected = scipy_stats.t.sf(t, n - 1)
    assert st.t_p_value(value, null) == pytest.approx(expected, rel=1e-12)
    assert st.t_p_value(value, null, "less") == pytest.approx(1 - expected, rel=1e-9)
    ttest = scipy_stats.ttest_ind([value], null, alternative="greater")
    assert st.t_p_value(value, null) == pytest.approx(ttest.pvalue)
    # reaches far below the empirical floor 1 / (n + 1) when the method is far above the seeds
    assert st.t_p_value(value, null) < 1e-4 < 1 / (n + 1)
    assert st.t_p_value(m, null) == pytest.approx(0.5)


def test_t_p_value_edge_cases():
    assert math.isnan(st.t_p_value(0.9, [0.4]))  # one seed: no spread to test against
    assert math.isnan(st.t_p_value(0.9, []))
    assert math.isnan(st.t_p_value(float("nan"), [0.4, 0.5]))
    assert math.isnan(st.t_p_value(0.9, [0.4, 0.4, 0.4]))  # all equal, method beyond: no model
    assert st.t_p_value(0.4, [0.4, 0.4, 0.4]) == 1.0  # method equal to every seed
    assert st.t_p_value(0.3, [0.4, 0.4, 0.4]) == 1.0
    assert math.isnan(st.t_p_value(0.3, [0.4, 0.4], "less"))
    with pytest.raises(ValueError, match="alternative"):
        st.t_p_value(0.5, [0.4, 0.5], "two-sided")


def test_paired_delta_interval_and_p_value_by_hand():
    method = np.array([0.9, 0.8, 0.7, 0.6])  # 4 resamples
    random = np.array([[0.5, 0.5, 0.75, 0.7], [0.5, 0.7, 0.65, 0.5]])  # 2 seeds
    deltas = method - random.mean(0)  # 0.4, 0.2, 0.0, 0.0
    out = st.paired_delta(method, random, observed=0.33, level=0.5)
    assert out["delta"] == 0.33
    assert out["delta_ci_low"] == pytest.approx(np.quantile(deltas, 0.25))
    assert out["delta_ci_high"] == pytest.approx(np.quantile(deltas, 0.75))
    assert out["p_boot"] == pytest.approx((2 + 1) / (4 + 1))  # two resamples at or below 0
    less = st.paired_delta(method, random, observed=0.33, level=0.5, alternative="less")
    assert less["p_boot"] == pytest.approx((4 + 1) / (4 + 1))
    empty = st.paired_delta(method, np.empty((0, 4)), observed=0.1)
    assert all(math.isnan(v) for v in empty.values())


def test_combined_p_value_and_bh_adjustment_against_scipy():
    assert st.combined_p_value(0.01, 0.03) == 0.03
    assert math.isnan(st.combined_p_value(float("nan"), 0.01))
    p = np.array([0.001, 0.04, float("nan"), 0.03, 0.5])
    q = st.bh_adjust(p)
    finite = np.isfinite(p)
    np.testing.assert_allclose(
        q[finite], scipy_stats.false_discovery_control(p[finite], method="bh")
    )
    assert math.isnan(q[2])
    # by hand: sorted 0.001, 0.03, 0.04, 0.5 (m = 4): q = min over j >= i of p_(j) m / j
    np.testing.assert_allclose(q[finite], [0.004, 0.04 * 4 / 3, 0.04 * 4 / 3, 0.5])
    assert st.bh_adjust([]).size == 0
    assert np.isnan(st.bh_adjust([float("nan")])).all()


def test_empirical_p_value_follows_the_direction():
    null = [0.4, 0.5, 0.6]
    assert st.empirical_p_value(0.55, null) == pytest.approx((2 / 4, 1 / 3))
    assert st.empirical_p_value(0.45, null, "less") == pytest.approx((2 / 4, 1 / 3))
    assert st.alternative_of("keep") == "greater" and st.alternative_of("remove") == "less"


def test_hypergeometric_tail_matches_scipy():
    for k, big_n, big_k, n in [(3, 50, 10, 8), (0, 5, 2, 2), (7, 1000, 100, 40)]:
        assert st.hypergeom_sf(k, big_n, big_k, n) == pytest.approx(
            scipy_stats.hypergeom.sf(k - 1, big_n, big_k, n)
        )


def test_resamples_keep_each_class_and_move_clusters_whole():
    strata = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 1])
    clusters = np.array([0, 0, 1, 2, 3, 3, 3, 4, 5, 6])
    counts = st.resample_counts(10, 300, 0, strata=strata)
    # singletons: every resample keeps each class's size
    assert (counts[:, :4].sum(1) == 4).all() and (counts[:, 4:].sum(1) == 6).all()
    counts = st.resample_counts(10, 300, 0, strata=strata, clusters=clusters)
    # a cluster's members are drawn together, the same number of times
    assert (counts[:, 0] == counts[:, 1]).all() and (counts[:, 4] == counts[:, 6]).all()
    assert not (counts[:, 2] == counts[:, 3]).all()
    # every class is drawn in every resample (never an empty class)
    assert (counts[:, :4].sum(1) > 0).all() and (counts[:, 4:].sum(1) > 0).all()
    # resampled means are ratios: a constant column stays constant
    means = st.resampled_means(np.ones((1, 10)), counts)
    np.testing.assert_allclose(means, 1.0)


def test_random_test_counts_ties_against_the_method():
    null = np.array([0.25] * 19 + [0.30])
    boot = np.tile(null[:, None], (1, 100)) + np.random.default_rng(0).normal(0, 0.01, (20, 100))
    tied = st.random_test(0.30, null, boot[-1], boot)
    assert tied["n_tied_or_beyond"] == 1 and tied["p_value"] >= 2 / 21
    # without per-sequence resamples there is no test, only the descriptive z
    bare = st.random_test(0.30, null)
    assert np.isnan(bare["p_value"]) and np.isfinite(bare["p_z"])
    # remove direction: the method must lose more than the seeds
    lost = st.random_test(0.10, null + 0.5, boot[0] - 0.3, boot + 0.5, alternative="less")
    assert lost["delta"] < 0 and lost["p_value"] < 0.05
