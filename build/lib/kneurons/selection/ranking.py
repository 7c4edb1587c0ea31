"""Which units are selected: the top r% of a pool of units by score.

Vocabulary (`kneurons.vocab`; README, "Masking options"):
- pool: the units ranked together. Scope `layer_type` ranks all layers of one layer type;
  `layer` ranks each (layer type, layer) on its own; a group (`qkv`, `all`) ranks several layer
  types together after putting their scores on one scale (`group_ranking`).
- selected: the top ceil(r% x pool size) units of the pool, the "knowledge neurons".

A selection is computed once per (model, scope, method, target) as a ranking
(`vocab.SELECTION_FILE`, rule `select_units`): every unit's `rank` within its pool
(0 = best; ties: layer type order, then lower layer, then lower neuron) and the `pool_size`.
The units selected at retention r are then `rank < num_kept(r, pool_size)` (`selected`), for
any r, so evaluation, residue maps and the summary read one artifact instead of recomputing it.
Group scopes hold one ranking per group ranking (column `group_ranking`); scope `layer_type`
also ranks each class's own scores (rows with `label` = class index; -1 = all classes).
Imports no torch.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from kneurons.io import read_parquet_metadata, write_parquet
from kneurons.vocab import ALL_CLASSES, GROUP_RANKINGS, GROUPS, LAYER_TYPES, SCOPES

RANKING_COLUMNS = (
    "layer_type",
    "layer",
    "neuron",
    "label",
    "group_ranking",
    "score",
    "rank",
    "pool_size",
)


def num_kept(retention: float, total: int) -> int:
    """ceil(r/100 * N), never more than N; r is in (0, 100]."""
    if not 0 < retention <= 100:
        raise ValueError(f"retention must be in (0, 100], got {retention}")
    # round first so that e.g. 10% of 320 is 32, not 33 from 32.000000000000004
    return min(total, math.ceil(round(retention / 100 * total, 9)))


def _type_order(layer_types: pd.Series) -> pd.Series:
    order = {lt: i for i, lt in enumerate(LAYER_TYPES)}
    return layer_types.map(lambda lt: order.get(lt, len(order)))


def _ranks(frame: pd.DataFrame, column: str) -> np.ndarray:
    """Rank of every row by `column` (0 = highest); ties by layer type, layer, neuron."""
    if frame[column].isna().any():
        raise ValueError("scores contain NaN; cannot rank neurons")
    keys = pd.DataFrame(
        {
            "value": frame[column].to_numpy(),
            "type": _type_order(frame["layer_type"]).to_numpy() if "layer_type" in frame else 0,
            "layer": frame["layer"].to_numpy(),
            "neuron": frame["neuron"].to_numpy(),
        }
    )
    order = keys.sort_values(
        ["value", "type", "layer", "neuron"],
        ascending=[False, True, True, True],
        kind="mergesort",
    ).index.to_numpy()
    ranks = np.empty(len(frame), dtype=np.int64)
    ranks[order] = np.arange(len(frame), dtype=np.int64)
    return ranks


def group_scale(scores: pd.DataFrame, ranking: str) -> pd.Series:
    """Scores of several layer types on one scale, so that they can be ranked together.

    zscore: (score - mean) / std within the layer type, over all its layers (std 0 -> 0), so a
    type wins units where its upper tail stands out from its own spread; percentile: the rank
    within the layer type as a fraction (1 = best), so every type gets r% (no cross-type
    claim is possible); raw: the scores as they are (IG magnitudes differ across types, see
    docs/design.md, so raw favours the types with large attributions).
    """
    if ranking == "raw":
        return scores["score"].astype(float)
    by_type = scores.groupby("layer_type", sort=False)["score"]
    if ranking == "zscore":
        mean = by_type.transform("mean")
        std = by_type.transform(lambda s: s.std(ddof=0))
        z = (scores["score"] - mean) / std.where(std > 0)
        return z.fillna(0.0).astype(float)
    if ranking == "percentile":
        out = pd.Series(np.nan, index=scores.index)
        for _, rows in scores.groupby("layer_type", sort=False):
            order = rows.sort_values(
                ["score", "layer", "neuron"], ascending=[False, True, True], kind="mergesort"
            ).index
            out[order] = 1.0 - np.arange(len(order)) / len(order)
        return out
    choices = ", ".join(GROUP_RANKINGS)
    raise ValueError(f"unknown group ranking {ranking!r}; choose one of {choices}")


def rank_pool(scores: pd.DataFrame, scope: str, group_ranking: str = "zscore") -> pd.DataFrame:
    """`scores` (layer_type, layer, neuron, score) with each unit's `rank` and `pool_size`.

    `scores` holds every unit that takes part: one layer type for scopes layer_type and layer;
    the group's layer types for a group scope.
    """
    out = scores.reset_index(drop=True).copy()
    types = list(pd.unique(out["layer_type"]))
    if scope == "layer_type":
        if len(types) != 1:
            raise ValueError(f"scope layer_type ranks one layer type, got {types}")
        out["rank"] = _ranks(out, "score")
        out["pool_size"] = len(out)
    elif scope == "layer":
        out["rank"] = np.int64(0)
        out["pool_size"] = np.int64(0)
        for _, rows in out.groupby(["layer_type", "layer"], sort=False):
            out.loc[rows.index, "rank"] = _ranks(rows.reset_index(drop=True), "score")
            out.loc[rows.index, "pool_size"] = len(rows)
    elif scope in GROUPS:
        scaled = out.assign(score=group_scale(out, group_ranking))
        out["rank"] = _ranks(scaled, "score")
        out["pool_size"] = len(out)
    else:
        raise ValueError(f"unknown scope {scope!r}; choose one of {', '.join(SCOPES)}")
    out["rank"] = out["rank"].astype(np.int64)
    out["pool_size"] = out["pool_size"].astype(np.int64)
    return out


def selected(ranking: pd.DataFrame, retention: float) -> np.ndarray:
    """Boolean per row of a ranking: is the unit among the top r% of its pool?"""
    sizes = ranking["pool_size"].to_numpy()
    kept = np.array([num_kept(retention, int(n)) for n in np.unique(sizes)])
    limit = dict(zip(np.unique(sizes).tolist(), kept.tolist(), strict=True))
    return ranking["rank"].to_numpy() < np.vectorize(limit.get, otypes=[np.int64])(sizes)


def select(
    scores: pd.DataFrame,
    retention: float,
    scope: str = "layer_type",
    group_ranking: str = "zscore",
) -> pd.DataFrame:
    """`scores` with a boolean column `selected`: the top r% units of the pool(s) of `scope`."""
    ranked = rank_pool(scores, scope, group_ranking)
    ranked["selected"] = selected(ranked, retention)
    return ranked.drop(columns=["rank", "pool_size"])


def _is_all_class(label: pd.Series) -> pd.Series:
    return label.isna() | (pd.to_numeric(label, errors="coerce") == ALL_CLASSES)


def all_class_rows(scores: pd.DataFrame) -> pd.DataFrame:
    """The all-class rows of a score file (label -1; files without `label` are all-class)."""
    if "label" not in scores.columns:
        return scores
    return scores[_is_all_class(scores["label"])].drop(columns="label").reset_index(drop=True)


def per_class_rows(scores: pd.DataFrame) -> pd.DataFrame:
    """The per-class rows (column `label` = class index); empty when the file has none."""
    if "label" not in scores.columns:
        return scores.iloc[0:0].assign(label=pd.Series(dtype="int64"))
    rows = scores[~_is_all_class(scores["label"])].copy()
    rows["label"] = rows["label"].astype("int64")
    return rows.reset_index(drop=True)


def ranking_table(scores: pd.DataFrame, scope: str) -> pd.DataFrame:
    """The selection file of one (scope, method, target): `RANKING_COLUMNS`, one row per unit
    (per group ranking for group scopes; plus one row per class for scope layer_type)."""
    columns = ["layer_type", "layer", "neuron", "score"]
    everyone = all_class_rows(scores).loc[:, columns]
    parts = []
    if scope in GROUPS:
        for ranking in GROUP_RANKINGS:
            ranked = rank_pool(everyone, scope, ranking)
            parts.append(ranked.assign(label=ALL_CLASSES, group_ranking=ranking))
    else:
        parts.append(rank_pool(everyone, scope).assign(label=ALL_CLASSES, group_ranking=None))
        if scope == "layer_type":
            for label, rows in per_class_rows(scores).groupby("label", sort=True):
                ranked = rank_pool(rows.loc[:, columns], scope)
                parts.append(ranked.assign(label=int(label), group_ranking=None))
    table = pd.concat(parts, ignore_index=True).loc[:, list(RANKING_COLUMNS)]
    table["label"] = table["label"].astype(np.int64)
    table["group_ranking"] = table["group_ranking"].astype("string")
    return table


def pick(
    ranking: pd.DataFrame, label: int = ALL_CLASSES, group_ranking: str | None = None
) -> pd.DataFrame:
    """The rows of one ranking in a selection file: all classes (or one class's) and, for group
    scopes, one group ranking."""
    rows = ranking[ranking["label"] == label]
    if rows["group_ranking"].notna().any():
        if group_ranking is None:
            raise ValueError("a group scope's selection needs a group ranking")
        rows = rows[rows["group_ranking"] == group_ranking]
    if rows.empty:
        raise ValueError(f"no ranking for label {label} and group ranking {group_ranking!r}")
    return rows.reset_index(drop=True)


def read_scores(paths) -> pd.DataFrame:
    """The rows of several score files, in the order given."""
    return pd.concat([pd.read_parquet(path) for path in paths], ignore_index=True)


def write_selection(score_paths, out_path, log_path, scope: str, method: str, target: str):
    """Job body of rule select_units: the ranking of one (scope, method, target)."""
    table = ranking_table(read_scores(score_paths), scope)
    metadata = {"scope": scope, "method": method, "target": target}
    write_parquet(out_path, table, metadata)
    pools = table.loc[table["label"] == ALL_CLASSES, "pool_size"]
    with open(log_path, "w") as fh:
        fh.write(f"ranked {int(pools.count())} units in pools of {sorted(set(pools))}\n")


def read_selections(paths) -> pd.DataFrame:
    """Several selection files as one table: `scope`, `method`, `target` (from each file's
    metadata), then `RANKING_COLUMNS`."""
    frames = []
    for path in paths:
        meta = read_parquet_metadata(path)
        frame = pd.read_parquet(path)
        for column in ("target", "method", "scope"):
            frame.insert(0, column, meta[column])
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)
