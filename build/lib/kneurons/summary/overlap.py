"""Which units are selected, from the selections alone: where the top r% units lie (density
and enrichment by layer type and layer, against the random seeds' selections) and how much the
classes' own top units overlap. Pure functions of the selection files' rankings
(`kneurons.selection.ranking.read_selections`); which units are selected at r is
`kneurons.selection.ranking.selected`, the same call the evaluations use.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from kneurons import statistics as st
from kneurons.selection.ranking import pick, selected
from kneurons.vocab import (
    ALL_CLASSES,
    RANDOM,
    TARGET_ORDER,
    is_group,
    is_random,
    order_of,
    parse_method,
)

KEY_COLUMNS = ["model", "method", "method_family", "seed", "target", "group_ranking", "retention"]
STATS_COLUMNS = ["n_units", "n_selected", "density", "enrichment", "p_enriched"]
NULL_COLUMNS = ["random_mean", "random_band_low", "random_band_high", "p_value", "p_value_raw"]
OVERLAP_COLUMNS = [
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


def enrichment_tables(
    selections: pd.DataFrame,
    retentions: Sequence[float],
    rankings: Sequence[str] = ("zscore",),
    model: str = "",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Density and enrichment of the top-r% units, by (layer type, layer) and by layer type.

    `selections`: selection files (`read_selections`) of every method and target; the
    all-class rankings are used, group targets once per group ranking in `rankings`.
    Returns (by_layer, by_type), keyed by `KEY_COLUMNS` then the unit's `layer_type` (and
    `layer`). by_type holds group targets only, with the random seeds' enrichment as the null:
    random_mean, random_band_low/high and the empirical p-value (+1 correction) of a method's
    enrichment being at or below the random seeds'.
    """
    everyone = selections[selections["label"] == ALL_CLASSES]
    targets = order_of(everyone["target"].unique(), TARGET_ORDER)
    by_layer, by_type = [], []
    for method in sorted(everyone["method"].unique()):
        family, seed = parse_method(method)
        for target in targets:
            rows = everyone[(everyone["method"] == method) & (everyone["target"] == target)]
            if rows.empty:
                continue
            group = is_group(rows["scope"].iloc[0])
            for ranking in rankings if group else (None,):
                units = pick(rows, group_ranking=ranking)
                for r in retentions:
                    sel = units.assign(selected=selected(units, float(r)))
                    base = {
                        "model": model,
                        "method": method,
                        "method_family": family,
                        "seed": seed,
                        "target": target,
                        "group_ranking": ranking,
                        "retention": float(r),
                    }
                    by_layer.append(st.enrichment(sel, ["layer_type", "layer"]).assign(**base))
                    if group:
                        by_type.append(st.enrichment(sel, ["layer_type"]).assign(**base))
    layer_frame = _finish(by_layer, KEY_COLUMNS + ["layer_type", "layer"])
    type_frame = _finish(by_type, KEY_COLUMNS + ["layer_type"])
    return layer_frame, _add_random_null(type_frame)


def _finish(frames: list[pd.DataFrame], first: list[str]) -> pd.DataFrame:
    if not frames:
        return pd.DataFrame(columns=first + STATS_COLUMNS)
    frame = pd.concat(frames, ignore_index=True)
    frame["seed"] = frame["seed"].astype("Int64")
    frame["group_ranking"] = frame["group_ranking"].astype("string")
    return frame.loc[:, first + STATS_COLUMNS]


def _add_random_null(by_type: pd.DataFrame) -> pd.DataFrame:
    out = by_type.copy()
    for col in NULL_COLUMNS:
        out[col] = np.nan
    if out.empty:
        return out
    keys = ["target", "group_ranking", "retention", "layer_type"]
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
    selections: pd.DataFrame, retentions: Sequence[float], classes: Sequence[str], model: str = ""
) -> pd.DataFrame:
    """Jaccard overlap between the top-r% units (scope layer_type) of each pair of classes.

    `selections`: selection files (`read_selections`); the per-class rankings of scope
    layer_type are used. Empty (with its columns) when the scores had no per-class rows.
    `expected_random` is the overlap two unrelated selections of that size have by chance.
    """
    rows = selections[
        (selections["scope"] == "layer_type")
        & (selections["label"] != ALL_CLASSES)
        & ~selections["method"].map(is_random).astype(bool)  # no per-class meaning
    ]
    records = []
    for (method, layer_type), units in rows.groupby(["method", "target"], sort=True):
        labels = sorted(units["label"].unique())
        for r in retentions:
            chosen = {}
            for label in labels:
                ranking = units[units["label"] == label]
                top = ranking[selected(ranking, float(r))]
                chosen[label] = set(zip(top["layer"], top["neuron"], strict=True))
            for i, a in enumerate(labels):
                for b in labels[i + 1 :]:
                    k = len(chosen[a])
                    n_units = int((units["label"] == a).sum())
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
    return pd.DataFrame(records, columns=OVERLAP_COLUMNS)


def _class_name(label: int, classes: Sequence[str]) -> str:
    return str(classes[label]) if 0 <= label < len(classes) else str(label)
