"""The class-specific evaluations (CLASS_EVAL_FILE rows, `kneurons.classes.rankings`) read as
arrays and checked against the test set (`check_evals`; what `kneurons.classes.stats` tests),
and the per-evaluated-class table behind the figure (`effects_table`,
`kneurons.classes.figures`): for every evaluation row and every evaluated class e, what the
change does to e's sequences, raw and corrected by the random units of the same cell.

Imports no torch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from kneurons.classes.rankings import (
    CLASS_KEY_COLUMNS,
    GROUP,
    PROBABILITY_COLUMNS,
    SEQUENCE_COLUMNS,
    VECTOR_COLUMNS,
)
from kneurons.vocab import RANDOM

LOGODDS_EPS = 1e-6  # probabilities are clipped to [eps, 1 - eps] before taking log-odds


# ---------------------------------------------------------------------------------------------
# Reading the evaluations


def matrix(evals: pd.DataFrame, column: str) -> np.ndarray:
    """(rows, values) from a per-row vector column; a ValueError when the rows differ in length."""
    values = [np.asarray(v, dtype=np.float64) for v in evals[column]]
    if not values:
        return np.zeros((0, 0))
    if len({len(v) for v in values}) != 1:
        raise ValueError(f"{column}: rows cover different numbers of test sequences")
    return np.vstack(values)


def probabilities(evals: pd.DataFrame, column: str, n: int) -> np.ndarray:
    """(rows, n, classes) from the flattened per-row probability vectors."""
    flat = matrix(evals, column)
    return flat.reshape(len(evals), n, -1)


def class_index(y_true, classes: Sequence[str]) -> dict[int, np.ndarray]:
    """Label -> the positions of its test sequences, for the labels that have any."""
    y = np.asarray(y_true, dtype=np.int64)
    return {e: np.flatnonzero(y == e) for e in range(len(classes)) if (y == e).any()}


def check_evals(evals: pd.DataFrame, y_true, classes: Sequence[str]) -> None:
    """Refuse evaluations without the per-sequence columns or of another test set."""
    missing = [c for c in (*CLASS_KEY_COLUMNS, *VECTOR_COLUMNS) if c not in evals.columns]
    if missing:
        raise ValueError(
            f"class-specific evaluations lack columns {missing} (written by an older "
            "evaluate_classes: rerun it)"
        )
    n = len(np.asarray(y_true))
    for columns, expected in ((SEQUENCE_COLUMNS, n), (PROBABILITY_COLUMNS, n * len(classes))):
        lengths = {len(v) for column in columns for v in evals[column]}
        if lengths and lengths != {expected}:
            raise ValueError(
                f"class-specific evaluations hold {sorted(lengths)} values per row where the "
                f"test set ({n} sequences, {len(classes)} classes) needs {expected}: they were "
                "computed on another test set"
            )


def logodds(p: np.ndarray) -> np.ndarray:
    """log(p / (1 - p)), p clipped to [LOGODDS_EPS, 1 - LOGODDS_EPS]."""
    p = np.clip(p, LOGODDS_EPS, 1.0 - LOGODDS_EPS)
    return np.log(p) - np.log1p(-p)


# ---------------------------------------------------------------------------------------------
# Per evaluated class (the matrix behind the figure)


def _selected_change(probs: np.ndarray, base_probs: np.ndarray, c: int) -> dict:
    """Mean change of p(c) and of its log-odds over some sequences ((n, K) each); NaN for a
    random row (c < 0: no selected class)."""
    if c < 0:
        return {"delta_selected_prob": np.nan, "delta_selected_logodds": np.nan}
    changed, unchanged = probs[:, c], base_probs[:, c]
    return {
        "delta_selected_prob": float((changed - unchanged).mean()),
        "delta_selected_logodds": float((logodds(changed) - logodds(unchanged)).mean()),
    }


def effects_table(evals: pd.DataFrame, y_true, classes: Sequence[str]) -> pd.DataFrame:
    """One row per (evaluation row, evaluated class e): e's accuracy and mean true-class
    probability with and without the change, their changes (`delta_acc`, `delta_prob`), the
    changes corrected by the mean change of the random rows of the same (layer type, factor,
    retention) (`corrected_delta_*`; NaN without random rows); `delta_selected_prob` and
    `delta_selected_logodds`: the change of the SELECTED class's probability p(c) on e's
    sequences, and of its log-odds (the output view: the log-odds move alike along a row when
    the units push the output whatever the input; NaN for random rows);
    `share_predicted` / `base_share_predicted`: the share of all test sequences predicted as e
    with and without the change (a sink shows as one class near 1)."""
    check_evals(evals, y_true, classes)
    base = evals.reset_index(drop=True)
    y = np.asarray(y_true, dtype=np.int64)
    index = class_index(y, classes)
    probs = probabilities(base, "probs", len(y))
    base_probs = probabilities(base, "base_probs", len(y))
    values = {
        "prob": (matrix(base, "true_prob"), matrix(base, "base_true_prob")),
        "acc": (matrix(base, "correct"), matrix(base, "base_correct")),
    }
    predicted = matrix(base, "predicted").astype(np.int64)
    base_predicted = matrix(base.iloc[:1], "base_predicted")[0].astype(np.int64)
    rows = []
    for i, row in base.iterrows():
        key = {c: row[c] for c in CLASS_KEY_COLUMNS}
        c = int(row["label"])
        for e, idx in index.items():
            out = {**key, "evaluated_label": e, "evaluated_class": str(classes[e])}
            out["n_evaluated"] = len(idx)
            for name, (changed, unchanged) in values.items():
                out[f"base_{name}"] = float(unchanged[i, idx].mean())
                out[name] = float(changed[i, idx].mean())
                out[f"delta_{name}"] = out[name] - out[f"base_{name}"]
            out.update(_selected_change(probs[i, idx], base_probs[i, idx], c))
            out["share_predicted"] = float(np.mean(predicted[i] == e))
            out["base_share_predicted"] = float(np.mean(base_predicted == e))
            rows.append(out)
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    is_random = table["method_family"] == RANDOM
    for name in values:
        mean_random = table[is_random].groupby([*GROUP, "evaluated_label"])[f"delta_{name}"].mean()
        keys = pd.MultiIndex.from_frame(table[[*GROUP, "evaluated_label"]])
        table[f"corrected_delta_{name}"] = (
            table[f"delta_{name}"].to_numpy() - mean_random.reindex(keys).to_numpy()
        )
    table["seed"] = table["seed"].astype("Int64")
    return table
