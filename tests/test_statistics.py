"""Statistics on constructed inputs whose answers are known."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

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
    assert st.expected_random_jaccard(100, 1000) == pytest.approx(10 / 190)
    rng = np.random.default_rng(0)
    draws = [
        st.jaccard(set(rng.choice(1000, 100, replace=False)), set(rng.choice(1000, 100, False)))
        for _ in range(300)
    ]
    assert np.mean(draws) == pytest.approx(st.expected_random_jaccard(100, 1000), rel=0.05)
