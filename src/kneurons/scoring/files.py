"""The score files: one parquet file per (model, method, layer type, layer) (`vocab.SCORE_FILE`).

Columns: layer, layer_type, neuron, score, and `label` (the class index the score was averaged
over; -1 = all classes, which is what selection ranks by default); scored methods add `score_a`
and `score_b`, the same average over each half of the examples (`split_halves`), from which the
summary measures how stable the selection is. Also the random baseline's
scores, which need only the layer sizes, and the seeded, class-stratified sample of examples
scores are computed on (`pick_stratified`; its per-class counts are in the score files' metadata,
read back by `examples_per_class`). Imports no torch: random scores are written in the Snakemake
process itself.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from kneurons.errors import DataError
from kneurons.io import read_parquet_metadata, write_parquet
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


def stratified_counts(sizes: Mapping, n: int) -> dict:
    """How many of `n` examples each class (key of `sizes`, its number of rows) gets.

    As equal as the classes allow: every class gets its share of what is left, a class with
    fewer rows than its share gives all it has and the others share the rest. Where `n` does
    not divide evenly, the few left over go one each to the classes with the most rows still
    unpicked (ties: the order of `sizes`). So with `n` at least the number of classes with rows,
    every one of them gets an example; `n` at or above the total takes every row.
    """
    order = {c: i for i, c in enumerate(sizes)}
    counts = {c: 0 for c in sizes}
    spare = {c: int(size) for c, size in sizes.items() if size > 0}
    left = int(n)
    while left > 0 and spare:
        share = left // len(spare)
        if share == 0:
            for c in sorted(spare, key=lambda c: (-spare[c], order[c]))[:left]:
                counts[c] += 1
            break
        for c in list(spare):
            take = min(share, spare[c])
            counts[c] += take
            spare[c] -= take
            left -= take
            if not spare[c]:
                del spare[c]
    return counts


def pick_stratified(
    frame: pd.DataFrame,
    n: int,
    seed: int,
    *,
    by: str = "label",
    setting: str = "scoring.n_examples",
) -> pd.DataFrame:
    """A seeded sample of `n` rows stratified by class (column `by`), in a stable order.

    Every class with rows gets examples, as many per class as the class sizes allow
    (`stratified_counts`); within a class the rows are a seeded sample (`seed`), so a class's
    pick does not depend on the other classes. The same frame, `n` and seed give the same rows.
    Fewer than `n` rows in all: every row. `n` below the number of classes is a `DataError`
    naming `setting` (the config key of `n`): some class would have no example, and so no
    per-class score.
    """
    frame = frame.reset_index(drop=True)
    sizes = frame[by].value_counts().sort_index()
    if n < len(sizes):
        raise DataError(
            f"{setting} is {n}, fewer than the {len(sizes)} classes of the training set: set it "
            f"to at least {len(sizes)} so that every class has an example to be scored on"
        )
    counts = stratified_counts(sizes.to_dict(), n)
    parts = [frame[frame[by] == c].sample(n=k, random_state=seed) for c, k in counts.items() if k]
    return pd.concat(parts).sort_index().reset_index(drop=True)


def count_per_class(examples: pd.DataFrame, classes: Sequence | None = None) -> dict[str, int]:
    """{class name: number of examples} in class order, for the metadata: every class of
    `classes` (the model's names, indexed by `label`; a class without examples counts 0), or
    without `classes` the labels present."""
    counts = examples["label"].value_counts().sort_index()
    if classes is None:
        return {str(label): int(k) for label, k in counts.items()}
    return {str(name): int(counts.get(i, 0)) for i, name in enumerate(classes)}


def examples_per_class(source: Mapping | str | os.PathLike) -> dict[str, int]:
    """The examples per class that a score file was computed on: {class name: count}, in class
    order, from the file's metadata (`source`: the path or the metadata dict). Files written
    before `examples_per_class` was recorded fall back to `class_counts` (by label index) with
    the model's `classes`; {} where neither is there (random scores)."""
    meta = source if isinstance(source, Mapping) else read_parquet_metadata(source)
    if meta.get("examples_per_class") is not None:
        return {str(c): int(k) for c, k in meta["examples_per_class"].items()}
    counts, classes = meta.get("class_counts"), meta.get("classes")
    if not counts:
        return {}
    if not classes:
        return {str(c): int(k) for c, k in sorted(counts.items(), key=lambda kv: int(kv[0]))}
    return {str(name): int(counts.get(str(i), 0)) for i, name in enumerate(classes)}


def write_random_scores(
    model_info: str,
    out_paths: Sequence[str],
    log_path: str,
    method: str,
    latents: dict[str, int] | None = None,
) -> None:
    """Job body of rule score_random: the random scores of one layer, one file per layer type,
    named by `out_paths` (`vocab.SCORE_FILE`), from the model's sizes (neurons) and `latents`,
    the latent counts of the SAE layer types (`kneurons.configuration.sae_latents`)."""
    with open(model_info) as fh:
        units = {**json.load(fh)["units"], **(latents or {})}
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


# One row per integrated-gradients score file in the summary's `ig_completeness.parquet`.
COMPLETENESS_COLUMNS = [
    "model", "layer_type", "layer", "n_examples", "gap_mean", "gap_mean_abs", "gap_max_abs",
    "delta_mean_abs", "rel_gap_max", "steps_max", "n_above_tolerance",
]  # fmt: skip


def completeness_table(model: str, paths: Sequence[str]) -> pd.DataFrame:
    """One row per integrated-gradients score file among `paths`: the completeness summary its
    metadata records (`COMPLETENESS_COLUMNS`)."""
    rows = []
    for path in paths:
        meta = read_parquet_metadata(path)
        if meta.get("method") != "integrated_gradients" or "completeness" not in meta:
            continue
        rows.append(
            {"model": model, "layer_type": meta["layer_type"], "layer": meta["layer"],
             **meta["completeness"]}
        )  # fmt: skip
    return pd.DataFrame(rows).reindex(columns=COMPLETENESS_COLUMNS)
