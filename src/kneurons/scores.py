"""The score files: one parquet file per (model, method, layer type, layer) (`vocab.SCORE_FILE`).

Columns: layer, layer_type, neuron, score, and `label` (the class index the score was averaged
over; -1 = all classes, which is what selection ranks by default); scored methods add `score_a`
and `score_b`, the same average over each half of the examples (`split_halves`), from which the
summary measures how stable the selection is. Also the random baseline's
scores, which need only the layer sizes, and the seeded sample of examples scores are computed
on. Imports no torch: random scores are written in the Snakemake process itself.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np
import pandas as pd

from kneurons.io import write_parquet
from kneurons.vocab import SCORE_FILE, parse_method, parse_path


def score_frame(scores: np.ndarray, layer_type: str, layer: int, **extra) -> pd.DataFrame:
    """The per-layer parquet schema: layer, layer_type, neuron, score (+ optional columns)."""
    frame = pd.DataFrame(
        {
            "layer": np.full(len(scores), layer, dtype=np.int64),
            "layer_type": layer_type,
            "neuron": np.arange(len(scores), dtype=np.int64),
            "score": np.asarray(scores, dtype=np.float64),
        }
    )
    for name, values in extra.items():
        frame[name] = values
    return frame


def random_scores(num_units: int, seed: int, layer_type: str, layer: int) -> np.ndarray:
    """Uniform scores, reproducible per (seed, layer type, layer) and independent of job order."""
    key = [seed, layer, *layer_type.encode()]
    return np.random.default_rng(key).random(num_units)


def split_halves(labels) -> np.ndarray:
    """0/1 per example: within each class, the examples alternate between the halves in their
    order (the first of a class goes to half 0), so both halves hold each class about equally."""
    labels = np.asarray(labels)
    half = np.zeros(len(labels), dtype=np.int64)
    for label in np.unique(labels):
        where = np.flatnonzero(labels == label)
        half[where] = np.arange(len(where)) % 2
    return half


def pick_examples(frame: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """A seeded sample of `n` rows (all rows if fewer), in a stable order."""
    if n >= len(frame):
        return frame.reset_index(drop=True)
    return frame.sample(n=n, random_state=seed).sort_index().reset_index(drop=True)


def write_random_scores(
    model_info: str, out_paths: Sequence[str], log_path: str, method: str
) -> None:
    """Job body of rule score_random: the random scores of one layer, one file per layer type,
    named by `out_paths` (`vocab.SCORE_FILE`), from the model's sizes."""
    with open(model_info) as fh:
        units = json.load(fh)["units"]
    _, seed = parse_method(method)
    if seed is None:
        raise ValueError(f"{method!r} is not a random method (random-<seed>)")
    lines = []
    for out_path in out_paths:
        names = parse_path(SCORE_FILE, out_path)
        layer_type, layer = names["layer_type"], int(names["layer"])
        scores = random_scores(units[layer_type], seed, layer_type, layer)
        metadata = {"method": method, "seed": seed, "layer_type": layer_type, "layer": layer}
        write_parquet(out_path, score_frame(scores, layer_type, layer), metadata)
        lines.append(f"{len(scores)} random scores (seed {seed}) written to {out_path}\n")
    with open(log_path, "w") as fh:
        fh.writelines(lines)
