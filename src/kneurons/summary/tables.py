"""The evaluation rows of one model as tables: schema check and order (`collect`), the masking
variants and each variant's rows, per-class accuracy. The random band over seeds, bootstrap
intervals, the tests against random and the area under accuracy vs retention are
`kneurons.summary.baseline`.

One masked evaluation is one row (model, method, target, mode, scope, direction, retention ->
test accuracy, with the per-sequence `correct` vector; `vocab.EVAL_KEY_COLUMNS`). A summary job
has exactly one model.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from kneurons.vocab import DIRECTIONS, MODES, NONE, SCOPES, UNMASKED, unit_kind

# Below these, a test set (or one class of it) is flagged as too small to read much into.
MIN_TEST_SEQUENCES = 30
MIN_CLASS_TEST_SEQUENCES = 10

REQUIRED_COLUMNS = (
    "model",
    "method",
    "method_family",
    "seed",
    "target",
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
CELL_COLUMNS = ("model", "target", *VARIANT_COLUMNS, "retention")


def one_model(table: pd.DataFrame, what: str = "a summary") -> str:
    """The model of `table`'s rows; ValueError unless there is exactly one."""
    models = list(pd.unique(table["model"]))
    if len(models) != 1:
        raise ValueError(f"{what} needs one model's rows, got {models}")
    return models[0]


def collect(rows: Iterable[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate one model's per-evaluation rows into one table, validated and in order.

    Missing option columns get their defaults (mode zero, scope layer_type, direction keep;
    `none` for the unmasked row), `n_selected` defaults to `n_kept`. Sorted with the unmasked
    row first, then by mode, scope, direction, target, method family, method and retention
    (descending). Raises ValueError if there are no rows, a required column is missing or the
    rows are of more than one model.
    """
    frames = [frame for frame in rows if frame is not None]
    if not frames:
        raise ValueError("no evaluation rows to collect")
    table = pd.concat(frames, ignore_index=True)
    missing = [col for col in REQUIRED_COLUMNS if col not in table.columns]
    if missing:
        hint = " (column `layer_type` is now `target`)" if "layer_type" in table.columns else ""
        raise ValueError(f"evaluation rows lack required column(s): {', '.join(missing)}{hint}")
    one_model(table, "collect")
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
        ["_order", *VARIANT_COLUMNS, "target", "method_family", "method", "retention"],
        ascending=[True, True, True, True, True, True, True, False],
        kind="stable",
    )
    return table.drop(columns="_order").reset_index(drop=True)


def masked_rows(table: pd.DataFrame) -> pd.DataFrame:
    return table[table["method_family"] != UNMASKED]


def unmasked_rows(table: pd.DataFrame) -> pd.DataFrame:
    return table[table["method_family"] == UNMASKED]


def variants(table: pd.DataFrame) -> list[tuple[str, str, str]]:
    """The (mode, scope, direction) combinations present, in the vocabulary's order."""
    masked = masked_rows(table)
    found = set(zip(*(masked[c] for c in VARIANT_COLUMNS), strict=True))
    orders = (MODES, SCOPES, DIRECTIONS)

    def key(variant):
        return tuple(
            (ref.index(x) if x in ref else len(ref), x)
            for x, ref in zip(variant, orders, strict=True)
        )

    return sorted(found, key=key)


def of_variant(frame: pd.DataFrame, variant: Sequence[str]) -> pd.DataFrame:
    """The rows of `frame` (evaluations, random band, AUC) of one (mode, scope, direction)."""
    keep = np.ones(len(frame), dtype=bool)
    for col, value in zip(VARIANT_COLUMNS, variant, strict=True):
        keep &= (frame[col] == value).to_numpy()
    return frame[keep]


def variant_rows(table: pd.DataFrame, variant: Sequence[str]) -> pd.DataFrame:
    """The masked evaluation rows of one (mode, scope, direction)."""
    return of_variant(masked_rows(table), variant)


def per_class(row) -> dict:
    """An evaluation row's per-class accuracy (class name -> recall; {} when unreadable)."""
    raw = row["per_class_accuracy"]
    try:
        out = json.loads(raw) if isinstance(raw, str) else dict(raw)
    except (TypeError, ValueError):
        return {}
    return {k: (np.nan if v is None else float(v)) for k, v in out.items()}


def add_unit_kind(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with a `unit_kind` column (`vocab.unit_kind`: "neuron" or "latent") of its units:
    of `layer_type` where the table has one (the units counted), else of `target` (what was
    masked; the groups qkv and all are neuron groups); null for the unmasked row."""
    column = "layer_type" if "layer_type" in frame.columns else "target"
    out = frame.copy()
    if column not in out.columns:
        return out
    kinds = out[column].map(lambda name: unit_kind(str(name)))
    if "method_family" in out.columns:
        kinds = kinds.where(out["method_family"] != UNMASKED, None)
    out["unit_kind"] = kinds.astype(object)
    return out
