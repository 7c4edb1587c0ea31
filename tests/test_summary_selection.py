"""Tests for kneurons.summary.overlap: where the top units lie, and the classes' overlap."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from kneurons import statistics as st
from kneurons.selection.ranking import ranking_table
from kneurons.summary.overlap import class_overlap, enrichment_tables
from kneurons.vocab import GROUPS, LAYER_TYPES, order_of, target_layer_types

MODEL = "esm2_t6_8M"


def unit_scores() -> pd.DataFrame:
    """Q/K/V, 2 layers x 10 units; activation favours 3 key units of layer 1, random does not."""
    rng = np.random.default_rng(0)
    rows = []
    for method in ("activation", "random-0", "random-1", "random-2"):
        for lt in ("query", "key", "value"):
            for layer in (0, 1):
                for neuron in range(10):
                    score = rng.random()
                    if method == "activation" and lt == "key" and layer == 1 and neuron < 3:
                        score += 10.0
                    rows.append((method, lt, layer, neuron, score))
    return pd.DataFrame(rows, columns=["method", "layer_type", "layer", "neuron", "score"])


def selections_of(scores: pd.DataFrame) -> pd.DataFrame:
    """The selection files the pipeline would write for these scores (rule select_units):
    every layer type alone, qkv when query, key and value are there, and all."""
    frames = []
    for method, rows in scores.groupby("method", sort=True):
        types = order_of(rows["layer_type"].unique(), tuple(LAYER_TYPES))
        pools = {lt: "layer_type" for lt in types}
        if set(GROUPS["qkv"]) <= set(types):
            pools["qkv"] = "qkv"
        if len(types) > 1:
            pools["all"] = "all"
        for target, scope in pools.items():
            members = target_layer_types(target, types)
            table = ranking_table(rows[rows["layer_type"].isin(members)], scope)
            frames.append(table.assign(scope=scope, method=method, target=target))
    return pd.concat(frames, ignore_index=True)


def unit_selections() -> pd.DataFrame:
    return selections_of(unit_scores())


def test_enrichment_tables_find_the_planted_key_units():
    by_layer, by_type = enrichment_tables(
        unit_selections(), [50.0, 5.0], rankings=["zscore", "raw"]
    )
    key = by_type[
        (by_type["target"] == "qkv")
        & (by_type["layer_type"] == "key")
        & (by_type["method"] == "activation")
        & (by_type["retention"] == 5.0)
    ]
    assert set(key["group_ranking"]) == {"zscore", "raw"}
    for rec in key.itertuples():
        # top 5% of 60 = 3 units, all key (20 of 60 units): enrichment 3, above every seed
        assert rec.n_selected == 3 and rec.enrichment == pytest.approx(3.0)
        assert rec.p_value == pytest.approx(1 / 4) and rec.p_value_raw == 0.0
        assert rec.p_enriched == pytest.approx(math.comb(20, 3) / math.comb(60, 3))
    # per layer type (scope layer_type): all of key's top 5% (1 of 20) sit in layer 1
    cell = by_layer[
        (by_layer["target"] == "key")
        & (by_layer["method"] == "activation")
        & (by_layer["retention"] == 5.0)
    ].set_index("layer")
    assert cell.loc[1, "n_selected"] == 1 and cell.loc[0, "n_selected"] == 0
    assert cell.loc[1, "enrichment"] == pytest.approx(2.0)
    assert set(by_layer["target"]) == {"query", "key", "value", "qkv", "all"}
    assert by_type["target"].isin(["qkv", "all"]).all()
    assert "pool" not in by_layer.columns and "pool" not in by_type.columns
    # the random seeds' own rows carry the null's mean but no p-value
    rand = by_type[by_type["method_family"] == "random"]
    assert rand["p_value"].isna().all() and rand["random_mean"].notna().all()
    assert set(rand["seed"]) == {0, 1, 2} and by_type["seed"].dtype == "Int64"


def test_class_overlap_from_per_class_scores():
    scores = unit_scores()
    scores = scores[scores["method"] == "activation"]
    assert class_overlap(
        selections_of(scores), [50.0], ["1", "2"]
    ).empty  # no per-class rows: skipped
    per_class = []
    for label in (0, 1, 2):
        rows = scores.assign(label=label)
        if label == 2:  # class 3 ranks the units in reverse
            rows = rows.assign(score=-rows["score"])
        per_class.append(rows)
    with_labels = pd.concat([scores.assign(label=-1), *per_class], ignore_index=True)
    overlap = class_overlap(selections_of(with_labels), [50.0], ["1", "2", "3"], model=MODEL)
    assert len(overlap) == 3 * 3  # 3 layer types x 3 class pairs
    j = overlap.set_index(["layer_type", "class_a", "class_b"])["jaccard"]
    assert j[("key", "1", "2")] == 1.0  # identical scores, identical selection
    assert j[("key", "1", "3")] == 0.0  # reversed scores, disjoint halves
    # exact E[J] of two unrelated 10-of-20 selections (close to 5 / 15 from the mean overlap)
    assert overlap["expected_random"].iloc[0] == pytest.approx(st.expected_random_jaccard(10, 20))
    assert overlap["expected_random"].iloc[0] == pytest.approx(5 / 15, rel=0.05)
    # random seeds' per-class rows carry no class meaning: left out
    seeds = with_labels.assign(method="random-0")
    assert class_overlap(selections_of(seeds), [50.0], ["1", "2", "3"]).empty
