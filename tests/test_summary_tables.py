"""Tests for kneurons.summary.tables and kneurons.summary.baseline on a small synthetic
evaluation table. The evaluation rows built here (`eval_row`, `eval_rows`, `with_correct`) serve
the other test_summary_* modules."""

from __future__ import annotations

import json
import random

import numpy as np
import pandas as pd
import pytest

from kneurons.summary.baseline import add_statistics, random_band
from kneurons.summary.tables import REQUIRED_COLUMNS, collect, variants

MODEL = "esm2_t6_8M"
CLASSES = ("1", "2", "3")
N_TOTAL = 320
N_KEPT = {50.0: 160, 10.0: 32}
N_TEST = 1000

# accuracy[target][method][retention]
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


def eval_row(model: str, method: str, target: str, retention: float, accuracy: float):
    """One evaluation row as the evaluation jobs write it (without the masking options)."""
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
            "target": [target],
            "retention": [float(retention)],
            "n_kept": [n_kept],
            "n_total": [N_TOTAL],
            "n": [N_TEST],
            "accuracy": [accuracy],
            "macro_f1": [UNMASKED_F1 if method == "unmasked" else accuracy * 0.9],
            "per_class_accuracy": [per_class],
        }
    )


def eval_rows(model: str = MODEL) -> list[pd.DataFrame]:
    rows = [eval_row(model, "unmasked", "none", 100.0, UNMASKED_ACC)]
    for target, by_method in ACCURACY.items():
        for method, by_r in by_method.items():
            for retention, acc in by_r.items():
                rows.append(eval_row(model, method, target, retention, acc))
    random.Random(0).shuffle(rows)
    return rows


def with_correct(rows: list[pd.DataFrame]) -> list[pd.DataFrame]:
    """Add the per-sequence correctness vector that evaluation jobs write (acc x N_TEST hits)."""
    out = []
    for i, row in enumerate(rows):
        correct = np.zeros(N_TEST, dtype=bool)
        correct[: round(float(row["accuracy"].iloc[0]) * N_TEST)] = True
        np.random.default_rng(i).shuffle(correct)
        out.append(row.assign(correct=[correct.tolist()]))
    return out


def summary_stats():
    return add_statistics(collect(with_correct(eval_rows())), n_boot=500, seed=0)


@pytest.fixture
def table() -> pd.DataFrame:
    return collect(eval_rows())


@pytest.fixture
def stats():
    return summary_stats()


# --- collect --------------------------------------------------------------------------------


def test_collect_orders_rows(table):
    assert len(table) == 1 + 2 * 5 * 2
    assert list(table.index) == list(range(len(table)))
    keys = list(zip(table["target"], table["method"], table["retention"], strict=True))
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
    rows = [r.drop(columns=["accuracy", "n_kept"]) for r in eval_rows()]
    with pytest.raises(ValueError, match="accuracy") as err:
        collect(rows)
    assert "n_kept" in str(err.value)
    with pytest.raises(ValueError):
        collect([])


def test_collect_rejects_the_old_layer_type_column():
    rows = [r.rename(columns={"target": "layer_type"}) for r in eval_rows()]
    with pytest.raises(ValueError, match="target.*`layer_type` is now `target`"):
        collect(rows)


def test_collect_rejects_two_models():
    with pytest.raises(ValueError, match="one model"):
        collect(eval_rows() + eval_rows("esm2_t12_35M"))


def test_required_columns_match_fixture():
    assert list(eval_rows()[0].columns) == list(REQUIRED_COLUMNS)


def test_variants_in_vocabulary_order(table):
    def variant(mode, scope, direction):
        return table[table["method"] != "unmasked"].assign(
            mode=mode, scope=scope, direction=direction
        )

    mixed = pd.concat(
        [
            variant("mean", "layer", "keep"),
            variant("zero", "qkv", "remove"),
            variant("zero", "all", "keep"),
        ]
    )
    assert variants(mixed) == [  # modes, scopes, directions in vocab's order
        ("zero", "qkv", "remove"),
        ("zero", "all", "keep"),
        ("mean", "layer", "keep"),
    ]


# --- random_band ----------------------------------------------------------------------------


def test_random_band_statistics(table):
    band = random_band(table)
    assert list(band.columns) == [
        "model",
        "target",
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
    rec = band[(band["target"] == "key") & (band["retention"] == 50.0)].iloc[0]
    assert rec["mean"] == pytest.approx(0.3)
    assert rec["std"] == pytest.approx(0.1)
    assert rec["n_seeds"] == 3
    assert rec["min"] == pytest.approx(0.2)
    assert rec["max"] == pytest.approx(0.4)
    # central 95% of three seeds 0.2, 0.3, 0.4 (linear interpolation)
    assert rec["band_low"] == pytest.approx(0.205) and rec["band_high"] == pytest.approx(0.395)
    rec = band[(band["target"] == "key") & (band["retention"] == 10.0)].iloc[0]
    assert rec["mean"] == pytest.approx(0.1)
    assert rec["std"] == pytest.approx(0.0)
    rec = band[(band["target"] == "query") & (band["retention"] == 10.0)].iloc[0]
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
    assert "mean" in empty.columns and "target" in empty.columns


# --- statistics -----------------------------------------------------------------------------


def test_statistics_add_ci_and_p_values(stats):
    t = stats.table
    assert stats.model == MODEL
    assert t["accuracy_ci_low"].notna().all() and t["accuracy_ci_high"].notna().all()
    assert (t["accuracy_ci_low"] <= t["accuracy"]).all()
    assert (t["accuracy"] <= t["accuracy_ci_high"]).all()
    # a proportion near 0.4 from 1000 sequences: CI half-width about 1.96 * sqrt(.24 / 1000)
    rec = t[(t["method"] == "activation") & (t["target"] == "key") & (t["retention"] == 50)]
    rec = rec.iloc[0]
    assert rec["accuracy_ci_high"] - rec["accuracy_ci_low"] == pytest.approx(0.061, abs=0.01)
    # key 50%: activation 0.412 above all three seeds (0.2, 0.3, 0.4) -> p = 1 / 4
    assert rec["p_value"] == pytest.approx(0.25) and rec["p_value_raw"] == 0.0
    assert rec["random_mean"] == pytest.approx(0.3)
    # query 50%: activation 0.6 vs seeds 0.25, 0.35, 0.45 -> p = 1 / 4; query 10%: 0.55 vs
    # 0.2, 0.3, 0.4 -> 1 / 4; a method at or below the seeds gets a larger p
    q = t[(t["target"] == "query") & (t["method"] == "integrated_gradients")]
    assert q["p_value"].tolist() == [pytest.approx(0.25)] * 2
    assert t.loc[t["method_family"] == "random", "p_value"].isna().all()
    assert t.loc[t["method"] == "unmasked", "p_value"].isna().all()


def test_statistics_auc(stats):
    auc = stats.auc.set_index(["target", "method"])
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
    assert stats.table["p_value"].notna().sum() == 2 * 2 * 2  # methods x targets x retention


def test_tests_against_random_by_hand_and_against_scipy():
    """Δ, its interval over seeds and sequences, the z and rank p-values and BH q-values."""
    from scipy import stats as scipy_stats

    from kneurons import statistics as st

    rows = with_correct(eval_rows())
    table = collect(rows)
    stats = add_statistics(table, n_boot=300, seed=1)
    out = stats.table
    cell = out[(out["method"] == "integrated_gradients") & (out["target"] == "query")]
    cell = cell[cell["retention"] == 50.0].iloc[0]
    seeds = out[(out["method_family"] == "random") & (out["target"] == "query")]
    seeds = seeds[seeds["retention"] == 50.0]
    null = seeds["accuracy"].to_numpy()
    assert cell["delta"] == pytest.approx(0.650 - null.mean())
    # the same resamples of the test sequences: the test-set variance of Δ, then z on t(S - 1)
    counts = st.resample_counts(N_TEST, 300, 1)
    method = st.resampled_means(np.asarray(cell["correct"]), counts)[0]
    random_boot = st.resampled_means(np.vstack(seeds["correct"].to_list()), counts)
    v_seq = np.var(method - random_boot.mean(0), ddof=1)
    scale = np.sqrt(max(null.var(ddof=1) * (1 + 1 / null.size), v_seq))
    expected = scipy_stats.t.sf(cell["delta"] / scale, df=null.size - 1)
    assert cell["p_z"] == pytest.approx(expected)
    assert cell["n_tied_or_beyond"] == 0 and cell["p_test"] == cell["p_z"]
    assert cell["delta_ci_low"] < cell["delta"] < cell["delta_ci_high"]
    # one family: every cell and every AUC row, adjusted together
    p = np.concatenate([out["p_test"].to_numpy(float), stats.auc["p_test"].to_numpy(float)])
    finite = np.isfinite(p)
    q = scipy_stats.false_discovery_control(p[finite], method="bh")
    got = np.concatenate([out["q_value"].to_numpy(float), stats.auc["q_value"].to_numpy(float)])
    np.testing.assert_allclose(got[finite], q)
    assert finite.sum() == 8 + 4  # every method cell, 4 AUC rows
    # random rows carry no test
    assert out.loc[out["method_family"] == "random", "q_value"].isna().all()
    # AUC: Δ against the seeds' mean AUC
    auc = stats.auc.set_index(["target", "method"])
    seeds_auc = auc.loc[("query", "random"), "random_auc_mean"]
    assert auc.loc[("query", "activation"), "delta"] == pytest.approx(
        auc.loc[("query", "activation"), "auc"] - seeds_auc
    )


def test_a_tie_with_a_seed_at_the_floor_is_no_finding():
    """19 seeds at the floor 0.25 and one at 0.30; the method at 0.30 ties that seed: the old
    t-test gave p 2.7e-4; the rank guard makes it at least 2 / 21 and no finding."""
    from kneurons.summary.baseline import is_finding

    n = 20
    floor = np.zeros(n, dtype=bool)
    floor[:5] = True  # the sink class: 5 of 20 sequences
    lifted = floor.copy()
    lifted[5] = True

    def row(method, vec):
        acc = float(np.mean(vec))
        return eval_row(MODEL, method, "query", 1.0, acc).assign(n=n, correct=[list(vec)])

    rows = [eval_row(MODEL, "unmasked", "none", 100.0, 0.9).assign(n=n, correct=[[True] * n])]
    rows += [row(f"random-{i}", lifted if i == 0 else floor) for i in range(20)]
    rows.append(row("integrated_gradients", lifted))
    stats = add_statistics(collect(rows), n_boot=500, seed=0)
    ig = stats.table[stats.table["method"] == "integrated_gradients"].iloc[0]
    assert ig["n_tied_or_beyond"] == 1
    assert ig["p_test"] >= 2 / 21
    assert not is_finding(ig, 0.05)


def test_seeds_as_methods_self_check(stats):
    """Every seed of every cell plays method against the others: 3 seeds x cells."""
    check = stats.self_check
    n_cells = len(stats.random)
    assert len(check) == 3 * n_cells
    assert set(check["seed"].dropna().astype(int)) == {0, 1, 2}
    assert check["q_value"].notna().any()


def test_remove_direction_tests_for_a_loss():
    rows = []
    for i, acc in enumerate([0.80, 0.82, 0.78, 0.81, 0.79]):
        row = eval_row(MODEL, f"random-{i}", "key", 10.0, acc)
        rows.append(row.assign(direction="remove"))
    rows.append(eval_row(MODEL, "activation", "key", 10.0, 0.30).assign(direction="remove"))
    rows.append(eval_row(MODEL, "unmasked", "none", 100.0, 0.9))
    stats = add_statistics(collect(with_correct(rows)), n_boot=200, seed=0)
    act = stats.table[stats.table["method"] == "activation"].iloc[0]
    assert act["delta"] == pytest.approx(0.30 - 0.80)
    assert act["delta_ci_high"] < 0 and act["n_tied_or_beyond"] == 0
    assert act["p_test"] < 1e-4 and act["p_value"] == pytest.approx(1 / 6)


def test_at_a_floor_a_method_is_judged_against_the_seeds_that_leave_it():
    """Most seeds share the floor. A method far beyond the seeds that leave it is a finding
    (the chance of escaping times the chance of escaping that far); one that merely left the
    floor like the escapes did is not, however small its z against the tied mass."""
    from kneurons import statistics as st

    null = np.array([0.25] * 15 + [0.30, 0.31, 0.32, 0.33, 0.34])
    rng = np.random.default_rng(0)
    null_boot = null[:, None] + rng.normal(0, 0.005, (null.size, 200))
    far = st.random_test(0.6, null, 0.6 + rng.normal(0, 0.005, 200), null_boot)
    assert far["n_tied_or_beyond"] == 0 and far["p_value"] < 1e-4
    near = st.random_test(0.345, null, 0.345 + rng.normal(0, 0.005, 200), null_boot)
    assert near["n_tied_or_beyond"] == 0 and near["p_z"] < 0.05
    # an escape like the others: (m + 1) / (S + 1) x its tail among the escapes (here 6/21 x
    # 0.11), well above what z against the seeds' whole spread says
    assert near["p_value"] > 2 * near["p_z"] and near["p_value"] > 0.02
    lone = np.array([0.25] * 19 + [0.30])  # one escape: its spread unknown
    alone = st.random_test(0.6, lone, 0.6 + rng.normal(0, 0.005, 200), null_boot)
    assert alone["p_value"] == pytest.approx(2 / 21)
    spread = np.linspace(0.2, 0.4, 20)  # no floor: the method beyond every seed is judged by z
    free = st.random_test(
        0.6, spread, far_boot := 0.6 + null_boot[0] * 0, spread[:, None] + 0 * null_boot
    )
    assert free["p_value"] == free["p_z"] < 1e-3 and far_boot.size == 200
