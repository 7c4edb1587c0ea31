"""One model's evaluation rows against the random baseline: the random band over seeds,
bootstrap intervals, the test of every cell against its random seeds (Δ, p-values, one
Benjamini-Hochberg family), the area under accuracy vs retention, the seeds' equivalence with the
unmasked model and their self-check; `add_statistics` assembles them into `Statistics`.

The rows and their schema are `kneurons.summary.tables`; the statistics themselves are
`kneurons.statistics`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from kneurons import statistics as st
from kneurons.summary.tables import (
    CELL_COLUMNS,
    VARIANT_COLUMNS,
    masked_rows,
    one_model,
    unmasked_rows,
)
from kneurons.vocab import RANDOM

BAND_COLUMNS = (*CELL_COLUMNS, "mean", "std", "n_seeds", "band_low", "band_high", "min", "max")
# The test of one cell against its random seeds (`kneurons.statistics.random_test`): Δ = method −
# mean of the seeds with its interval over seeds and test sequences resampled together, the
# number of seeds at or beyond the method, the z p-value (seed spread and test-set noise), the
# cell's one-sided p-value (p_z, and at least the rank p-value when a seed ties or beats the
# method) and its Benjamini-Hochberg q-value over every cell and AUC row of the summary.
TEST_COLUMNS = (
    "delta",
    "delta_ci_low",
    "delta_ci_high",
    "n_tied_or_beyond",
    "p_z",
    "p_test",
    "q_value",
)
AUC_COLUMNS = (
    "model",
    "target",
    *VARIANT_COLUMNS,
    "method",
    "n_retentions",
    "auc",
    "auc_ci_low",
    "auc_ci_high",
    "random_auc_mean",
    "random_auc_std",
    "random_auc_band_low",
    "random_auc_band_high",
    "n_seeds",
    "p_value",
    "p_value_raw",
    *TEST_COLUMNS,
)


def random_band(table: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Spread of the random baseline over seeds, per (target, variant, retention).

    Columns: model, target, mode, scope, direction, retention, mean, std (ddof=1; 0 when
    only one seed), n_seeds, band_low, band_high (central `level` quantiles over seeds), min,
    max of accuracy. Sorted by target, variant and retention (descending).
    """
    rand = table[table["method_family"] == RANDOM]
    if rand.empty:
        return pd.DataFrame({col: pd.Series(dtype=_band_dtype(col)) for col in BAND_COLUMNS})
    records = []
    for key, rows in rand.groupby(list(CELL_COLUMNS), sort=False):
        b = st.band(rows["accuracy"], level)
        records.append(
            {
                **dict(zip(CELL_COLUMNS, key, strict=True)),
                "mean": b["mean"],
                "std": b["std"],
                "n_seeds": b["n"],
                "band_low": b["band_low"],
                "band_high": b["band_high"],
                "min": b["min"],
                "max": b["max"],
            }
        )
    band = pd.DataFrame(records)
    band["n_seeds"] = band["n_seeds"].astype("int64")
    band = band.sort_values(
        ["target", *VARIANT_COLUMNS, "retention"],
        ascending=[True, True, True, True, False],
        kind="stable",
    )
    return band.loc[:, list(BAND_COLUMNS)].reset_index(drop=True)


def _band_dtype(col: str) -> str:
    if col in ("model", "target", *VARIANT_COLUMNS):
        return "object"
    return "int64" if col == "n_seeds" else "float64"


@dataclass
class Statistics:
    table: pd.DataFrame  # evaluation rows + accuracy CI, random mean/std, p-values
    random: pd.DataFrame  # random_band
    auc: pd.DataFrame  # one row per (target, variant, method or "random")
    # each random seed tested as if it were a method against the other seeds (`self_check`)
    self_check: pd.DataFrame | None = None
    # the accuracy of always predicting the test set's most frequent class (`majority_rate`)
    chance: float | None = None

    @property
    def model(self) -> str:
        return one_model(self.table)


def _correct_matrix(rows: pd.DataFrame) -> np.ndarray | None:
    if "correct" not in rows.columns:
        return None
    vectors = list(rows["correct"])
    if any(v is None or (isinstance(v, float) and math.isnan(v)) for v in vectors):
        return None
    lengths = {len(v) for v in vectors}
    if len(lengths) != 1:
        raise ValueError(f"evaluations of one model differ in test-set size: {sorted(lengths)}")
    return np.asarray([np.asarray(v, dtype=bool) for v in vectors])


def _cell_tests(value, null, method_boot, random_boot, level, alternative, seed) -> dict:
    """`kneurons.statistics.random_test` of one value (accuracy or AUC) against its random
    seeds' values `null` (`*_boot`: resampled values, or None without per-sequence results)."""
    result = st.random_test(value, null, method_boot, random_boot, alternative, level, seed)
    return {
        "delta": result["delta"],
        "delta_ci_low": result["delta_ci_low"],
        "delta_ci_high": result["delta_ci_high"],
        "n_tied_or_beyond": result["n_tied_or_beyond"],
        "p_z": result["p_z"],
        "p_test": result["p_value"],
    }


def add_statistics(
    table: pd.DataFrame,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    strata: Sequence | None = None,
    clusters: Sequence | None = None,
    alpha: float = 0.05,
    margin: float = 0.02,
) -> Statistics:
    """Bootstrap CIs for every accuracy, the random band, the tests against random (empirical
    rank p-value, `kneurons.statistics.random_test`, BH q-value) and AUC per method.

    CIs need the `correct` column (per-sequence correctness, test order); without it they
    are NaN. All rows share the same `n_boot` resamples of the test sequences (seeded; within
    each class of `strata` and by homology cluster of `clusters` when given, both in test
    order), so the AUC interval is the AUC of the resampled accuracies and the Δ of a method
    and the seeds is paired. `alpha` and `margin`: the equivalence test of the random seeds
    against the unmasked model (`equivalence`).
    """
    one_model(table, "add_statistics")
    out = table.copy()
    out["accuracy_ci_low"] = np.nan
    out["accuracy_ci_high"] = np.nan
    boot = pd.Series([None] * len(out), index=out.index, dtype=object)
    correct = _correct_matrix(out)
    if correct is not None:
        counts = st.resample_counts(correct.shape[1], n_boot, seed, strata, clusters)
        samples = st.resampled_means(correct, counts)
        out["accuracy_ci_low"], out["accuracy_ci_high"] = st.percentile_interval(samples, level)
        for i, idx in enumerate(out.index):
            boot[idx] = samples[i]

    band = random_band(out, level)
    out["random_mean"] = np.nan
    out["random_std"] = np.nan
    out["p_value"] = np.nan
    out["p_value_raw"] = np.nan
    for col in TEST_COLUMNS:
        out[col] = np.nan
    rand = out[out["method_family"] == RANDOM]
    groups = dict(list(rand.groupby(list(CELL_COLUMNS))))
    band_by_cell = band.set_index(list(CELL_COLUMNS)) if not band.empty else None
    for idx, row in masked_rows(out).iterrows():
        key = tuple(row[c] for c in CELL_COLUMNS)
        if key not in groups:
            continue
        out.at[idx, "random_mean"] = band_by_cell.loc[key, "mean"]
        out.at[idx, "random_std"] = band_by_cell.loc[key, "std"]
        if row["method_family"] == RANDOM:
            continue
        null = groups[key]["accuracy"].to_numpy()
        alternative = st.alternative_of(row["direction"])
        out.at[idx, "p_value"], out.at[idx, "p_value_raw"] = st.empirical_p_value(
            row["accuracy"], null, alternative
        )
        random_boot = None if correct is None else np.vstack([boot[i] for i in groups[key].index])
        tests = _cell_tests(row["accuracy"], null, boot[idx], random_boot, level, alternative, seed)
        for col, value in tests.items():
            out.at[idx, col] = value
    auc = auc_table(out, boot, level, seed)
    adjust_all(out, auc)
    band = equivalence(out, band, boot, alpha, margin, seed)
    check = self_check(out, boot, level, seed)
    chance = majority_rate(strata) if strata is not None else None
    return Statistics(table=out, random=band, auc=auc, self_check=check, chance=chance)


def majority_rate(labels: Sequence) -> float | None:
    """Chance: the accuracy of always predicting the most frequent class of `labels` (the
    test set's), which a model that learnt nothing reaches; None without labels."""
    labels = np.asarray(labels)
    if labels.size == 0:
        return None
    _, counts = np.unique(labels, return_counts=True)
    return float(counts.max() / labels.size)


EQUIVALENCE_COLUMNS = ("unmasked_diff", "unmasked_diff_low", "unmasked_diff_high", "equivalent")


def equivalence(
    table: pd.DataFrame,
    band: pd.DataFrame,
    boot: pd.Series,
    alpha: float = 0.05,
    margin: float = 0.02,
    seed: int = 0,
) -> pd.DataFrame:
    """`band` with an equivalence test (TOST) of each cell's random seeds against the unmasked
    model: does a random choice of units do as well as all of them, within ±`margin` accuracy?

    unmasked_diff = seeds' mean − unmasked accuracy; its (1 − 2α) interval redraws the seeds
    and resamples the test sequences together (as `random_test`'s interval, paired with the
    unmasked row on each resample); `equivalent` where the interval lies inside ±margin: both
    one-sided tests reject at α. NaN / False without per-sequence results."""
    out = band.copy()
    for col in EQUIVALENCE_COLUMNS:
        out[col] = False if col == "equivalent" else np.nan
    unmasked = unmasked_rows(table)
    if out.empty or unmasked.empty:
        return out
    base_idx = unmasked.index[0]
    base, base_boot = float(table.at[base_idx, "accuracy"]), boot[base_idx]
    rand = table[table["method_family"] == RANDOM]
    groups = dict(list(rand.groupby(list(CELL_COLUMNS))))
    rng = np.random.default_rng(seed)
    for i, row in out.iterrows():
        rows = groups.get(tuple(row[c] for c in CELL_COLUMNS))
        if rows is None:
            continue
        out.at[i, "unmasked_diff"] = float(rows["accuracy"].mean()) - base
        samples = [boot[j] for j in rows.index]
        if base_boot is None or any(x is None for x in samples):
            continue
        seeds_boot = np.vstack(samples)
        n_boot = seeds_boot.shape[1]
        redrawn = rng.integers(0, len(samples), size=(n_boot, len(samples)))
        diff = seeds_boot[redrawn, np.arange(n_boot)[:, None]].mean(axis=1) - base_boot
        low, high = st.percentile_interval(diff, 1.0 - 2.0 * alpha)
        out.at[i, "unmasked_diff_low"], out.at[i, "unmasked_diff_high"] = low, high
        out.at[i, "equivalent"] = bool(-margin < low and high < margin)
    out["equivalent"] = out["equivalent"].astype(bool)
    return out


SELF_CHECK_COLUMNS = (*CELL_COLUMNS, "seed", *TEST_COLUMNS)


def self_check(
    table: pd.DataFrame, boot: pd.Series, level: float = 0.95, seed: int = 0
) -> pd.DataFrame:
    """Every random seed of every cell in turn plays "method" against the cell's other seeds,
    through the same test (`random_test`, the same resamples) and the same correction (BH over
    all these null tests, one family). Its units are random, so each test is a null: a
    calibrated test rejects at most α of them, and a finding among them (`is_finding`)
    is a false one. Needs three seeds per cell; empty (with `SELF_CHECK_COLUMNS`) otherwise."""
    rand = table[table["method_family"] == RANDOM]
    records = []
    for key, rows in rand.groupby(list(CELL_COLUMNS), sort=False):
        if len(rows) < 3:
            continue
        alternative = st.alternative_of(dict(zip(CELL_COLUMNS, key, strict=True))["direction"])
        values = rows["accuracy"].to_numpy(dtype=float)
        samples = [boot[i] for i in rows.index]
        have_boot = all(x is not None for x in samples)
        for j, (_, row) in enumerate(rows.iterrows()):
            others = np.delete(np.arange(len(rows)), j)
            method_boot = samples[j] if have_boot else None
            null_boot = np.vstack([samples[o] for o in others]) if have_boot else None
            tests = _cell_tests(
                values[j], values[others], method_boot, null_boot, level, alternative, seed
            )
            records.append(
                {**dict(zip(CELL_COLUMNS, key, strict=True)), "seed": row["seed"], **tests}
            )
    frame = pd.DataFrame(records, columns=list(SELF_CHECK_COLUMNS))
    if not frame.empty:
        frame["q_value"] = st.bh_adjust(frame["p_test"].to_numpy(float))
    return frame


def is_finding(row, alpha: float) -> bool:
    """A cell (or a self-check row) is a finding: q ≤ α and Δ's interval on the side its
    direction expects (keep: above 0; remove: below 0)."""
    q = row["q_value"]
    if q is None or not np.isfinite(q) or q > alpha:
        return False
    if row["direction"] == "remove":
        return bool(row["delta_ci_high"] < 0)
    return bool(row["delta_ci_low"] > 0)


def adjust_all(table: pd.DataFrame, auc: pd.DataFrame) -> None:
    """q_value = Benjamini-Hochberg over the test p-values of every cell of `table` and every
    method row of `auc` together (one family per summary), in place."""
    p = np.concatenate([table["p_test"].to_numpy(float), auc["p_test"].to_numpy(float)])
    q = st.bh_adjust(p)
    table["q_value"] = q[: len(table)]
    auc["q_value"] = q[len(table) :]


def auc_table(
    table: pd.DataFrame, boot: pd.Series, level: float = 0.95, seed: int = 0
) -> pd.DataFrame:
    """Area under accuracy vs retention per (target, variant, method), with its bootstrap CI
    (`boot`: each row's resampled accuracies, or None) and the random seeds' AUCs as the null;
    the seeds themselves collapse to one `random` row (their mean). Columns `AUC_COLUMNS`."""
    records = []
    group_cols = ["model", "target", *VARIANT_COLUMNS]
    for key, rows in masked_rows(table).groupby(group_cols, sort=False):
        per_method = {}
        for method, m_rows in rows.groupby("method", sort=False):
            m_rows = m_rows.sort_values("retention")
            r = m_rows["retention"].to_numpy(dtype=float)
            auc = st.retention_auc(r, m_rows["accuracy"])
            samples = [boot[i] for i in m_rows.index]
            ci, auc_boot = (np.nan, np.nan), None
            if all(s is not None for s in samples):
                auc_boot = st.auc_weights(r) @ np.vstack(samples)
                ci = st.percentile_interval(auc_boot, level)
            family = m_rows["method_family"].iloc[0]
            per_method[method] = (auc, len(r), ci, family, auc_boot)
        random_aucs = [v[0] for v in per_method.values() if v[3] == RANDOM]
        seed_boot = [v[4] for v in per_method.values() if v[3] == RANDOM]
        ok = seed_boot and all(samples is not None for samples in seed_boot)
        random_boot = np.vstack(seed_boot) if ok else None
        b = st.band(random_aucs, level)
        base = dict(zip(group_cols, key, strict=True))
        rand_cols = {
            "random_auc_mean": b["mean"],
            "random_auc_std": b["std"],
            "random_auc_band_low": b["band_low"],
            "random_auc_band_high": b["band_high"],
            "n_seeds": b["n"],
        }
        alternative = st.alternative_of(base["direction"])
        for method, (auc, n_r, ci, family, auc_boot) in per_method.items():
            if family == RANDOM:
                continue
            p, p_raw = st.empirical_p_value(auc, random_aucs, alternative)
            tests = _cell_tests(auc, random_aucs, auc_boot, random_boot, level, alternative, seed)
            records.append(
                {
                    **base,
                    "method": method,
                    "n_retentions": n_r,
                    "auc": auc,
                    "auc_ci_low": float(ci[0]),
                    "auc_ci_high": float(ci[1]),
                    **rand_cols,
                    "p_value": p,
                    "p_value_raw": p_raw,
                    **tests,
                    "q_value": np.nan,
                }
            )
        if random_aucs:
            n_r = max(v[1] for v in per_method.values() if v[3] == RANDOM)
            records.append(
                {
                    **base,
                    "method": RANDOM,
                    "n_retentions": n_r,
                    "auc": b["mean"],
                    "auc_ci_low": np.nan,
                    "auc_ci_high": np.nan,
                    **rand_cols,
                    "p_value": np.nan,
                    "p_value_raw": np.nan,
                    **dict.fromkeys(TEST_COLUMNS, np.nan),
                }
            )
    frame = pd.DataFrame(records, columns=list(AUC_COLUMNS))
    frame["n_seeds"] = frame["n_seeds"].astype("int64")
    return frame
