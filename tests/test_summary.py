"""Tests for the summary stage (kneurons.summary) on a small synthetic evaluation table."""

from __future__ import annotations

import json
import math
import random

import pandas as pd
import pytest

from kneurons.summary import (
    REQUIRED_COLUMNS,
    _chance_level,
    accuracy_table,
    collect,
    markdown_summary,
    plot_accuracy_vs_retention,
    random_band,
)

MODEL = "esm2_t6_8M"
CLASSES = ("1", "2", "3")
N_TOTAL = 320
N_KEPT = {50.0: 160, 10.0: 32}

# accuracy[layer_type][method][retention]
ACCURACY = {
    "key": {
        "activation": {50.0: 0.412, 10.0: 0.350},
        "integrated_gradients": {50.0: 0.500, 10.0: 0.450},
        "random-0": {50.0: 0.2, 10.0: 0.1},
        "random-1": {50.0: 0.3, 10.0: 0.1},
        "random-2": {50.0: 0.4, 10.0: 0.1},
    },
    "query": {
        "activation": {50.0: 0.600, 10.0: 0.550},
        "integrated_gradients": {50.0: 0.650, 10.0: 0.520},
        "random-0": {50.0: 0.25, 10.0: 0.2},
        "random-1": {50.0: 0.35, 10.0: 0.3},
        "random-2": {50.0: 0.45, 10.0: 0.4},
    },
}
UNMASKED_ACC = 0.913
UNMASKED_F1 = 0.901


def _row(
    model: str, method: str, layer_type: str, retention: float, accuracy: float
) -> pd.DataFrame:
    if method == "unmasked":
        family, seed = "unmasked", None
    elif method.startswith("random-"):
        family, seed = "random", int(method.split("-")[1])
    else:
        family, seed = method, None
    n_kept = N_TOTAL if method == "unmasked" else N_KEPT[retention]
    per_class = json.dumps({c: accuracy for c in CLASSES})
    return pd.DataFrame(
        {
            "model": [model],
            "method": [method],
            "method_family": [family],
            "seed": pd.array([seed], dtype="Int64"),
            "layer_type": [layer_type],
            "retention": [float(retention)],
            "n_kept": [n_kept],
            "n_total": [N_TOTAL],
            "n": [200],
            "accuracy": [accuracy],
            "macro_f1": [UNMASKED_F1 if method == "unmasked" else accuracy * 0.9],
            "per_class_accuracy": [per_class],
        }
    )


def _rows(model: str = MODEL) -> list[pd.DataFrame]:
    rows = [_row(model, "unmasked", "none", 100.0, UNMASKED_ACC)]
    for layer_type, by_method in ACCURACY.items():
        for method, by_r in by_method.items():
            for retention, acc in by_r.items():
                rows.append(_row(model, method, layer_type, retention, acc))
    random.Random(0).shuffle(rows)
    return rows


@pytest.fixture
def table() -> pd.DataFrame:
    return collect(_rows())


@pytest.fixture
def completeness() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "model": [MODEL] * 4,
            "layer_type": ["key", "key", "query", "query"],
            "layer": [0, 1, 0, 1],
            "n_examples": [16] * 4,
            "gap_mean": [0.001, -0.002, 0.0005, 0.0],
            "gap_mean_abs": [0.002, 0.004, 0.001, 0.003],
            "gap_max_abs": [0.01, 0.03, 0.005, 0.02],
            "delta_mean_abs": [0.2, 0.4, 0.1, 0.3],
        }
    )


# --- collect --------------------------------------------------------------------------------


def test_collect_orders_rows(table):
    assert len(table) == 1 + 2 * 5 * 2
    assert list(table.index) == list(range(len(table)))
    keys = list(zip(table["layer_type"], table["method"], table["retention"], strict=True))
    assert keys[:6] == [
        ("key", "activation", 50.0),
        ("key", "activation", 10.0),
        ("key", "integrated_gradients", 50.0),
        ("key", "integrated_gradients", 10.0),
        ("key", "random-0", 50.0),
        ("key", "random-0", 10.0),
    ]
    assert keys[10] == ("none", "unmasked", 100.0)
    assert keys[11] == ("query", "activation", 50.0)
    assert str(table["seed"].dtype) == "Int64"


def test_collect_names_missing_columns():
    rows = [r.drop(columns=["accuracy", "n_kept"]) for r in _rows()]
    with pytest.raises(ValueError, match="accuracy") as err:
        collect(rows)
    assert "n_kept" in str(err.value)
    with pytest.raises(ValueError):
        collect([])


def test_required_columns_match_fixture():
    assert list(_rows()[0].columns) == list(REQUIRED_COLUMNS)


# --- random_band ----------------------------------------------------------------------------


def test_random_band_statistics(table):
    band = random_band(table)
    assert list(band.columns) == [
        "model",
        "layer_type",
        "retention",
        "mean",
        "std",
        "n_seeds",
        "min",
        "max",
    ]
    assert len(band) == 4
    rec = band[(band["layer_type"] == "key") & (band["retention"] == 50.0)].iloc[0]
    assert rec["mean"] == pytest.approx(0.3)
    assert rec["std"] == pytest.approx(0.1)
    assert rec["n_seeds"] == 3
    assert rec["min"] == pytest.approx(0.2)
    assert rec["max"] == pytest.approx(0.4)
    rec = band[(band["layer_type"] == "key") & (band["retention"] == 10.0)].iloc[0]
    assert rec["mean"] == pytest.approx(0.1)
    assert rec["std"] == pytest.approx(0.0)
    rec = band[(band["layer_type"] == "query") & (band["retention"] == 10.0)].iloc[0]
    assert rec["mean"] == pytest.approx(0.3)
    assert rec["std"] == pytest.approx(0.1)
    assert list(band["retention"]) == [50.0, 10.0, 50.0, 10.0]


def test_random_band_single_seed_and_none(table):
    one_seed = table[(table["method_family"] != "random") | (table["method"] == "random-1")]
    band = random_band(one_seed)
    assert (band["n_seeds"] == 1).all()
    assert (band["std"] == 0.0).all()
    assert not band["std"].isna().any()
    empty = random_band(table[table["method_family"] != "random"])
    assert empty.empty
    assert "mean" in empty.columns


# --- accuracy_table -------------------------------------------------------------------------


def test_accuracy_table(table):
    wide = accuracy_table(table)
    assert list(wide.columns) == [50.0, 10.0]
    # layer types in canonical order (query, key, value, ...), random last within each
    assert list(wide.index) == [
        (MODEL, "query", "activation"),
        (MODEL, "query", "integrated_gradients"),
        (MODEL, "query", "random"),
        (MODEL, "key", "activation"),
        (MODEL, "key", "integrated_gradients"),
        (MODEL, "key", "random"),
    ]
    assert wide.loc[(MODEL, "key", "activation"), 50.0] == pytest.approx(0.412)
    assert wide.loc[(MODEL, "key", "integrated_gradients"), 10.0] == pytest.approx(0.45)
    assert wide.loc[(MODEL, "key", "random"), 50.0] == pytest.approx(0.3)
    assert wide.loc[(MODEL, "query", "random"), 10.0] == pytest.approx(0.3)


# --- markdown -------------------------------------------------------------------------------


def test_markdown_summary_cells(table):
    md = markdown_summary(table)
    assert md.startswith("# ")
    assert "0.913" in md and "0.901" in md
    assert md.count("### key") == 1
    assert md.count("### query") == 1
    assert md.index("### query") < md.index("### key")  # canonical order: query, key, value, ...
    assert "| method | 50% | 10% |" in md
    assert "| activation | 0.412 | 0.350 |" in md
    assert "| integrated_gradients | 0.500 | 0.450 |" in md
    assert "| random | 0.300 ± 0.100 | 0.100 ± 0.000 |" in md
    assert "| random | 0.350 ± 0.100 | 0.300 ± 0.100 |" in md
    assert md.count("| neurons kept | 160 | 32 |") == 2
    assert "3 seeds" in md
    assert "completeness" not in md.lower()


def test_markdown_summary_optional_sections(table, completeness):
    card = {
        "classes": list(CLASSES),
        "totals": {"train": 700, "val": 100, "test": 200},
        "counts": {
            "train": {"1": 300, "2": 200, "3": 200},
            "val": {"1": 40, "2": 30, "3": 30},
            "test": {"1": 80, "2": 60, "3": 60},
        },
    }
    metrics = {
        "val": {"accuracy": 0.925, "macro_f1": 0.918},
        "test": {"accuracy": 0.913, "macro_f1": 0.901},
    }
    md = markdown_summary(table, completeness=completeness, card=card, metrics=metrics)
    assert "completeness" in md.lower()
    # key: mean |gap| over layers 0.003, max 0.03, mean |F(1)-F(0)| 0.3
    assert "| esm2_t6_8M | key | 2 | 16 | 0.003 | 0.03 | 0.3 |" in md
    assert "| esm2_t6_8M | query | 2 | 16 | 0.002 | 0.02 | 0.2 |" in md
    assert "| train | 300 | 200 | 200 | 700 |" in md
    assert "| test | 80 | 60 | 60 | 200 |" in md
    assert "| val | 0.925 | 0.918 |" in md
    assert "| test | 0.913 | 0.901 |" in md
    # totals alone still give a table
    md = markdown_summary(table, card={"totals": {"train": 7, "test": 2}})
    assert "| train | 7 |" in md


def test_markdown_summary_no_random_single_retention(table):
    sub = table[
        (table["method_family"] == "unmasked")
        | ((table["method_family"] != "random") & (table["retention"] == 50.0))
    ]
    md = markdown_summary(sub)
    assert "| method | 50% |" in md
    assert "| random |" not in md
    assert "seeds" not in md
    assert "| neurons kept | 160 |" in md


# --- plot -----------------------------------------------------------------------------------


def _check_plot(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    svg = path.with_suffix(".svg")
    assert svg.exists() and svg.stat().st_size > 0
    assert b"<svg" in svg.read_bytes()[:2000]
    assert not list(path.parent.glob("*.tmp"))


def test_plot_writes_png_and_svg(table, tmp_path):
    path = tmp_path / "plots" / "accuracy.png"
    plot_accuracy_vs_retention(table, path)
    _check_plot(path)


def test_plot_without_random_and_single_retention(table, tmp_path):
    sub = table[
        (table["method_family"] == "unmasked")
        | ((table["method_family"] != "random") & (table["retention"] == 10.0))
    ]
    path = tmp_path / "single.png"
    plot_accuracy_vs_retention(sub, path)
    _check_plot(path)


def test_plot_rejects_two_models(table, tmp_path):
    two = collect(_rows() + _rows("esm2_t12_35M"))
    with pytest.raises(ValueError, match="one model"):
        plot_accuracy_vs_retention(two, tmp_path / "two.png")
    assert not (tmp_path / "two.png").exists()


def test_chance_level_uses_class_count(table):
    unmasked = table[table["method_family"] == "unmasked"]
    assert math.isclose(_chance_level(unmasked), 1 / 3)
    assert _chance_level(unmasked.iloc[0:0]) is None
