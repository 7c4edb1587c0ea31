"""Summary stage: gather the masked evaluations into tables, statistics, a report and plots.

Each masked evaluation is one row (model, mode, scope, direction, method, layer type, retention
-> test accuracy, with the per-sequence `correct` vector). This module reshapes those rows, adds
the statistics of `kneurons.statistics` (bootstrap intervals, random band, p-values, AUC) and the
selection-side analyses that need only the neuron scores (enrichment by layer type and layer,
overlap between the classes' top neurons). Functions take and return data, except the `plot_*`
functions, which write a PNG and an SVG beside it.
"""

from __future__ import annotations

import html
import json
import math
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from kneurons import statistics as st
from kneurons.masking import GROUP_MEMBERS, per_class_rows, select

REQUIRED_COLUMNS = (
    "model",
    "method",
    "method_family",
    "seed",
    "layer_type",
    "retention",
    "n_kept",
    "n_total",
    "n",
    "accuracy",
    "macro_f1",
    "per_class_accuracy",
)
VARIANT_COLUMNS = ("mode", "scope", "direction")
# Rows written before the masking options existed were zero / layer_type / keep evaluations.
OPTION_DEFAULTS = {"mode": "zero", "scope": "layer_type", "direction": "keep"}
LAYER_TYPE_ORDER = ("query", "key", "value", "attn_out", "ffn_in", "ffn_out", "qkv", "all")
RANDOM = "random"
UNMASKED = "unmasked"
NONE = "none"
CELL_COLUMNS = ("model", "layer_type", *VARIANT_COLUMNS, "retention")
BAND_COLUMNS = (*CELL_COLUMNS, "mean", "std", "n_seeds", "band_low", "band_high", "min", "max")
MISSING_CELL = "—"

# Nori et al. 2023 (arXiv 2312.10770): ESM-2 8M, EC classes 1-6, Q/K/V selected together,
# zeroed weights and biases, test accuracy. Published figures, not recomputed here.
PUBLISHED_NORI2023 = {
    "unmasked": 0.913,
    "retention": (50.0, 25.0, 10.0, 1.0),
    "random": (0.180, 0.088, 0.187, 0.187),
    "activation": (0.285, 0.284, 0.289, 0.297),
    "integrated_gradients": (0.355, 0.312, 0.289, 0.297),
}


# ---------------------------------------------------------------------------------------------
# tables


def collect(rows: Iterable[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate per-evaluation rows into one table, validated and in a stable order.

    Missing option columns get their defaults (mode zero, scope layer_type, direction keep;
    `none` for the unmasked row), `n_selected` defaults to `n_kept`. Sorted by model (unmasked
    first), mode, scope, direction, layer type, method family, method and retention (descending).
    Raises ValueError if there are no rows or a required column is missing.
    """
    frames = [frame for frame in rows if frame is not None]
    if not frames:
        raise ValueError("no evaluation rows to collect")
    table = pd.concat(frames, ignore_index=True)
    missing = [col for col in REQUIRED_COLUMNS if col not in table.columns]
    if missing:
        raise ValueError(f"evaluation rows lack required column(s): {', '.join(missing)}")
    unmasked = table["method_family"] == UNMASKED
    for col, default in OPTION_DEFAULTS.items():
        if col not in table.columns:
            table[col] = default
        table[col] = table[col].where(~unmasked, NONE).fillna(default)
    if "group_ranking" not in table.columns:
        table["group_ranking"] = pd.Series(pd.NA, index=table.index, dtype="string")
    if "n_selected" not in table.columns:
        table["n_selected"] = table["n_kept"]
    table["seed"] = table["seed"].astype("Int64")
    table["_order"] = (~unmasked).astype(int)
    table = table.sort_values(
        ["model", "_order", *VARIANT_COLUMNS, "layer_type", "method_family", "method", "retention"],
        ascending=[True, True, True, True, True, True, True, True, False],
        kind="stable",
    )
    return table.drop(columns="_order").reset_index(drop=True)


def _masked(table: pd.DataFrame) -> pd.DataFrame:
    return table[table["method_family"] != UNMASKED]


def _unmasked_rows(table: pd.DataFrame) -> pd.DataFrame:
    return table[table["method_family"] == UNMASKED]


def variants(table: pd.DataFrame) -> list[tuple[str, str, str]]:
    """The (mode, scope, direction) combinations present, default-like order."""
    masked = _masked(table)
    found = set(zip(*(masked[c] for c in VARIANT_COLUMNS), strict=True))
    rank = {"zero": 0, "mean": 1, "layer_type": 0, "layer": 1, "qkv": 2, "all": 3}
    rank |= {"keep": 0, "remove": 1}
    return sorted(found, key=lambda v: tuple((rank.get(x, 9), x) for x in v))


def variant_rows(table: pd.DataFrame, variant: Sequence[str]) -> pd.DataFrame:
    """The masked rows of one (mode, scope, direction)."""
    masked = _masked(table)
    keep = np.ones(len(masked), dtype=bool)
    for col, value in zip(VARIANT_COLUMNS, variant, strict=True):
        keep &= (masked[col] == value).to_numpy()
    return masked[keep]


def random_band(table: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Spread of the random baseline over seeds, per (model, layer type, variant, retention).

    Columns: model, layer_type, mode, scope, direction, retention, mean, std (ddof=1; 0 when
    only one seed), n_seeds, band_low, band_high (central `level` quantiles over seeds), min,
    max of accuracy. Sorted by model, layer type, variant and retention (descending).
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
        ["model", "layer_type", *VARIANT_COLUMNS, "retention"],
        ascending=[True, True, True, True, True, False],
        kind="stable",
    )
    return band.loc[:, list(BAND_COLUMNS)].reset_index(drop=True)


def _band_dtype(col: str) -> str:
    if col in ("model", "layer_type", *VARIANT_COLUMNS):
        return "object"
    return "int64" if col == "n_seeds" else "float64"


@dataclass
class Statistics:
    table: pd.DataFrame  # evaluation rows + accuracy CI, random mean/std, p-values
    random: pd.DataFrame  # random_band
    auc: pd.DataFrame  # one row per (model, layer type, variant, method or "random")


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


def add_statistics(
    table: pd.DataFrame, n_boot: int = 1000, seed: int = 0, level: float = 0.95
) -> Statistics:
    """Bootstrap CIs for every accuracy, the random band, p-values and AUC per method.

    CIs need the `correct` column (per-sequence correctness, test order); without it they
    are NaN. All rows of a model share the same `n_boot` resamples (seeded), so the AUC
    interval is the AUC of the resampled accuracies.
    """
    out = table.copy()
    out["accuracy_ci_low"] = np.nan
    out["accuracy_ci_high"] = np.nan
    boot = pd.Series([None] * len(out), index=out.index, dtype=object)
    for _, rows in out.groupby("model", sort=False):
        correct = _correct_matrix(rows)
        if correct is None:
            continue
        counts = st.bootstrap_counts(correct.shape[1], n_boot, seed)
        samples = st.bootstrap_accuracy(correct, counts)
        low, high = st.percentile_interval(samples, level)
        out.loc[rows.index, "accuracy_ci_low"] = low
        out.loc[rows.index, "accuracy_ci_high"] = high
        for i, idx in enumerate(rows.index):
            boot[idx] = samples[i]

    band = random_band(out, level)
    out["random_mean"] = np.nan
    out["random_std"] = np.nan
    out["p_value"] = np.nan
    out["p_value_raw"] = np.nan
    rand = out[out["method_family"] == RANDOM]
    null = {key: rows["accuracy"].to_numpy() for key, rows in rand.groupby(list(CELL_COLUMNS))}
    band_by_cell = band.set_index(list(CELL_COLUMNS)) if not band.empty else None
    for idx, row in _masked(out).iterrows():
        key = tuple(row[c] for c in CELL_COLUMNS)
        if key not in null:
            continue
        out.at[idx, "random_mean"] = band_by_cell.loc[key, "mean"]
        out.at[idx, "random_std"] = band_by_cell.loc[key, "std"]
        if row["method_family"] != RANDOM:
            out.at[idx, "p_value"], out.at[idx, "p_value_raw"] = st.empirical_p_value(
                row["accuracy"], null[key]
            )
    return Statistics(table=out, random=band, auc=_auc_table(out, boot, level))


AUC_COLUMNS = (
    "model",
    "layer_type",
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
)


def _auc_table(table: pd.DataFrame, boot: pd.Series, level: float) -> pd.DataFrame:
    records = []
    group_cols = ["model", "layer_type", *VARIANT_COLUMNS]
    for key, rows in _masked(table).groupby(group_cols, sort=False):
        per_method = {}
        for method, m_rows in rows.groupby("method", sort=False):
            m_rows = m_rows.sort_values("retention")
            r = m_rows["retention"].to_numpy(dtype=float)
            auc = st.retention_auc(r, m_rows["accuracy"])
            samples = [boot[i] for i in m_rows.index]
            ci = (np.nan, np.nan)
            if all(s is not None for s in samples):
                auc_boot = st.auc_weights(r) @ np.vstack(samples)
                ci = st.percentile_interval(auc_boot, level)
            per_method[method] = (auc, len(r), ci, m_rows["method_family"].iloc[0])
        random_aucs = [v[0] for v in per_method.values() if v[3] == RANDOM]
        b = st.band(random_aucs, level)
        base = dict(zip(group_cols, key, strict=True))
        rand_cols = {
            "random_auc_mean": b["mean"],
            "random_auc_std": b["std"],
            "random_auc_band_low": b["band_low"],
            "random_auc_band_high": b["band_high"],
            "n_seeds": b["n"],
        }
        for method, (auc, n_r, ci, family) in per_method.items():
            if family == RANDOM:
                continue
            p, p_raw = st.empirical_p_value(auc, random_aucs)
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
                }
            )
    frame = pd.DataFrame(records, columns=list(AUC_COLUMNS))
    frame["n_seeds"] = frame["n_seeds"].astype("int64")
    return frame


def _method_order(methods: Iterable[str]) -> list[str]:
    """Selection methods in alphabetical order, with the random baseline last."""
    methods = set(methods)
    return sorted(m for m in methods if m != RANDOM) + ([RANDOM] if RANDOM in methods else [])


def _layer_type_order(layer_types: Iterable[str]) -> list[str]:
    """Canonical layer types first (query, key, value, ..., qkv, all), then others."""
    present = set(layer_types) - {NONE}
    known = [lt for lt in LAYER_TYPE_ORDER if lt in present]
    return known + sorted(present - set(known))


def accuracy_table(table: pd.DataFrame) -> pd.DataFrame:
    """Wide accuracy table: one row per (model, variant, layer_type, method), one column per
    retention (descending). Random seeds collapse to a "random" row holding their mean; the
    unmasked row is left out (it has no retention level)."""
    masked = _masked(table).copy()
    masked["method"] = masked["method"].where(masked["method_family"] != RANDOM, RANDOM)
    index = ["model", *VARIANT_COLUMNS, "layer_type", "method"]
    wide = masked.pivot_table(index=index, columns="retention", values="accuracy", aggfunc="mean")
    wide = wide.reindex(columns=sorted(masked["retention"].unique(), reverse=True))
    order = []
    for model in sorted(masked["model"].unique()):
        sub = masked[masked["model"] == model]
        for variant in variants(sub):
            v_rows = variant_rows(sub, variant)
            for layer_type in _layer_type_order(v_rows["layer_type"]):
                methods = v_rows.loc[v_rows["layer_type"] == layer_type, "method"]
                order.extend((model, *variant, layer_type, m) for m in _method_order(methods))
    wide = wide.reindex(pd.MultiIndex.from_tuples(order, names=index))
    wide.columns.name = "retention"
    return wide


# ---------------------------------------------------------------------------------------------
# where knowledge neurons live, from the scores alone


def selection_pools(layer_types: Sequence[str]) -> dict[str, tuple[str, list[str]]]:
    """Pool name -> (scope, layer types) for the enrichment analyses.

    Every layer type alone (scope layer_type: which layers hold its top units), and the
    groups: qkv when query, key and value are scored (the reference study's claim is about
    them), `all` when more than one type is scored (which types hold the top units).
    """
    pools = {lt: ("layer_type", [lt]) for lt in layer_types}
    if set(GROUP_MEMBERS["qkv"]) <= set(layer_types):
        pools["qkv"] = ("qkv", list(GROUP_MEMBERS["qkv"]))
    if len(layer_types) > 1:
        pools["all"] = ("all", list(layer_types))
    return pools


def _family_seed(method: str) -> tuple[str, int | None]:
    family, _, seed = method.partition("-")
    return family, (int(seed) if seed else None)


def enrichment_tables(
    scores: pd.DataFrame,
    retentions: Sequence[float],
    rankings: Sequence[str] = ("zscore",),
    model: str = "",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Density and enrichment of the top-r% units, by (layer type, layer) and by layer type.

    `scores`: all-class scores with columns method, layer_type, layer, neuron, score. Pools as
    in `selection_pools`; group pools are computed once per ranking in `rankings`.
    Returns (by_layer, by_type). by_type holds group pools only, with the random seeds'
    enrichment as the null: random_mean, random_band_low/high and the empirical p-value
    (+1 correction) of a method's enrichment being at or below the random seeds'.
    """
    layer_types = _layer_type_order(scores["layer_type"].unique())
    pools = selection_pools(layer_types)
    by_layer, by_type = [], []
    for method, m_scores in scores.groupby("method", sort=True):
        family, seed = _family_seed(method)
        for pool, (scope, types) in pools.items():
            pool_scores = m_scores[m_scores["layer_type"].isin(types)]
            for ranking in rankings if scope != "layer_type" else (None,):
                for r in retentions:
                    sel = select(pool_scores, float(r), scope, ranking or "zscore")
                    base = {
                        "model": model,
                        "method": method,
                        "method_family": family,
                        "seed": seed,
                        "pool": pool,
                        "group_ranking": ranking,
                        "retention": float(r),
                    }
                    e = st.enrichment(sel, ["layer_type", "layer"])
                    by_layer.append(e.assign(**base))
                    if scope != "layer_type":
                        by_type.append(st.enrichment(sel, ["layer_type"]).assign(**base))
    cols = ["model", "method", "method_family", "seed", "pool", "group_ranking", "retention"]
    layer_frame = _finish(by_layer, cols + ["layer_type", "layer"])
    type_frame = _finish(by_type, cols + ["layer_type"])
    return layer_frame, _add_random_null(type_frame)


def _finish(frames: list[pd.DataFrame], first: list[str]) -> pd.DataFrame:
    stats_cols = ["n_units", "n_selected", "density", "enrichment", "p_enriched"]
    if not frames:
        return pd.DataFrame(columns=first + stats_cols)
    frame = pd.concat(frames, ignore_index=True)
    frame["seed"] = frame["seed"].astype("Int64")
    frame["group_ranking"] = frame["group_ranking"].astype("string")
    return frame.loc[:, first + stats_cols]


def _add_random_null(by_type: pd.DataFrame) -> pd.DataFrame:
    out = by_type.copy()
    for col in ("random_mean", "random_band_low", "random_band_high", "p_value", "p_value_raw"):
        out[col] = np.nan
    if out.empty:
        return out
    keys = ["pool", "group_ranking", "retention", "layer_type"]
    rand = out[out["method_family"] == RANDOM]
    null = {k: rows["enrichment"].to_numpy() for k, rows in rand.groupby(keys, dropna=False)}
    for idx, row in out.iterrows():
        key = tuple(row[k] for k in keys)
        values = next((v for k, v in null.items() if _same_key(k, key)), None)
        if values is None:
            continue
        b = st.band(values)
        out.at[idx, "random_mean"] = b["mean"]
        out.at[idx, "random_band_low"] = b["band_low"]
        out.at[idx, "random_band_high"] = b["band_high"]
        if row["method_family"] != RANDOM:
            out.at[idx, "p_value"], out.at[idx, "p_value_raw"] = st.empirical_p_value(
                row["enrichment"], values
            )
    return out


def _same_key(a: tuple, b: tuple) -> bool:
    return all((pd.isna(x) and pd.isna(y)) or x == y for x, y in zip(a, b, strict=True))


def class_overlap(
    scores: pd.DataFrame, retentions: Sequence[float], classes: Sequence[str], model: str = ""
) -> pd.DataFrame:
    """Jaccard overlap between the top-r% units (scope layer_type) of each pair of EC classes.

    `scores`: rows with a `label` column (per-class scores; the all-class rows are ignored).
    Empty (with its columns) when no score file has per-class rows. `expected_random` is the
    overlap two unrelated selections of that size have by chance.
    """
    cols = [
        "model",
        "method",
        "layer_type",
        "retention",
        "class_a",
        "class_b",
        "n_selected",
        "jaccard",
        "expected_random",
    ]
    per_class = per_class_rows(scores)
    if "method" in per_class:  # random seeds have no per-class meaning; `expected_random` does
        per_class = per_class[~per_class["method"].str.startswith("random")]
    records = []
    for (method, layer_type), rows in per_class.groupby(["method", "layer_type"], sort=True):
        labels = sorted(rows["label"].unique())
        for r in retentions:
            chosen = {}
            for label in labels:
                sel = select(rows[rows["label"] == label].drop(columns="label"), float(r))
                top = sel[sel["selected"]]
                chosen[label] = set(zip(top["layer"], top["neuron"], strict=True))
            for i, a in enumerate(labels):
                for b in labels[i + 1 :]:
                    k = len(chosen[a])
                    n_units = int((rows["label"] == a).sum())
                    records.append(
                        {
                            "model": model,
                            "method": method,
                            "layer_type": layer_type,
                            "retention": float(r),
                            "class_a": _class_name(a, classes),
                            "class_b": _class_name(b, classes),
                            "n_selected": k,
                            "jaccard": st.jaccard(chosen[a], chosen[b]),
                            "expected_random": st.expected_random_jaccard(k, n_units),
                        }
                    )
    return pd.DataFrame(records, columns=cols)


def _class_name(label: int, classes: Sequence[str]) -> str:
    return str(classes[label]) if 0 <= label < len(classes) else str(label)


# ---------------------------------------------------------------------------------------------
# markdown


def _md_table(header: list[str], rows: list[list[str]], align: list[str] | None = None) -> str:
    """A pipe table; `align` holds "l" or "r" per column (default: first left, rest right)."""
    align = align or ["l"] + ["r"] * (len(header) - 1)
    rule = [":---" if a == "l" else "---:" for a in align]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    return "\n".join([line(header), line(rule), *(line(r) for r in rows)])


def _pct(retention: float) -> str:
    return f"{float(retention):g}%"


def _isnan(value) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _fmt(value: float, digits: int = 3) -> str:
    return MISSING_CELL if _isnan(value) else f"{float(value):.{digits}f}"


def _fmt_g(value: float) -> str:
    return MISSING_CELL if _isnan(value) else f"{float(value):.3g}"


def _fmt_ci(value: float, low: float, high: float) -> str:
    if _isnan(low) or _isnan(high):
        return _fmt(value)
    return f"{_fmt(value)} [{_fmt(low)}, {_fmt(high)}]"


def _fmt_p(p: float) -> str:
    if _isnan(p):
        return MISSING_CELL
    return f"{p:.3f}" if p >= 0.001 else f"{p:.1e}"


def describe_variant(variant: Sequence[str], group_ranking: str | None = None) -> str:
    mode, scope, direction = variant
    what = "keep the top r%, ablate the rest" if direction == "keep" else "ablate the top r%"
    how = "zeroed" if mode == "zero" else "replaced by their training mean"
    where = {
        "layer_type": "ranked over all layers of each layer type",
        "layer": "ranked within each layer",
        "qkv": "query, key and value ranked together",
        "all": "all scored layer types ranked together",
    }.get(scope, scope)
    ranking = f" ({group_ranking} scale across types)" if group_ranking else ""
    return f"{what}; ablated units {how}; {where}{ranking}"


def _seed_note(counts: Iterable[int], level: float) -> str:
    text = f"_Cells: test accuracy [bootstrap {level:.0%} CI over test sequences]."
    counts = sorted(set(int(c) for c in counts))
    if counts:
        n = str(counts[0]) if len(counts) == 1 else f"{counts[0]}–{counts[-1]}"
        plural = "" if counts == [1] else "s"
        text += (
            f" random: mean ± std over {n} seed{plural} [central {level:.0%} band of the "
            "seeds]. p: share of random seeds at or above the method, (k + 1) / (n + 1)."
        )
    return text + "_"


def _target_block(stats: Statistics, model: str, variant, layer_type: str, level: float) -> str:
    table = stats.table
    sub = variant_rows(table[table["model"] == model], variant)
    sub = sub[sub["layer_type"] == layer_type]
    retentions = sorted(sub["retention"].unique(), reverse=True)
    header = ["method", *(_pct(r) for r in retentions)]
    rows = []
    single = sub[sub["method_family"] != RANDOM]
    methods = _method_order(single["method"].unique())
    for method in methods:
        by_r = single[single["method"] == method].set_index("retention")
        rows.append(
            [
                method,
                *(
                    _fmt_ci(
                        by_r.at[r, "accuracy"],
                        by_r.at[r, "accuracy_ci_low"],
                        by_r.at[r, "accuracy_ci_high"],
                    )
                    if r in by_r.index
                    else MISSING_CELL
                    for r in retentions
                ),
            ]
        )
    band = stats.random
    key = (band["model"] == model) & (band["layer_type"] == layer_type)
    for col, value in zip(VARIANT_COLUMNS, variant, strict=True):
        key &= band[col] == value
    lt_band = band[key]
    if not lt_band.empty:
        by_r = lt_band.set_index("retention")
        cells = []
        for r in retentions:
            if r in by_r.index:
                rec = by_r.loc[r]
                cells.append(
                    f"{_fmt(rec['mean'])} ± {_fmt(rec['std'])} "
                    f"[{_fmt(rec['band_low'])}, {_fmt(rec['band_high'])}]"
                )
            else:
                cells.append(MISSING_CELL)
        n_seeds = int(lt_band["n_seeds"].max())
        rows.append([f"{RANDOM} ({n_seeds} seeds)", *cells])
        for method in methods:
            by_r = single[single["method"] == method].set_index("retention")
            rows.append(
                [
                    f"p: {method}",
                    *(
                        _fmt_p(by_r.at[r, "p_value"]) if r in by_r.index else MISSING_CELL
                        for r in retentions
                    ),
                ]
            )
    note = _seed_note(lt_band["n_seeds"] if not lt_band.empty else [], level)
    kept = sub.groupby("retention")["n_kept"].max()
    n_total = sub["n_total"].max()
    rows.append(["neurons kept", *(str(int(kept[r])) for r in retentions)])
    parts = [f"### {layer_type}", ""]
    if pd.notna(n_total):
        parts += [f"{int(n_total)} neurons in this selection pool.", ""]
    parts += [_md_table(header, rows), "", note]
    return "\n".join(parts)


def _auc_section(stats: Statistics, model: str, variant) -> str:
    auc = stats.auc[stats.auc["model"] == model]
    for col, value in zip(VARIANT_COLUMNS, variant, strict=True):
        auc = auc[auc[col] == value]
    if auc.empty or auc["n_retentions"].max() < 2:
        return ""
    has_random = (auc["method"] == RANDOM).any()
    rows = []
    for layer_type in _layer_type_order(auc["layer_type"]):
        sub = auc[auc["layer_type"] == layer_type].set_index("method")
        for method in _method_order(sub.index):
            rec = sub.loc[method]
            if method == RANDOM:
                cell = (
                    f"{_fmt(rec['random_auc_mean'])} ± {_fmt(rec['random_auc_std'])} "
                    f"[{_fmt(rec['random_auc_band_low'])}, {_fmt(rec['random_auc_band_high'])}]"
                )
            else:
                cell = _fmt_ci(rec["auc"], rec["auc_ci_low"], rec["auc_ci_high"])
            rows.append([layer_type, method, cell, _fmt_p(rec["p_value"])])
    return "\n".join(
        [
            "#### Area under accuracy vs retention",
            "",
            "Mean accuracy over the retention levels on a log axis (trapezoids over "
            "log10 r, divided by its range)"
            + ("; p: share of random seeds' AUC at or above." if has_random else "."),
            "",
            _md_table(["layer type", "method", "AUC", "p"], rows, ["l", "l", "r", "r"]),
        ]
    )


# site kinds in display order: planted motifs, annotated sites, then the controls
RECOVERY_KINDS = ("motif", "active_site", "binding_site", "decoy", "distractor")


def _recovery_cells(rec: pd.DataFrame, family: str) -> dict[tuple[str, str], str]:
    """(site kind, map) -> AUROC cell: the method's value, or random's mean ± std [min, max]."""
    cells = {}
    for (kind, value), rows in rec.groupby(["site_kind", "map"], sort=False):
        values = rows["auroc_mean"].dropna()
        if values.empty:
            continue
        if family == RANDOM:
            std = values.std(ddof=1) if len(values) > 1 else 0.0
            cells[kind, value] = (
                f"{_fmt(values.mean())} ± {_fmt(std)} [{_fmt(values.min())}, {_fmt(values.max())}]"
            )
        else:
            cells[kind, value] = _fmt(values.iloc[0])
    return cells


def ground_truth_section(
    stats: Statistics,
    recovery: pd.DataFrame,
    model: str,
    variant: Sequence[str] = ("zero", "layer_type", "keep"),
) -> str:
    """Per selection with a residue map: the accuracy the kept neurons hold (vs the random band)
    beside the AUROC with which their residue maps pick out the known sites (planted motifs,
    annotated sites, decoys). Empty when there is no recovery table."""
    if recovery is None or recovery.empty:
        return ""
    kinds = [k for k in RECOVERY_KINDS if k in set(recovery["site_kind"])]
    kinds += sorted(set(recovery["site_kind"]) - set(kinds))
    present = set(zip(recovery["site_kind"], recovery["map"], strict=True))
    columns = [(k, m) for k in kinds for m in ("activation", "ig") if (k, m) in present]
    evals = variant_rows(stats.table[stats.table["model"] == model], variant)
    band = stats.random[stats.random["model"] == model]
    for col, value in zip(VARIANT_COLUMNS, variant, strict=True):
        band = band[band[col] == value]
    rows = []
    for retention in sorted(recovery["retention"].unique(), reverse=True):
        at_r = recovery[recovery["retention"] == retention]
        for layer_type in _layer_type_order(at_r["layer_type"].unique()):
            sub = at_r[at_r["layer_type"] == layer_type]
            ev = evals[(evals["layer_type"] == layer_type) & (evals["retention"] == retention)]
            families = _method_order(sub["method_family"].unique())
            for family in families:
                if family == RANDOM:
                    b = band[(band["layer_type"] == layer_type) & (band["retention"] == retention)]
                    accuracy = (
                        f"{_fmt(b.iloc[0]['mean'])} [{_fmt(b.iloc[0]['band_low'])}, "
                        f"{_fmt(b.iloc[0]['band_high'])}]"
                        if not b.empty
                        else MISSING_CELL
                    )
                    n = sub.loc[sub["method_family"] == RANDOM, "method"].nunique()
                    name = f"{RANDOM} ({n} seeds)"
                else:
                    e = ev[ev["method"] == family]
                    accuracy = (
                        _fmt_ci(*e.iloc[0][["accuracy", "accuracy_ci_low", "accuracy_ci_high"]])
                        if not e.empty
                        else MISSING_CELL
                    )
                    name = family
                cells = _recovery_cells(sub[sub["method_family"] == family], family)
                rows.append(
                    [
                        layer_type,
                        _pct(retention),
                        name,
                        accuracy,
                        *(cells.get(c, MISSING_CELL) for c in columns),
                    ]
                )
    header = ["layer type", "kept", "method", "accuracy kept [CI]"]
    header += [f"{kind} AUROC ({value} map)" for kind, value in columns]
    return "\n".join(
        [
            f"## {model}: ground truth — do the kept neurons act on the known sites?",
            "",
            "For each selection with residue maps: test accuracy of the model that keeps only "
            f"these neurons ({'/'.join(variant)}; random: mean over seeds [central band]) and the "
            "AUROC with which the selected neurons' residue maps rank the site residues above the "
            "rest of their sequence (mean over test sequences; 0.5 = chance; random: mean ± std "
            "[min, max] over seeds). A method that finds the knowledge neurons keeps accuracy "
            "above the random band and maps onto the motifs (AUROC well above 0.5), not onto the "
            "decoys, which are planted in every class and carry no label. Per-sequence heat "
            "strips: results/residues/; all rows: site_recovery.parquet.",
            "",
            _md_table(header, rows, ["l", "r", "l", "r", *(["r"] * len(columns))]),
        ]
    )


def _published_section(stats: Statistics, model: str) -> str:
    """This run beside Nori et al. 2023, when qkv / zero / keep evaluations exist."""
    table = stats.table
    sub = variant_rows(table[table["model"] == model], ("zero", "qkv", "keep"))
    if sub.empty:
        return ""
    pub = PUBLISHED_NORI2023
    retentions = list(pub["retention"])
    header = ["", "unmasked", *(_pct(r) for r in retentions)]
    unmasked = _unmasked_rows(table[table["model"] == model])
    ours_unmasked = (
        _fmt_ci(*unmasked.iloc[0][["accuracy", "accuracy_ci_low", "accuracy_ci_high"]])
        if not unmasked.empty
        else MISSING_CELL
    )
    band = stats.random
    band = band[
        (band["model"] == model)
        & (band["layer_type"] == "qkv")
        & (band["mode"] == "zero")
        & (band["scope"] == "qkv")
        & (band["direction"] == "keep")
    ].set_index("retention")
    rows = []
    for name in ("random", "activation", "integrated_gradients"):
        rows.append([f"published: {name}", _fmt(pub["unmasked"]), *(_fmt(v) for v in pub[name])])
        cells = []
        for r in retentions:
            if name == RANDOM:
                cells.append(
                    f"{_fmt(band.at[r, 'mean'])} ± {_fmt(band.at[r, 'std'])}"
                    if r in band.index
                    else MISSING_CELL
                )
                continue
            m = sub[(sub["method"] == name) & (sub["retention"] == r)]
            cells.append(
                _fmt_ci(*m.iloc[0][["accuracy", "accuracy_ci_low", "accuracy_ci_high"]])
                if not m.empty
                else MISSING_CELL
            )
        rows.append([f"this run: {name}", ours_unmasked, *cells])
    ranking = sub["group_ranking"].dropna().unique()
    return "\n".join(
        [
            "## Beside the published figures (Nori et al. 2023)",
            "",
            "Rows marked **published** are the figures printed in arXiv 2312.10770 (ESM-2 8M, "
            "EC classes 1-6, query/key/value selected together, zeroed units, one random draw, "
            "selection on the test set); they are copied, not recomputed. Rows marked "
            "**this run** are this pipeline's qkv / zero / keep evaluations"
            + (f" (cross-type ranking: {ranking[0]})" if len(ranking) else "")
            + ", selected on training examples; random is mean ± std over seeds.",
            "",
            _md_table(header, rows),
        ]
    )


def _enrichment_section(by_type: pd.DataFrame, model: str) -> str:
    sub = by_type[by_type["model"] == model] if "model" in by_type else by_type
    if sub.empty:
        return ""
    parts = [
        "## Where knowledge neurons live",
        "",
        "Enrichment = (share of a layer type's units selected) / (share of the pool selected); "
        "1 is what a uniform choice gives. p (hypergeometric): chance of at least this many "
        "selected under a uniform choice of the same size. p vs random: share of random "
        "seeds' enrichment at or above the method's, (k + 1) / (n + 1).",
        "",
    ]
    key_rows = sub[(sub["pool"] == "qkv") & (sub["layer_type"] == "key")]
    if not key_rows.empty:
        rows = []
        for rec in key_rows[key_rows["method_family"] != RANDOM].itertuples(index=False):
            rows.append(
                [
                    rec.method,
                    str(rec.group_ranking),
                    _pct(rec.retention),
                    f"{_fmt(rec.enrichment, 2)}",
                    f"{_fmt(rec.random_mean, 2)} [{_fmt(rec.random_band_low, 2)}, "
                    f"{_fmt(rec.random_band_high, 2)}]",
                    _fmt_p(rec.p_enriched),
                    _fmt_p(rec.p_value),
                ]
            )
        parts += [
            "### Are key projections enriched? (the reference study's claim)",
            "",
            "Key units' enrichment within the query + key + value pool.",
            "",
            _md_table(
                [
                    "method",
                    "ranking",
                    "retention",
                    "key enrichment",
                    "random",
                    "p (hypergeom.)",
                    "p vs random",
                ],
                rows,
                ["l", "l", "r", "r", "r", "r", "r"],
            ),
            "",
        ]
    for pool in ("all", "qkv"):
        p_rows = sub[(sub["pool"] == pool) & (sub["method_family"] != RANDOM)]
        if p_rows.empty:
            continue
        types = _layer_type_order(p_rows["layer_type"].unique())
        rows = []
        for (method, ranking, r), g in p_rows.groupby(
            ["method", "group_ranking", "retention"], sort=False
        ):
            e = g.set_index("layer_type")["enrichment"]
            rows.append(
                [method, str(ranking), _pct(r), *(_fmt(e.get(t, np.nan), 2) for t in types)]
            )
        rows.sort(key=lambda x: (x[0], x[1], -float(x[2][:-1])))
        parts += [
            f"### Enrichment by layer type, pool `{pool}`",
            "",
            _md_table(["method", "ranking", "retention", *types], rows),
            "",
        ]
    return "\n".join(parts).rstrip()


def _per_class_section(stats: Statistics, model: str, variant) -> str:
    sub = variant_rows(stats.table[stats.table["model"] == model], variant)
    if sub.empty:
        return ""
    r_min = sub["retention"].min()
    sub = sub[sub["retention"] == r_min]
    unmasked = _unmasked_rows(stats.table[stats.table["model"] == model])
    classes = list(_per_class(sub.iloc[0]).keys())
    rows = []
    if not unmasked.empty:
        pc = _per_class(unmasked.iloc[0])
        rows.append(["(unmasked)", "", *(_fmt(pc.get(c)) for c in classes)])
    for layer_type in _layer_type_order(sub["layer_type"]):
        lt = sub[sub["layer_type"] == layer_type]
        for method in _method_order(
            lt["method"].where(lt["method_family"] != RANDOM, RANDOM).unique()
        ):
            if method == RANDOM:
                rows_m = lt[lt["method_family"] == RANDOM]
            else:
                rows_m = lt[lt["method"] == method]
            pcs = pd.DataFrame([_per_class(r) for _, r in rows_m.iterrows()])
            rows.append([layer_type, method, *(_fmt(pcs[c].mean()) for c in classes)])
    return "\n".join(
        [
            f"#### Per-class accuracy at {_pct(r_min)} retention",
            "",
            "Recall within each EC class"
            + (" (random: mean over seeds)." if (sub["method_family"] == RANDOM).any() else "."),
            "",
            _md_table(["layer type", "method", *classes], rows, ["l", "l"] + ["r"] * len(classes)),
        ]
    )


def _per_class(row) -> dict:
    raw = row["per_class_accuracy"]
    try:
        out = json.loads(raw) if isinstance(raw, str) else dict(raw)
    except (TypeError, ValueError):
        return {}
    return {k: (np.nan if v is None else float(v)) for k, v in out.items()}


def _overlap_section(overlap: pd.DataFrame, model: str) -> str:
    sub = overlap[overlap["model"] == model] if not overlap.empty else overlap
    if sub.empty:
        return ""
    agg = (
        sub.groupby(["method", "layer_type", "retention"], sort=True)
        .agg(
            pairs=("jaccard", "size"),
            mean=("jaccard", "mean"),
            min=("jaccard", "min"),
            max=("jaccard", "max"),
            expected=("expected_random", "mean"),
        )
        .reset_index()
    )
    rows = [
        [
            rec.method,
            rec.layer_type,
            _pct(rec.retention),
            str(rec.pairs),
            _fmt(rec.mean),
            f"{_fmt(rec.min)}–{_fmt(rec.max)}",
            _fmt(rec.expected),
        ]
        for rec in agg.itertuples(index=False)
    ]
    return "\n".join(
        [
            "## Overlap between the classes' top neurons",
            "",
            "Jaccard overlap of the top-r% units (per layer type) selected from each class's "
            "own scores, over all pairs of classes; chance: the overlap two unrelated "
            "selections of that size have.",
            "",
            _md_table(
                ["method", "layer type", "retention", "pairs", "mean J", "range", "chance"],
                rows,
                ["l", "l", "r", "r", "r", "r", "r"],
            ),
        ]
    )


def _completeness_section(completeness: pd.DataFrame) -> str:
    grouped = completeness.groupby(["model", "layer_type"], sort=False)
    agg = grouped.agg(
        n_layers=("layer", "nunique"),
        n_examples=("n_examples", "max"),
        gap_mean_abs=("gap_mean_abs", "mean"),
        gap_max_abs=("gap_max_abs", "max"),
        delta_mean_abs=("delta_mean_abs", "mean"),
    ).reset_index()
    rows = []
    for model in sorted(agg["model"].unique()):
        sub = agg[agg["model"] == model].set_index("layer_type")
        for layer_type in _layer_type_order(sub.index):
            rec = sub.loc[layer_type]
            rows.append(
                [
                    model,
                    layer_type,
                    str(int(rec["n_layers"])),
                    str(int(rec["n_examples"])) if pd.notna(rec["n_examples"]) else MISSING_CELL,
                    _fmt_g(rec["gap_mean_abs"]),
                    _fmt_g(rec["gap_max_abs"]),
                    _fmt_g(rec["delta_mean_abs"]),
                ]
            )
    header = [
        "model",
        "layer type",
        "layers",
        "examples",
        "mean |gap|",
        "max |gap|",
        "mean |F(1) − F(0)|",
    ]
    return "\n".join(
        [
            "## Integrated-gradients completeness",
            "",
            "gap = sum of a module's IG attributions − (F(1) − F(0)) per example; mean |gap| and "
            "mean |F(1) − F(0)| are averaged over layers, max |gap| is the largest over layers "
            "and examples. A small gap relative to |F(1) − F(0)| means enough integration steps.",
            "",
            _md_table(header, rows, align=["l", "l", "r", "r", "r", "r", "r"]),
        ]
    )


def dataset_markdown(card: dict) -> str:
    """Class counts per split, plus the rows dropped by reason, from the dataset card."""
    totals = card.get("totals") or {}
    counts = card.get("counts") or {}
    classes = list(card.get("classes") or [])
    parts = ["## Dataset", ""]
    if classes and counts:
        header = ["split", *classes, "total"]
        rows = []
        for split, total in totals.items():
            per_class = counts.get(split, {})
            rows.append([split, *(str(per_class.get(c, 0)) for c in classes), str(total)])
        parts.append(_md_table(header, rows))
    else:
        rows = [[split, str(total)] for split, total in totals.items()]
        parts.append(_md_table(["split", "sequences"], rows))
    dropped = card.get("dropped") or {}
    if isinstance(dropped, dict) and dropped:
        rows = [[str(k), str(v)] for k, v in dropped.items()]
        parts += ["", "Rows dropped:", "", _md_table(["reason", "rows"], rows)]
    return "\n".join(parts)


def finetuning_markdown(metrics: dict, history: pd.DataFrame | None = None) -> str:
    """Accuracy and macro-F1 per split, per-class test metrics and the training log."""
    rows = []
    for split in ("train", "val", "test"):
        if split in metrics and isinstance(metrics[split], dict):
            m = metrics[split]
            rows.append([split, _fmt(m.get("accuracy", np.nan)), _fmt(m.get("macro_f1", np.nan))])
    parts = ["## Fine-tuned classifier", "", _md_table(["split", "accuracy", "macro-F1"], rows)]
    per_class = (metrics.get("test") or {}).get("per_class") if isinstance(metrics, dict) else None
    if per_class:
        rows = [
            [c, str(v.get("n", "")), _fmt(v.get("accuracy")), _fmt(v.get("f1"))]
            for c, v in per_class.items()
        ]
        parts += ["", "Test set per class:", "", _md_table(["class", "n", "recall", "F1"], rows)]
    if history is not None and not history.empty:
        cols = list(history.columns)
        rows = [[_cell(v) for v in rec] for rec in history.itertuples(index=False)]
        parts += ["", "Training log:", "", _md_table(cols, rows)]
    return "\n".join(parts)


def _cell(value) -> str:
    if isinstance(value, float | np.floating):
        return _fmt_g(value)
    return str(value)


def markdown_summary(
    table: pd.DataFrame | Statistics,
    completeness: pd.DataFrame | None = None,
    card: dict | None = None,
    metrics: dict | None = None,
    by_type: pd.DataFrame | None = None,
    overlap: pd.DataFrame | None = None,
    level: float = 0.95,
    recovery: pd.DataFrame | None = None,
) -> str:
    """A markdown report: unmasked accuracy, fine-tuning, data, the published comparison, per
    variant the accuracy tables with CIs, p-values and AUC, per-class accuracy, enrichment,
    class overlap, ground truth (site recovery) and IG completeness (each section only when its
    data is given)."""
    stats = table if isinstance(table, Statistics) else add_statistics(table, level=level)
    table = stats.table
    parts = ["# Knowledge neurons: accuracy under neuron masking", ""]

    unmasked = _unmasked_rows(table)
    if not unmasked.empty:
        rows = [
            [
                rec["model"],
                _fmt_ci(rec["accuracy"], rec["accuracy_ci_low"], rec["accuracy_ci_high"]),
                _fmt(rec["macro_f1"]),
                str(int(rec["n"])),
            ]
            for _, rec in unmasked.drop_duplicates("model").iterrows()
        ]
        parts += [
            "## Unmasked model (test set)",
            "",
            _md_table(["model", "accuracy [CI]", "macro-F1", "test examples"], rows),
            "",
        ]
    if metrics:
        parts += [finetuning_markdown(metrics), ""]
    if card:
        parts += [dataset_markdown(card), ""]

    masked = _masked(table)
    for model in sorted(masked["model"].unique()):
        section = _published_section(stats, model)
        if section:
            parts += [section, ""]
        sub = masked[masked["model"] == model]
        for variant in variants(sub):
            v_rows = variant_rows(sub, variant)
            ranking = v_rows["group_ranking"].dropna().unique()
            parts += [
                f"## {model}: {'/'.join(variant)} — test accuracy by retention",
                "",
                describe_variant(variant, ranking[0] if len(ranking) else None) + ".",
                "",
            ]
            for layer_type in _layer_type_order(v_rows["layer_type"]):
                parts += [_target_block(stats, model, variant, layer_type, level), ""]
            for section in (
                _auc_section(stats, model, variant),
                _per_class_section(stats, model, variant),
            ):
                if section:
                    parts += [section, ""]
        if recovery is not None:
            own = recovery[recovery["model"] == model] if "model" in recovery else recovery
            section = ground_truth_section(stats, own, model)
            if section:
                parts += [section, ""]
        if by_type is not None:
            section = _enrichment_section(by_type, model)
            if section:
                parts += [section, ""]
        if overlap is not None:
            section = _overlap_section(overlap, model)
            if section:
                parts += [section, ""]

    if completeness is not None and not completeness.empty:
        parts += [_completeness_section(completeness), ""]
    return "\n".join(parts).rstrip() + "\n"


def markdown_to_html(text: str, title: str = "") -> str:
    """A standalone HTML page from the markdown this module writes (headings, pipe tables,
    paragraphs, _emphasis_, **bold**, `code`), for the Snakemake report, which shows HTML."""

    def inline(s: str) -> str:
        s = html.escape(s, quote=False)
        s = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", s)
        s = re.sub(r"`(.+?)`", r"<code>\1</code>", s)
        return re.sub(r"(?<![\w])_(.+?)_(?![\w])", r"<i>\1</i>", s)

    def cells(line: str) -> list[str]:
        body = line.strip()[1:-1]
        return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", body)]

    out, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            i += 1
        elif line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            out.append(f"<h{level}>{inline(line[level:].strip())}</h{level}>")
            i += 1
        elif line.lstrip().startswith("|"):
            block = []
            while i < len(lines) and lines[i].lstrip().startswith("|"):
                block.append(lines[i])
                i += 1
            header, align = cells(block[0]), cells(block[1]) if len(block) > 1 else []
            right = [a.endswith(":") and not a.startswith(":") for a in align]
            rows = [cells(b) for b in block[2:]]

            def td(tag, j, c, right=right):
                style = ' style="text-align:right"' if j < len(right) and right[j] else ""
                return f"<{tag}{style}>{inline(c)}</{tag}>"

            out.append("<table>")
            out.append("<tr>" + "".join(td("th", j, c) for j, c in enumerate(header)) + "</tr>")
            for row in rows:
                out.append("<tr>" + "".join(td("td", j, c) for j, c in enumerate(row)) + "</tr>")
            out.append("</table>")
        else:
            para = []
            while (
                i < len(lines)
                and lines[i].strip()
                and not lines[i].startswith("#")
                and not lines[i].lstrip().startswith("|")
            ):
                para.append(lines[i].strip())
                i += 1
            out.append(f"<p>{inline(' '.join(para))}</p>")
    style = (
        "body{font-family:sans-serif;max-width:70em;margin:1em auto;line-height:1.4}"
        "table{border-collapse:collapse;margin:0.5em 0}"
        "td,th{border:1px solid #ccc;padding:2px 8px}th{background:#f2f2f2}"
    )
    return (
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{style}</style></head><body>\n" + "\n".join(out) + "\n</body></html>\n"
    )


# ---------------------------------------------------------------------------------------------
# plots


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path_png: str | os.PathLike) -> None:
    from kneurons.io import atomic_path

    plt = _pyplot()
    path_png = Path(path_png)
    try:
        with atomic_path(path_png) as tmp:
            fig.savefig(tmp, format="png", dpi=150)
        with atomic_path(path_png.with_suffix(".svg")) as tmp:
            fig.savefig(tmp, format="svg")
    finally:
        plt.close(fig)


def _chance_level(unmasked: pd.DataFrame) -> float | None:
    if unmasked.empty:
        return None
    per_class = _per_class(unmasked.iloc[0])
    return 1.0 / len(per_class) if per_class else None


def _one_model(table: pd.DataFrame, what: str) -> str:
    models = list(pd.unique(table["model"]))
    if len(models) != 1:
        raise ValueError(f"{what} needs one model's rows, got {models}")
    return models[0]


def _method_colors(methods: Sequence[str]) -> dict[str, tuple]:
    plt = _pyplot()
    palette = [c for i, c in enumerate(plt.get_cmap("tab10").colors) if i != 7]  # 7 is grey
    return {m: palette[i % len(palette)] for i, m in enumerate(methods)}


def plot_accuracy_vs_retention(
    table: pd.DataFrame | Statistics,
    path_png: str | os.PathLike,
    variant: Sequence[str] | None = None,
    level: float = 0.95,
) -> None:
    """Accuracy vs retained neurons for one model and one variant, a panel per target: each
    method with its bootstrap CI, the random mean with ± std and central band, unmasked and
    chance lines. Writes `path_png` and an SVG beside it."""
    from matplotlib.ticker import FixedFormatter, FixedLocator, NullFormatter, NullLocator

    plt = _pyplot()
    stats = table if isinstance(table, Statistics) else add_statistics(table, level=level)
    table = stats.table
    model = _one_model(table, "plot_accuracy_vs_retention")
    found = variants(table)
    if variant is None:
        if len(found) > 1:
            raise ValueError(f"several masking variants present {found}; pass `variant`")
        variant = found[0] if found else tuple(OPTION_DEFAULTS.values())
    masked = variant_rows(table, variant)
    unmasked = _unmasked_rows(table)
    layer_types = _layer_type_order(masked["layer_type"])
    if not layer_types:
        raise ValueError(f"no masked evaluations to plot for model {model!r}, {variant}")
    band = stats.random
    for col, value in zip(VARIANT_COLUMNS, variant, strict=True):
        band = band[band[col] == value]
    unmasked_acc = float(unmasked["accuracy"].iloc[0]) if not unmasked.empty else None
    chance = _chance_level(unmasked)

    methods = _method_order(masked.loc[masked["method_family"] != RANDOM, "method"].unique())
    colors = _method_colors(methods)
    retentions_all = sorted(masked["retention"].unique())
    ncols = min(3, len(layer_types))
    nrows = math.ceil(len(layer_types) / ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(4.4 * ncols, 3.6 * nrows + 0.9), sharey=True, squeeze=False
    )
    handles: dict[str, object] = {}
    for ax, layer_type in zip(axes.flat, layer_types, strict=False):
        sub = masked[masked["layer_type"] == layer_type]
        lt_band = band[band["layer_type"] == layer_type].sort_values("retention")
        if not lt_band.empty:
            x = lt_band["retention"].to_numpy(dtype=float)
            mean = lt_band["mean"].to_numpy(dtype=float)
            std = lt_band["std"].fillna(0.0).to_numpy(dtype=float)
            n = int(lt_band["n_seeds"].max())
            handles[f"random central {level:.0%} band"] = ax.fill_between(
                x, lt_band["band_low"], lt_band["band_high"], color="grey", alpha=0.15, lw=0
            )
            handles["random mean ± std"] = ax.fill_between(
                x, mean - std, mean + std, color="grey", alpha=0.35, linewidth=0
            )
            (line,) = ax.plot(x, mean, color="grey", marker="o", markersize=3, linewidth=1.2)
            handles[f"random (mean, {n} seeds)"] = line
        for i, method in enumerate(methods):
            rows = sub[sub["method"] == method].sort_values("retention")
            if rows.empty:
                continue
            # a small sideways shift (log axis) keeps the methods' error bars apart
            dodge = 10 ** (0.02 * (i - (len(methods) - 1) / 2))
            x = rows["retention"].to_numpy(dtype=float) * dodge
            y = rows["accuracy"].to_numpy(dtype=float)
            lo = rows["accuracy_ci_low"].to_numpy(dtype=float)
            hi = rows["accuracy_ci_high"].to_numpy(dtype=float)
            yerr = None
            if not np.isnan(lo).any():
                yerr = np.vstack([np.clip(y - lo, 0, None), np.clip(hi - y, 0, None)])
            container = ax.errorbar(
                x, y, yerr=yerr, marker="o", color=colors[method], linewidth=1.5, capsize=3
            )
            handles[method] = container.lines[0]
        if unmasked_acc is not None:
            handles["unmasked"] = ax.axhline(unmasked_acc, color="black", linestyle="--", lw=1)
        if chance is not None:
            handles["chance"] = ax.axhline(chance, color="black", linestyle=":", lw=1)
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(FixedLocator(retentions_all))
        ax.xaxis.set_major_formatter(FixedFormatter([f"{r:g}" for r in retentions_all]))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.xaxis.set_minor_formatter(NullFormatter())
        lo, hi = min(retentions_all), max(retentions_all)
        ax.set_xlim(lo / 1.5, hi * 1.5)
        ax.set_ylim(0.0, 1.0)
        ax.set_title(layer_type)
        ax.grid(True, alpha=0.3)
        ax.set_xlabel("selected neurons (% of pool)")
    for ax in axes.flat[len(layer_types) :]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel("test accuracy")
    mode, scope, direction = variant
    verb = "keeping" if direction == "keep" else "removing"
    fig.suptitle(
        f"{model}: accuracy when {verb} the top neurons ({mode} ablation, scope {scope})\n"
        f"error bars: bootstrap {level:.0%} CI over test sequences"
    )
    labels = sorted(
        handles,
        key=lambda k: (
            0 if k in methods else 1 if k.startswith("random (") else 2 if "random" in k else 3
        ),
    )
    fig.legend(
        [handles[k] for k in labels],
        labels,
        loc="lower center",
        ncol=min(4, max(1, len(handles))),
        frameon=False,
    )
    legend_rows = math.ceil(len(handles) / 4)
    fig.tight_layout(rect=(0, 0.25 * legend_rows / (3.6 * nrows + 0.9), 1, 1))
    _save(fig, path_png)


def plot_selection_heatmap(
    by_layer: pd.DataFrame,
    path_png: str | os.PathLike,
    method: str,
    scope: str,
    group_ranking: str | None = None,
) -> None:
    """Enrichment of selected neurons by layer (rows) x layer type (columns), a panel per
    retention, for one method and scope (the reference study's figures 3-5). Cells show the
    number selected; colour is enrichment over a uniform choice (1 = white)."""
    from matplotlib.colors import TwoSlopeNorm

    plt = _pyplot()
    rows = by_layer[by_layer["method"] == method]
    if scope == "layer_type":
        rows = rows[rows["pool"] == rows["layer_type"]]
    else:
        rows = rows[rows["pool"] == scope]
        ranking = group_ranking or next(iter(rows["group_ranking"].dropna()), None)
        rows = rows[rows["group_ranking"] == ranking]
    if rows.empty:
        raise ValueError(f"no selection for method {method!r}, scope {scope!r}")
    model = _one_model(rows, "plot_selection_heatmap")
    retentions = sorted(rows["retention"].unique(), reverse=True)
    types = _layer_type_order(rows["layer_type"].unique())
    layers = sorted(rows["layer"].unique())
    vmax = max(2.0, float(rows["enrichment"].max()))
    norm = TwoSlopeNorm(vmin=0.0, vcenter=1.0, vmax=vmax)
    ncols = min(3, len(retentions))
    nrows = math.ceil(len(retentions) / ncols)
    width = max(3.2, 0.9 * len(types) + 1.6)
    height = max(2.6, 0.42 * len(layers) + 1.4)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(width * ncols + 1.2, height * nrows + 0.6), squeeze=False
    )
    image = None
    for ax, r in zip(axes.flat, retentions, strict=False):
        sub = rows[rows["retention"] == r]
        grid = sub.pivot_table(index="layer", columns="layer_type", values="enrichment")
        grid = grid.reindex(index=layers, columns=types)
        counts = sub.pivot_table(index="layer", columns="layer_type", values="n_selected")
        counts = counts.reindex(index=layers, columns=types)
        image = ax.imshow(grid.to_numpy(dtype=float), cmap="RdBu_r", norm=norm, aspect="auto")
        for i in range(len(layers)):
            for j in range(len(types)):
                c = counts.iat[i, j]
                if pd.notna(c):
                    ax.text(j, i, str(int(c)), ha="center", va="center", fontsize=7)
        ax.set_xticks(range(len(types)), types, rotation=30, ha="right")
        ax.set_yticks(range(len(layers)), [str(layer) for layer in layers])
        ax.set_xlabel("layer type")
        ax.set_ylabel("layer")
        ax.set_title(f"top {float(r):g}%")
    for ax in axes.flat[len(retentions) :]:
        ax.set_visible(False)
    where = "within each layer type" if scope == "layer_type" else f"pool {scope}, {ranking}"
    fig.suptitle(f"{model}, {method}: where the selected neurons are ({where})")
    fig.tight_layout(rect=(0, 0, 0.86, 0.95))
    cax = fig.add_axes((0.88, 0.15, 0.015, 0.7))
    fig.colorbar(image, cax=cax, label="enrichment over uniform")
    _save(fig, path_png)


def plot_type_enrichment(by_type: pd.DataFrame, path_png: str | os.PathLike) -> None:
    """Bars: enrichment of each layer type in a pooled selection, per method, a panel per
    (pool, ranking) and retention; random seeds as mean with their central band."""
    plt = _pyplot()
    if by_type.empty:
        fig, ax = plt.subplots(figsize=(6, 2))
        ax.axis("off")
        ax.text(0.5, 0.5, "only one layer type scored: no cross-type enrichment", ha="center")
        _save(fig, path_png)
        return
    model = _one_model(by_type, "plot_type_enrichment")
    panels = (
        by_type[["pool", "group_ranking"]].drop_duplicates().sort_values(["pool", "group_ranking"])
    )
    retentions = sorted(by_type["retention"].unique(), reverse=True)
    methods = _method_order(
        by_type["method"].where(by_type["method_family"] != RANDOM, RANDOM).unique()
    )
    singles = [m for m in methods if m != RANDOM]
    colors = _method_colors(singles)
    nrows, ncols = len(panels), len(retentions)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(3.6 * ncols + 0.5, 3.0 * nrows + 1.0), squeeze=False
    )
    handles = {}
    for i, (pool, ranking) in enumerate(panels.itertuples(index=False)):
        pr = by_type[(by_type["pool"] == pool) & (by_type["group_ranking"] == ranking)]
        types = _layer_type_order(pr["layer_type"].unique())
        x = np.arange(len(types))
        width = 0.8 / max(1, len(methods))
        for j, r in enumerate(retentions):
            ax = axes[i, j]
            sub = pr[pr["retention"] == r]
            for k, method in enumerate(methods):
                offset = (k - (len(methods) - 1) / 2) * width
                if method == RANDOM:
                    rand = sub[sub["method_family"] == RANDOM]
                    if rand.empty:
                        continue
                    g = rand.groupby("layer_type")["enrichment"]
                    mean = g.mean().reindex(types).to_numpy()
                    lo = g.quantile(0.025).reindex(types).to_numpy()
                    hi = g.quantile(0.975).reindex(types).to_numpy()
                    bar = ax.bar(
                        x + offset,
                        mean,
                        width,
                        color="lightgrey",
                        yerr=np.vstack([mean - lo, hi - mean]),
                        capsize=2,
                    )
                    handles["random (mean, 95% band of seeds)"] = bar
                else:
                    e = sub[sub["method"] == method].set_index("layer_type")["enrichment"]
                    bar = ax.bar(
                        x + offset, e.reindex(types).to_numpy(), width, color=colors[method]
                    )
                    handles[method] = bar
            ax.axhline(1.0, color="black", lw=0.8, linestyle="--")
            ax.set_xticks(x, types, rotation=30, ha="right")
            ax.set_title(f"pool {pool} ({ranking}), top {float(r):g}%", fontsize=9)
            if j == 0:
                ax.set_ylabel("enrichment over uniform")
            ax.grid(True, axis="y", alpha=0.3)
    fig.suptitle(f"{model}: which layer types hold the selected neurons")
    fig.legend(list(handles.values()), list(handles), loc="lower center", ncol=4, frameon=False)
    fig.tight_layout(rect=(0, 0.6 / (3.0 * nrows + 1.0), 1, 0.95))
    _save(fig, path_png)


def plot_per_class_accuracy(
    table: pd.DataFrame,
    path_png: str | os.PathLike,
    variant: Sequence[str],
) -> None:
    """Per-class test accuracy (recall) of masked models: a heatmap per target, rows
    method @ retention (random: mean over seeds), columns EC classes, the unmasked model on top."""
    plt = _pyplot()
    model = _one_model(table, "plot_per_class_accuracy")
    masked = variant_rows(table, variant)
    unmasked = _unmasked_rows(table)
    targets = _layer_type_order(masked["layer_type"])
    if not targets:
        raise ValueError(f"no masked evaluations to plot for {model!r}, {variant}")
    classes = list(_per_class(masked.iloc[0]).keys())
    panels = []
    for target in targets:
        sub = masked[masked["layer_type"] == target]
        labels, values = [], []
        if not unmasked.empty:
            pc = _per_class(unmasked.iloc[0])
            labels.append("unmasked")
            values.append([pc.get(c, np.nan) for c in classes])
        fam = sub["method"].where(sub["method_family"] != RANDOM, RANDOM)
        for method in _method_order(fam.unique()):
            for r in sorted(sub["retention"].unique(), reverse=True):
                rows = sub[(fam == method) & (sub["retention"] == r)]
                pcs = pd.DataFrame([_per_class(x) for _, x in rows.iterrows()])
                labels.append(f"{method} @ {float(r):g}%")
                values.append([pcs[c].mean() if c in pcs else np.nan for c in classes])
        panels.append((target, labels, np.asarray(values, dtype=float)))
    ncols = min(3, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    n_rows_max = max(len(p[1]) for p in panels)
    fig, axes = plt.subplots(
        nrows,
        ncols,
        figsize=(ncols * (0.6 * len(classes) + 3.4), nrows * (0.3 * n_rows_max + 1.4) + 0.6),
        squeeze=False,
    )
    image = None
    for ax, (target, labels, values) in zip(axes.flat, panels, strict=False):
        image = ax.imshow(values, cmap="viridis", vmin=0, vmax=1, aspect="auto")
        for i in range(values.shape[0]):
            for j in range(values.shape[1]):
                v = values[i, j]
                if not np.isnan(v):
                    ax.text(
                        j,
                        i,
                        f"{v:.2f}",
                        ha="center",
                        va="center",
                        fontsize=6,
                        color="white" if v < 0.5 else "black",
                    )
        ax.set_xticks(range(len(classes)), [f"EC {c}" for c in classes], rotation=30)
        ax.set_yticks(range(len(labels)), labels, fontsize=7)
        ax.set_title(target)
        ax.set_xlabel("true class")
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    fig.suptitle(f"{model}: per-class test accuracy under masking ({'/'.join(variant)})")
    fig.tight_layout(rect=(0, 0, 0.92, 0.95))
    cax = fig.add_axes((0.94, 0.15, 0.012, 0.7))
    fig.colorbar(image, cax=cax, label="recall")
    _save(fig, path_png)


def plot_site_recovery(recovery: pd.DataFrame, path_png: str | os.PathLike) -> None:
    """Bars: site AUROC of each method's residue maps, a panel per (site kind, map) and retention,
    a bar group per layer type; random seeds as mean with min-max whiskers; 0.5 dashed."""
    plt = _pyplot()
    if recovery is None or recovery.empty:
        fig, ax = plt.subplots(figsize=(6, 2))
        ax.axis("off")
        ax.text(0.5, 0.5, "no site annotations: nothing to recover", ha="center")
        _save(fig, path_png)
        return
    kinds = [k for k in RECOVERY_KINDS if k in set(recovery["site_kind"])]
    kinds += sorted(set(recovery["site_kind"]) - set(kinds))
    panels = [(k, m) for k in kinds for m in ("activation", "ig") if m in set(recovery["map"])]
    retentions = sorted(recovery["retention"].unique(), reverse=True)
    methods = _method_order(recovery["method_family"].unique())
    colors = _method_colors([m for m in methods if m != RANDOM])
    nrows, ncols = len(panels), len(retentions)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(1.2 + 3.8 * ncols, 0.8 + 2.6 * nrows), squeeze=False
    )
    width = 0.8 / max(1, len(methods))
    for i, (kind, value) in enumerate(panels):
        for j, r in enumerate(retentions):
            ax = axes[i, j]
            sub = recovery[
                (recovery["site_kind"] == kind)
                & (recovery["map"] == value)
                & (recovery["retention"] == r)
            ]
            types = _layer_type_order(sub["layer_type"].unique())
            x = np.arange(len(types))
            for k, family in enumerate(methods):
                offset = (k - (len(methods) - 1) / 2) * width
                g = sub[sub["method_family"] == family].groupby("layer_type")["auroc_mean"]
                mean = g.mean().reindex(types).to_numpy()
                if family == RANDOM:
                    lo = mean - g.min().reindex(types).to_numpy()
                    hi = g.max().reindex(types).to_numpy() - mean
                    ax.bar(x + offset, mean, width, color="0.75", label="random (min-max)",
                           yerr=np.vstack([lo, hi]), capsize=2, ecolor="0.35")  # fmt: skip
                else:
                    ax.bar(x + offset, mean, width, color=colors[family], label=family)
            ax.axhline(0.5, color="0.3", linestyle="--", linewidth=0.8)
            ax.set_ylim(0, 1)
            ax.set_xticks(x, types, fontsize=8)
            ax.set_title(f"{kind}, {value} map, keep {_pct(r)}", fontsize=9)
            if j == 0:
                ax.set_ylabel("site AUROC")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8, frameon=False)
    fig.suptitle("Do the kept neurons act on the known sites? (0.5 = chance)", fontsize=10)
    fig.tight_layout(rect=(0, 0.06, 1, 0.96))
    _save(fig, path_png)
