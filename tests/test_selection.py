"""Selection as one artifact: every unit's rank in its pool, the top r% read off it."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from kneurons.io import read_parquet_metadata
from kneurons.selection.ranking import (
    num_kept,
    pick,
    rank_pool,
    ranking_table,
    read_selections,
    select,
    selected,
    write_selection,
)
from kneurons.vocab import ALL_CLASSES, GROUP_RANKINGS, LAYER_TYPES


def scores(types=("query", "key", "value"), layers=3, units=7, labels=(0, 1), seed=0):
    """Score rows with many ties (values on a coarse grid), all classes and per class."""
    rng = np.random.default_rng(seed)
    rows = []
    for label in (ALL_CLASSES, *labels):
        for lt in types:
            for layer in range(layers):
                for neuron in range(units):
                    rows.append((layer, lt, neuron, float(rng.integers(0, 4)), label))
    return pd.DataFrame(rows, columns=["layer", "layer_type", "neuron", "score", "label"])


def brute_force_top(frame: pd.DataFrame, retention: float, value: str = "score") -> set:
    """The top ceil(r% N) units by value, ties: layer type order, layer, neuron (the rule)."""
    order = list(LAYER_TYPES)
    keyed = sorted(
        frame.itertuples(index=False),
        key=lambda u: (-getattr(u, value), order.index(u.layer_type), u.layer, u.neuron),
    )
    k = math.ceil(round(retention / 100 * len(frame), 9))
    return {(u.layer_type, u.layer, u.neuron) for u in keyed[:k]}


def chosen(frame: pd.DataFrame) -> set:
    top = frame[frame["selected"]]
    return set(zip(top["layer_type"], top["layer"], top["neuron"], strict=True))


@pytest.mark.parametrize("retention", [100, 50, 33.3, 10, 1, 0.5])
def test_ranks_give_the_top_r_percent_of_each_pool(retention):
    frame = scores(types=("key",))
    table = ranking_table(frame, "layer_type")
    everyone = pick(table)
    assert (everyone["pool_size"] == 21).all()
    got = chosen(everyone.assign(selected=selected(everyone, retention)))
    assert got == brute_force_top(frame[frame["label"] == ALL_CLASSES], retention)
    assert len(got) == num_kept(retention, 21)
    # per class: the class's own ranking
    one = pick(table, label=1)
    assert chosen(one.assign(selected=selected(one, retention))) == brute_force_top(
        frame[frame["label"] == 1], retention
    )


def test_scope_layer_ranks_each_layer_alone():
    frame = scores(types=("value",), labels=())
    table = pick(ranking_table(frame, "layer"))
    assert (table["pool_size"] == 7).all()
    got = table.assign(selected=selected(table, 30))
    for layer, rows in frame.groupby("layer"):
        assert chosen(got[got["layer"] == layer]) == brute_force_top(rows, 30)
    assert got["selected"].sum() == 3 * num_kept(30, 7)


def test_group_scopes_hold_one_ranking_per_group_ranking():
    frame = scores()
    table = ranking_table(frame, "qkv")
    assert set(table["group_ranking"]) == set(GROUP_RANKINGS)
    assert (table["label"] == ALL_CLASSES).all()  # per-class ranks only for scope layer_type
    raw = pick(table, group_ranking="raw")
    expected = brute_force_top(frame[frame["label"] == ALL_CLASSES], 20)
    assert chosen(raw.assign(selected=selected(raw, 20))) == expected
    # percentile: every type gets its own r% (the cross-type scale leaves no claim)
    pct = pick(table, group_ranking="percentile")
    counts = pct.assign(selected=selected(pct, 20)).groupby("layer_type")["selected"].sum()
    assert counts.sum() == num_kept(20, 63) and counts.max() - counts.min() <= 1
    with pytest.raises(ValueError, match="group ranking"):
        pick(table)


def test_select_equals_reading_the_ranks():
    frame = scores(labels=())
    for scope, ranking in [("qkv", "zscore"), ("all", "raw"), ("layer", None)]:
        data = frame if scope != "layer" else frame[frame["layer_type"] == "key"]
        data = data.drop(columns="label")
        direct = select(data, 10, scope, ranking or "zscore")
        ranked = rank_pool(data, scope, ranking or "zscore")
        assert (direct["selected"].to_numpy() == selected(ranked, 10)).all()


def test_nan_scores_are_refused():
    frame = scores(types=("key",), labels=())
    frame.loc[3, "score"] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        ranking_table(frame, "layer_type")


def test_selection_file_round_trip(tmp_path):
    paths = []
    for layer in range(3):
        path = tmp_path / f"layer{layer}.parquet"
        part = scores(types=("key",))
        part[part["layer"] == layer].to_parquet(path)
        paths.append(path)
    out, log = tmp_path / "sel.parquet", tmp_path / "sel.log"
    write_selection(paths, out, log, "layer_type", "activation", "key")
    meta = read_parquet_metadata(out)
    assert (meta["scope"], meta["method"], meta["target"]) == ("layer_type", "activation", "key")
    table = read_selections([out])
    assert list(table.columns[:3]) == ["scope", "method", "target"]
    assert set(table["label"]) == {ALL_CLASSES, 0, 1} and len(table) == 3 * 21
    assert "ranked 21 units" in log.read_text()
