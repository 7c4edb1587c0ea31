"""Stability of the selection (kneurons.selection.stability): split halves and replicate models."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from kneurons import statistics as st
from kneurons.configuration import replicate_groups
from kneurons.io import write_parquet
from kneurons.selection.stability import (
    cross_model_stability,
    overlap_p_value,
    read_method_scores,
    spearman_brown,
    split_half_stability,
)


def scores(layer_type: str, a, b, layers: int = 2) -> pd.DataFrame:
    a, b = np.asarray(a, float), np.asarray(b, float)
    per_layer = len(a) // layers
    return pd.DataFrame(
        {
            "layer_type": layer_type,
            "layer": np.repeat(np.arange(layers), per_layer),
            "neuron": np.tile(np.arange(per_layer), layers),
            "score": (a + b) / 2,
            "score_a": a,
            "score_b": b,
        }
    )


def test_split_half_identical_halves_are_perfectly_stable():
    a = np.arange(40.0)
    table = split_half_stability(scores("key", a, a), [50, 10], "m", "activation")
    assert table["jaccard"].tolist() == [1.0, 1.0]
    assert table["n_kept"].tolist() == [20, 4] and (table["n_units"] == 40).all()
    assert (table["spearman"] == 1.0).all() and (table["spearman_brown"] == 1.0).all()
    assert table["jaccard_chance"].tolist() == pytest.approx(
        [st.expected_random_jaccard(20, 40), st.expected_random_jaccard(4, 40)]
    )
    assert table["p_overlap"].iloc[1] == pytest.approx(1 / math.comb(40, 4))


def test_split_half_by_hand_and_against_scipy():
    rng = np.random.default_rng(0)
    a = rng.normal(size=40)
    b = a.copy()
    b[[0, 1]] = b[[1, 0]]  # swap two units
    top_a = set(np.argsort(-a)[:4])
    top_b = set(np.argsort(-b)[:4])
    table = split_half_stability(scores("value", a, b), [10], "m", "integrated_gradients")
    row = table.iloc[0]
    assert row["overlap"] == len(top_a & top_b)
    assert row["jaccard"] == pytest.approx(st.jaccard(top_a, top_b))
    rho = scipy_stats.spearmanr(a, b).statistic
    assert row["spearman"] == pytest.approx(rho)
    assert row["spearman_brown"] == pytest.approx(2 * rho / (1 + rho))
    # reversed halves: disjoint top sets, perfect negative rank correlation
    rev = split_half_stability(scores("value", a, -a), [10], "m", "x").iloc[0]
    assert rev["jaccard"] == 0.0 and rev["spearman"] == pytest.approx(-1.0)
    assert rev["p_overlap"] == 1.0
    # Spearman-Brown is for positive split-half correlations only (never prints -0.41)
    assert np.isnan(rev["spearman_brown"])
    assert np.isnan(spearman_brown(-0.26)) and np.isnan(spearman_brown(0.0))


def test_split_half_edge_cases():
    a = np.arange(20.0)
    nan_half = split_half_stability(scores("key", a, np.full(20, np.nan)), [10], "m", "x")
    assert nan_half["jaccard"].isna().all() and nan_half["spearman"].isna().all()
    flat = split_half_stability(scores("key", a, np.ones(20)), [10], "m", "x")
    assert flat["spearman"].isna().all()  # no ranks in a constant half
    empty = split_half_stability(scores("key", [], [], layers=1), [10], "m", "x")
    assert empty.empty


def test_overlap_p_value_is_the_hypergeometric_tail():
    assert overlap_p_value(3, 10, 100) == pytest.approx(scipy_stats.hypergeom.sf(2, 100, 10, 10))
    assert overlap_p_value(0, 10, 100) == 1.0


def test_cross_model_pairs_and_units():
    a = np.arange(40.0)
    by_model = {
        "s0": scores("key", a, a)[["layer_type", "layer", "neuron", "score"]],
        "s1": scores("key", a, a)[["layer_type", "layer", "neuron", "score"]],
        "s2": scores("key", -a, -a)[["layer_type", "layer", "neuron", "score"]],
    }
    table = cross_model_stability(by_model, [10], "activation")
    pairs = list(zip(table["model"], table["model_b"], strict=True))
    assert pairs == [("s0", "s1"), ("s0", "s2"), ("s1", "s2")]
    j = dict(zip(pairs, table["jaccard"], strict=True))
    assert j[("s0", "s1")] == 1.0 and j[("s0", "s2")] == 0.0
    assert (table["comparison"] == "finetune_seed").all()
    with pytest.raises(ValueError, match="different units"):
        cross_model_stability({"x": by_model["s0"], "y": by_model["s0"].iloc[:30]}, [10], "a")


def test_replicate_groups_are_models_that_differ_only_in_finetune_seed():
    models = {
        "a0": {"source": "pretrained", "name": "esm2_t6_8M_UR50D", "finetune_seed": 0},
        "a1": {"source": "pretrained", "name": "esm2_t6_8M_UR50D", "finetune_seed": 1},
        "b": {"source": "pretrained", "name": "esm2_t12_35M_UR50D"},
        "r0": {"source": "random", "name": "esm2_t6_8M_UR50D", "seed": 0},
        "r1": {"source": "random", "name": "esm2_t6_8M_UR50D", "seed": 1},  # other init
        "same": {"source": "pretrained", "name": "esm2_t12_35M_UR50D"},  # a copy, not a replicate
    }
    assert replicate_groups(models) == [["a0", "a1"]]


def test_read_method_scores_groups_files_by_method(tmp_path):
    for method in ("activation", "integrated_gradients"):
        for layer in (0, 1):
            frame = scores("key", np.arange(4.0), np.arange(4.0), layers=1).assign(
                layer=layer, label=-1
            )
            frame = pd.concat([frame, frame.assign(label=0)], ignore_index=True)
            write_parquet(tmp_path / f"{method}{layer}.parquet", frame, {"method": method})
    read = read_method_scores(sorted(tmp_path.glob("*.parquet")))
    assert sorted(read) == ["activation", "integrated_gradients"]
    assert len(read["activation"]) == 8 and "label" not in read["activation"].columns
