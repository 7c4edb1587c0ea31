"""Tests for the summary stage (kneurons.summary) on a small synthetic evaluation table."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pandas as pd
import pytest

from kneurons.summary import (
    REQUIRED_COLUMNS,
    _chance_level,
    accuracy_table,
    add_statistics,
    class_overlap,
    collect,
    enrichment_tables,
    ground_truth_section,
    markdown_summary,
    markdown_to_html,
    plot_accuracy_vs_retention,
    plot_per_class_accuracy,
    plot_selection_heatmap,
    plot_site_recovery,
    plot_type_enrichment,
    random_band,
)

MODEL = "esm2_t6_8M"
CLASSES = ("1", "2", "3")
N_TOTAL = 320
N_KEPT = {50.0: 160, 10.0: 32}
N_TEST = 1000

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
    n_kept = N_TOTAL if method == "unmasked" else N_KEPT.get(retention, 0)
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
            "n": [N_TEST],
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


def _with_correct(rows: list[pd.DataFrame]) -> list[pd.DataFrame]:
    """Add the per-sequence correctness vector that evaluation jobs write (acc x N_TEST hits)."""
    out = []
    for i, row in enumerate(rows):
        correct = np.zeros(N_TEST, dtype=bool)
        correct[: round(float(row["accuracy"].iloc[0]) * N_TEST)] = True
        np.random.default_rng(i).shuffle(correct)
        out.append(row.assign(correct=[correct.tolist()]))
    return out


@pytest.fixture
def table() -> pd.DataFrame:
    return collect(_rows())


@pytest.fixture
def stats():
    return add_statistics(collect(_with_correct(_rows())), n_boot=500, seed=0)


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
    assert keys[0] == ("none", "unmasked", 100.0)  # the unmasked reference first
    assert keys[1:7] == [
        ("key", "activation", 50.0),
        ("key", "activation", 10.0),
        ("key", "integrated_gradients", 50.0),
        ("key", "integrated_gradients", 10.0),
        ("key", "random-0", 50.0),
        ("key", "random-0", 10.0),
    ]
    assert keys[11] == ("query", "activation", 50.0)
    assert str(table["seed"].dtype) == "Int64"
    # rows from before the masking options existed get the defaults
    masked = table[table["method"] != "unmasked"]
    assert set(zip(masked["mode"], masked["scope"], masked["direction"], strict=True)) == {
        ("zero", "layer_type", "keep")
    }
    assert table.loc[0, ["mode", "scope", "direction"]].tolist() == ["none"] * 3
    assert (table["n_selected"] == table["n_kept"]).all()


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
        "mode",
        "scope",
        "direction",
        "retention",
        "mean",
        "std",
        "n_seeds",
        "band_low",
        "band_high",
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
    # central 95% of three seeds 0.2, 0.3, 0.4 (linear interpolation)
    assert rec["band_low"] == pytest.approx(0.205) and rec["band_high"] == pytest.approx(0.395)
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
    v = ("zero", "layer_type", "keep")
    # layer types in canonical order (query, key, value, ...), random last within each
    assert list(wide.index) == [
        (MODEL, *v, "query", "activation"),
        (MODEL, *v, "query", "integrated_gradients"),
        (MODEL, *v, "query", "random"),
        (MODEL, *v, "key", "activation"),
        (MODEL, *v, "key", "integrated_gradients"),
        (MODEL, *v, "key", "random"),
    ]
    assert wide.loc[(MODEL, *v, "key", "activation"), 50.0] == pytest.approx(0.412)
    assert wide.loc[(MODEL, *v, "key", "integrated_gradients"), 10.0] == pytest.approx(0.45)
    assert wide.loc[(MODEL, *v, "key", "random"), 50.0] == pytest.approx(0.3)
    assert wide.loc[(MODEL, *v, "query", "random"), 10.0] == pytest.approx(0.3)


# --- statistics -----------------------------------------------------------------------------


def test_statistics_add_ci_and_p_values(stats):
    t = stats.table
    assert t["accuracy_ci_low"].notna().all() and t["accuracy_ci_high"].notna().all()
    assert (t["accuracy_ci_low"] <= t["accuracy"]).all()
    assert (t["accuracy"] <= t["accuracy_ci_high"]).all()
    # a proportion near 0.4 from 1000 sequences: CI half-width about 1.96 * sqrt(.24 / 1000)
    rec = t[(t["method"] == "activation") & (t["layer_type"] == "key") & (t["retention"] == 50)]
    rec = rec.iloc[0]
    assert rec["accuracy_ci_high"] - rec["accuracy_ci_low"] == pytest.approx(0.061, abs=0.01)
    # key 50%: activation 0.412 above all three seeds (0.2, 0.3, 0.4) -> p = 1 / 4
    assert rec["p_value"] == pytest.approx(0.25) and rec["p_value_raw"] == 0.0
    assert rec["random_mean"] == pytest.approx(0.3)
    # query 50%: activation 0.6 vs seeds 0.25, 0.35, 0.45 -> p = 1 / 4; query 10%: 0.55 vs
    # 0.2, 0.3, 0.4 -> 1 / 4; a method at or below the seeds gets a larger p
    q = t[(t["layer_type"] == "query") & (t["method"] == "integrated_gradients")]
    assert q["p_value"].tolist() == [pytest.approx(0.25)] * 2
    assert t.loc[t["method_family"] == "random", "p_value"].isna().all()
    assert t.loc[t["method"] == "unmasked", "p_value"].isna().all()


def test_statistics_auc(stats):
    auc = stats.auc.set_index(["layer_type", "method"])
    # two levels 50 and 10: the AUC is their mean
    assert auc.loc[("key", "activation"), "auc"] == pytest.approx((0.412 + 0.35) / 2)
    assert auc.loc[("key", "random"), "auc"] == pytest.approx((0.3 + 0.1) / 2)
    assert auc.loc[("key", "random"), "n_seeds"] == 3
    rec = auc.loc[("key", "activation")]
    assert rec["auc_ci_low"] < rec["auc"] < rec["auc_ci_high"]
    assert rec["p_value"] == pytest.approx(0.25) and rec["p_value_raw"] == 0.0


def test_statistics_without_correct_vectors_leave_ci_empty(table):
    stats = add_statistics(table, n_boot=50)
    assert stats.table["accuracy_ci_low"].isna().all()
    assert stats.table["p_value"].notna().sum() == 2 * 2 * 2  # methods x types x retention


# --- markdown -------------------------------------------------------------------------------


def test_markdown_summary_cells(table):
    md = markdown_summary(table)
    assert md.startswith("# ")
    assert "0.913" in md and "0.901" in md
    assert md.count("### key") == 1
    assert md.count("### query") == 1
    assert md.index("### query") < md.index("### key")  # canonical order: query, key, value, ...
    assert "zero/layer_type/keep" in md
    assert "| method | 50% | 10% |" in md
    assert "| activation | 0.412 | 0.350 |" in md  # no per-sequence vectors: no CI
    assert "| integrated_gradients | 0.500 | 0.450 |" in md
    assert (
        "| random (3 seeds) | 0.300 ± 0.100 [0.205, 0.395] | 0.100 ± 0.000 [0.100, 0.100] |" in md
    )
    assert "| p: activation | 0.250 | 0.250 |" in md
    assert md.count("| neurons kept | 160 | 32 |") == 2
    assert "3 seeds" in md
    assert "| key | activation | 0.381 | 0.250 |" in md  # AUC = mean of the two levels
    assert "completeness" not in md.lower()
    assert "published" not in md  # no qkv / zero / keep rows


def test_markdown_summary_with_confidence_intervals(stats):
    md = markdown_summary(stats)
    row = next(line for line in md.splitlines() if line.startswith("| activation | 0.412 ["))
    low, high = (float(x) for x in row.split("[")[1].split("]")[0].split(","))
    assert low < 0.412 < high and high - low == pytest.approx(0.061, abs=0.01)
    assert "bootstrap 95% CI" in md


def test_markdown_summary_places_published_figures(tmp_path):
    rows = [_row(MODEL, "unmasked", "none", 100.0, 0.8)]
    for method, accs in {
        "activation": (0.5, 0.4, 0.3, 0.2),
        "integrated_gradients": (0.6, 0.5, 0.4, 0.3),
        "random-0": (0.2, 0.2, 0.2, 0.2),
        "random-1": (0.3, 0.3, 0.3, 0.3),
    }.items():
        for r, acc in zip((50.0, 25.0, 10.0, 1.0), accs, strict=True):
            rows.append(
                _row(MODEL, method, "qkv", r, acc).assign(
                    scope="qkv", mode="zero", direction="keep", group_ranking="raw"
                )
            )
    table = collect(rows)
    md = markdown_summary(table)
    assert "Beside the published figures (Nori et al. 2023)" in md
    assert "| published: random | 0.913 | 0.180 | 0.088 | 0.187 | 0.187 |" in md
    assert "| published: integrated_gradients | 0.913 | 0.355 | 0.312 | 0.289 | 0.297 |" in md
    assert "| this run: activation | 0.800 | 0.500 | 0.400 | 0.300 | 0.200 |" in md
    assert "| this run: random | 0.800 | 0.250 ± 0.071 |" in md
    assert "cross-type ranking: raw" in md
    html = markdown_to_html(md, "t")
    assert "<table>" in html and "<h2>Beside the published figures" in html
    assert "<b>published</b>" in html


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
    assert "| random" not in md
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


# --- where knowledge neurons live -----------------------------------------------------------


def _scores() -> pd.DataFrame:
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


def test_enrichment_tables_find_the_planted_key_units():
    by_layer, by_type = enrichment_tables(_scores(), [50.0, 5.0], rankings=["zscore", "raw"])
    key = by_type[
        (by_type["pool"] == "qkv")
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
        (by_layer["pool"] == "key")
        & (by_layer["method"] == "activation")
        & (by_layer["retention"] == 5.0)
    ].set_index("layer")
    assert cell.loc[1, "n_selected"] == 1 and cell.loc[0, "n_selected"] == 0
    assert cell.loc[1, "enrichment"] == pytest.approx(2.0)
    assert set(by_layer["pool"]) == {"query", "key", "value", "qkv", "all"}
    assert by_type["pool"].isin(["qkv", "all"]).all()
    # the random seeds' own rows carry the null's mean but no p-value
    rand = by_type[by_type["method_family"] == "random"]
    assert rand["p_value"].isna().all() and rand["random_mean"].notna().all()


def test_class_overlap_from_per_class_scores():
    scores = _scores()
    scores = scores[scores["method"] == "activation"]
    assert class_overlap(scores, [50.0], ["1", "2"]).empty  # no per-class rows: skipped
    per_class = []
    for label in (0, 1, 2):
        rows = scores.assign(label=label)
        if label == 2:  # class 3 ranks the units in reverse
            rows = rows.assign(score=-rows["score"])
        per_class.append(rows)
    with_labels = pd.concat([scores.assign(label=-1), *per_class], ignore_index=True)
    overlap = class_overlap(with_labels, [50.0], ["1", "2", "3"], model=MODEL)
    assert len(overlap) == 3 * 3  # 3 layer types x 3 class pairs
    j = overlap.set_index(["layer_type", "class_a", "class_b"])["jaccard"]
    assert j[("key", "1", "2")] == 1.0  # identical scores, identical selection
    assert j[("key", "1", "3")] == 0.0  # reversed scores, disjoint halves
    assert overlap["expected_random"].iloc[0] == pytest.approx(
        (10 * 10 / 20) / (2 * 10 - 10 * 10 / 20)
    )


def test_markdown_reports_key_enrichment(stats):
    _, by_type = enrichment_tables(
        _scores().assign(model=MODEL), [5.0], rankings=["zscore"], model=MODEL
    )
    md = markdown_summary(stats, by_type=by_type)
    assert "Are key projections enriched?" in md
    assert "| activation | zscore | 5% | 3.00 | " in md


def test_selection_plots(stats, tmp_path):
    by_layer, by_type = enrichment_tables(_scores(), [50.0, 10.0], rankings=["zscore"], model=MODEL)
    for scope in ("layer_type", "qkv", "all"):
        path = tmp_path / f"heatmap_{scope}.png"
        plot_selection_heatmap(by_layer, path, "activation", scope)
        _check_plot(path)
    with pytest.raises(ValueError, match="no selection"):
        plot_selection_heatmap(by_layer, tmp_path / "x.png", "saliency", "qkv")
    plot_type_enrichment(by_type, tmp_path / "enrichment.png")
    _check_plot(tmp_path / "enrichment.png")
    plot_type_enrichment(by_type.iloc[0:0], tmp_path / "empty.png")  # one type: a note
    _check_plot(tmp_path / "empty.png")
    plot_per_class_accuracy(stats.table, tmp_path / "per_class.png", ("zero", "layer_type", "keep"))
    _check_plot(tmp_path / "per_class.png")
    plot_accuracy_vs_retention(stats, tmp_path / "ci.png")
    _check_plot(tmp_path / "ci.png")


# --- ground truth (site recovery) -------------------------------------------------------------

# auroc_mean[method][site kind, map] at keep 10% of key
RECOVERY = {
    "activation": {("motif", "activation"): 0.93, ("motif", "ig"): 0.97, ("decoy", "ig"): 0.52},
    "random-0": {("motif", "activation"): 0.55, ("motif", "ig"): 0.60, ("decoy", "ig"): 0.50},
    "random-1": {("motif", "activation"): 0.45, ("motif", "ig"): 0.70, ("decoy", "ig"): 0.48},
}


def _recovery(model: str = MODEL) -> pd.DataFrame:
    rows = []
    for method, cells in RECOVERY.items():
        family, _, seed = method.partition("-")
        for (kind, value), auroc in cells.items():
            rows.append({"model": model, "method": method, "method_family": family,
                         "seed": int(seed) if seed else None, "layer_type": "key",
                         "retention": 10.0, "site_kind": kind, "map": value,
                         "auroc_mean": auroc, "auroc_pooled": auroc, "n_sequences": 4,
                         "n_site_residues": 20})  # fmt: skip
    table = pd.DataFrame(rows)
    table["seed"] = table["seed"].astype("Int64")
    return table


def test_ground_truth_section_puts_accuracy_beside_site_auroc(stats):
    md = ground_truth_section(stats, _recovery(), MODEL)
    header = next(line for line in md.splitlines() if line.startswith("| layer type"))
    assert header.split("|")[5:8] == [
        " motif AUROC (activation map) ",
        " motif AUROC (ig map) ",
        " decoy AUROC (ig map) ",
    ]
    # activation keeps 0.350 of key at 10% (with its bootstrap CI); random seeds all hold 0.1
    row = next(line for line in md.splitlines() if line.startswith("| key | 10% | activation |"))
    assert "| 0.350 [" in row and row.endswith("| 0.930 | 0.970 | 0.520 |")
    rand = next(line for line in md.splitlines() if line.startswith("| key | 10% | random"))
    assert "random (2 seeds)" in rand and "| 0.100 [0.100, 0.100] |" in rand
    # random AUROC: mean ± std [min, max] over the seeds
    assert rand.endswith(
        "| 0.500 ± 0.071 [0.450, 0.550] | 0.650 ± 0.071 [0.600, 0.700] "
        "| 0.490 ± 0.014 [0.480, 0.500] |"
    )
    assert "ground truth" in markdown_summary(stats, recovery=_recovery())
    assert "ground truth" not in markdown_summary(stats, recovery=_recovery("other"))
    assert ground_truth_section(stats, _recovery().iloc[:0], MODEL) == ""


def test_plot_site_recovery(tmp_path):
    plot_site_recovery(_recovery(), tmp_path / "recovery.png")
    assert (tmp_path / "recovery.png").stat().st_size > 10_000
    assert (tmp_path / "recovery.svg").read_text().startswith("<?xml")
    plot_site_recovery(_recovery().iloc[:0], tmp_path / "empty.png")
    assert (tmp_path / "empty.png").stat().st_size > 0
