"""Class-specific knowledge neurons: suppress or amplify each class's own top units and measure
what happens to every class (the causal test of Dai et al. 2022, per EC class). This module holds
the targets: what is evaluated, each class's own ranking, the operation of a factor, the shared
units, and reading the evaluations.

Targets (rule `evaluate_classes`, one cached file per (model, layer type, method, factor,
retention), `CLASS_EVAL_FILE`): for every class c, the top r% units of one layer type (all its
layers) ranked by class c's own scores (the `label = c` rows of the score and selection files)
are multiplied by `factor` (0 suppresses them, 2 doubles their output), every other unit runs
normally, and the whole test set is evaluated. A random seed's file holds one row: its random
units (ranked by the seed's scores, not by any class) of the same size, the baseline. Each row
keeps, per test sequence, with and without the change: the probability of the true class and
whether the prediction is right (`true_prob`, `correct`, `base_true_prob`, `base_correct`), the
predicted class (`predicted`, `base_predicted`), and every class's probability (`probs`,
`base_probs`: N x K values flattened sequence by sequence, float32; sequence i's K
probabilities are entries i*K to i*K + K - 1).

Measures and calls: `kneurons.classes.stats` (the own-class effect against random units and
against the other classes' units, the largest off-target effect against random, whether the
set knows class c's inputs or pushes the output toward or away from c whatever the input, and
whether the changed model collapses onto one class; a set is class-specific only when all of
them agree) and `kneurons.classes.effects` (per evaluated class). The summary's words:
`kneurons.classes.report`; the figure: `kneurons.classes.figures`; the masks:
`kneurons.classes.masks`.

Refinement (`shared_units`): a unit in the top set of more than `shared_fraction` of the
classes is shared (it ranks high for most classes: general machinery, not one class's
knowledge); the table counts, per class, how many of its selected units are shared and how many
remain class-specific.

Imports no torch.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence

import pandas as pd

from kneurons.selection.ranking import pick, selected
from kneurons.vocab import ALL_CLASSES, RANDOM

CLASS_EVAL_FILE = "results/classes/{model}/{layer_type}/{method}/x{factor}/top{retention}.parquet"
# One class-specific evaluation: the key columns of a CLASS_EVAL_FILE row.
CLASS_KEY_COLUMNS = (
    "model",
    "method",
    "method_family",
    "seed",
    "layer_type",
    "factor",
    "operation",
    "retention",
    "label",
    "selected_class",
)
# per test sequence (N values a row) and per (test sequence, class) (N x K values, flattened)
SEQUENCE_COLUMNS = (
    "true_prob",
    "correct",
    "predicted",
    "base_true_prob",
    "base_correct",
    "base_predicted",
)
PROBABILITY_COLUMNS = ("probs", "base_probs")
VECTOR_COLUMNS = (*SEQUENCE_COLUMNS, *PROBABILITY_COLUMNS)
GROUP = ["layer_type", "factor", "retention"]  # the cells in which methods meet random
FEW_TEST_SEQUENCES = 5  # a class with fewer test sequences is flagged in the summary
# Sink collapse (kneurons.classes.stats.sink): a changed model that answers one class for at least
# SINK_SHARE of the test sequences while that class is at least SINK_EXCESS less of the test set
SINK_SHARE = 0.8
SINK_EXCESS = 0.3


def operation_of(factor: float) -> str:
    """What multiplying units by `factor` does: suppress (0), dampen (between 0 and 1),
    identity (1), amplify (above 1)."""
    factor = float(factor)
    if factor == 0:
        return "suppress"
    if factor < 1:
        return "dampen"
    return "identity" if factor == 1 else "amplify"


def alternative_of_factor(factor: float) -> str | None:
    """The one-sided direction a class-specific selection should move its class: suppressing
    or dampening lowers it (less), amplifying raises it (greater); identity has none."""
    operation = operation_of(factor)
    if operation == "identity":
        return None
    return "greater" if operation == "amplify" else "less"


def class_rankings(ranking: pd.DataFrame, method_family: str) -> dict[int, pd.DataFrame]:
    """label -> the rows of a selection file (scope layer_type) to select from: each class's
    own ranking for a scored method (labels >= 0), the all-class ranking (label -1) for a
    random seed, whose units are not tied to any class."""
    if method_family == RANDOM:
        return {ALL_CLASSES: pick(ranking)}
    labels = sorted(int(x) for x in ranking["label"].unique() if int(x) != ALL_CLASSES)
    if not labels:
        raise ValueError(
            "the selection has no per-class rankings (scoring.per_class must be true for the "
            "class-specific targets)"
        )
    return {label: pick(ranking, label=label) for label in labels}


def class_eval_frame(rows: Sequence[dict]) -> pd.DataFrame:
    """Rows of a CLASS_EVAL_FILE, typed for parquet."""
    frame = pd.DataFrame(list(rows))
    frame["seed"] = frame["seed"].astype("Int64")
    frame["label"] = frame["label"].astype("int64")
    frame["selected_class"] = frame["selected_class"].astype("string")
    return frame


def shared_units(
    rankings: Mapping[tuple[str, str], pd.DataFrame],
    retentions: Sequence[float],
    shared_fraction: float = 0.5,
) -> pd.DataFrame:
    """Refinement of each class's top set: (method, layer type) -> selection file rows (scope
    layer_type) with per-class rankings. Per (method, layer type, retention, class): units
    selected, how many of them are also in the top set of more than `shared_fraction` of the
    classes (`n_shared`), and how many remain (`n_specific`)."""
    rows = []
    for (method, layer_type), ranking in rankings.items():
        labels = sorted(int(x) for x in ranking["label"].unique() if int(x) != ALL_CLASSES)
        if len(labels) < 2:
            continue
        for retention in retentions:
            top = {}
            for label in labels:
                units = pick(ranking, label=label)
                chosen = units[selected(units, float(retention))]
                top[label] = set(zip(chosen["layer"], chosen["neuron"], strict=True))
            how_many = pd.Series([u for s in top.values() for u in s]).value_counts()
            is_shared = set(how_many.index[how_many > shared_fraction * len(labels)])
            for label, units in top.items():
                n_shared = len(units & is_shared)
                rows.append(
                    {
                        "method": method,
                        "layer_type": layer_type,
                        "retention": float(retention),
                        "label": label,
                        "n_selected_units": len(units),
                        "n_shared": n_shared,
                        "n_specific": len(units) - n_shared,
                    }
                )
    return pd.DataFrame(
        rows,
        columns=[
            "method",
            "layer_type",
            "retention",
            "label",
            "n_selected_units",
            "n_shared",
            "n_specific",
        ],
    )


def read_class_evals(paths: Sequence[str | os.PathLike]) -> pd.DataFrame:
    """Several CLASS_EVAL_FILEs as one table."""
    frames = [pd.read_parquet(p) for p in paths]
    if not frames:
        return pd.DataFrame(columns=[*CLASS_KEY_COLUMNS, *VECTOR_COLUMNS])
    return pd.concat(frames, ignore_index=True)


def class_names(card_path: str | os.PathLike) -> list[str]:
    """The classes of the dataset card, in label order."""
    with open(card_path) as fh:
        return [str(c) for c in json.load(fh)["classes"]]
