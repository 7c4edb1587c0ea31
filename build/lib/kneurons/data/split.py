"""The second half of the data stage: cleaned rows to train/val/test, and the dataset card.

`split_dataset` takes what `kneurons.data.clean.clean_dataset` returns (and, for the homology split,
the MMseqs2 clusters joined by `kneurons.data.homology.clusters_from_files`), assigns whole clusters
(or single rows) to the splits, class-stratified and seeded, and builds the card that accounts
for every input row; `card_markdown` is its short human-readable form.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from kneurons.data.clean import DROP_REASONS, OUTPUT_COLUMNS, length_stats
from kneurons.data.options import (
    NON_ENZYME,
    SPLIT_NAMES,
    DatasetOptions,
    options_to_dict,
    sort_labels,
)
from kneurons.errors import DataError

# ---------------------------------------------------------------------------------------------
# Split methods


def _split_sizes(n: int, val_fraction: float, test_fraction: float) -> tuple[int, int]:
    """(n_val, n_test) for one class: at least one each when the class has >= 3 rows."""
    if n < 3:
        return 0, 0
    n_val = max(1, int(n * val_fraction + 0.5))
    n_test = max(1, int(n * test_fraction + 0.5))
    while n_val + n_test > n - 1:  # leave at least one row for training
        if n_val >= n_test:
            n_val -= 1
        else:
            n_test -= 1
    return n_val, n_test


def random_split(df, fractions, seed) -> pd.Series:
    """Class-stratified random split, seeded.

    Sizes are allocated per class rather than with sklearn's stratified sampler, which may
    leave a small class out of val or test entirely; here every class with >= 3 rows appears in
    all three splits (classes with fewer go to train). Rows are ordered by accession before
    shuffling so the split does not depend on the input row order.
    """
    _, val_fraction, test_fraction = fractions
    rng = np.random.default_rng(seed)
    classes = df["ec_class"].to_numpy()
    accessions = df["accession"].to_numpy()
    split = np.full(len(df), "train", dtype=object)
    for cls in sort_labels(classes):
        rows = np.flatnonzero(classes == cls)
        rows = rng.permutation(rows[np.argsort(accessions[rows], kind="stable")])
        n_val, n_test = _split_sizes(len(rows), val_fraction, test_fraction)
        split[rows[:n_val]] = "val"
        split[rows[n_val : n_val + n_test]] = "test"
    return pd.Series(split, index=df.index, name="split").astype(str)


def homology_split(df, fractions, seed) -> pd.Series:
    """Whole clusters (`cluster` column) to train/val/test, label-stratified as far as they allow.

    Greedy, largest cluster first (equal sizes in seeded random order): each cluster goes to the
    split where adding it brings the per-class counts closest to their targets t = fraction x
    class size, in the sum over splits and classes of (count - t)^2 / (t x class size). Dividing
    by t makes the splits fill in proportion, so val and test get families of every size (on
    Swiss-Prot enzymes, a third of each split's rows have a homologue in the same split), not
    only the singletons left at the end; dividing by the class size makes a small class count
    as much as a large one. Cluster ids are sorted before shuffling so the split does not
    depend on the input row order.
    """
    classes = sort_labels(df["ec_class"])
    class_index = df["ec_class"].map({c: i for i, c in enumerate(classes)}).to_numpy()
    cluster_ids, member_of = np.unique(df["cluster"].astype(str).to_numpy(), return_inverse=True)
    counts = np.zeros((len(cluster_ids), len(classes)))
    np.add.at(counts, (member_of, class_index), 1)

    totals = counts.sum(axis=0)
    target = np.outer(np.asarray(fractions, dtype=float), totals)  # (split, class)
    weight = 1.0 / (target * totals)
    filled = np.zeros_like(target)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(cluster_ids))
    order = order[np.argsort(-counts[order].sum(axis=1), kind="stable")]
    assigned = np.zeros(len(cluster_ids), dtype=int)
    for k in order:
        added = counts[k]
        # Change of sum((filled - target)^2 * weight) if the cluster joins each split.
        change = (added * (2 * (filled - target) + added) * weight).sum(axis=1)
        best = int(np.argmin(change))
        filled[best] += added
        assigned[k] = best
    names = np.asarray(SPLIT_NAMES, dtype=object)[assigned[member_of]]
    return pd.Series(names, index=df.index, name="split").astype(str)


# Split methods by config name (the options accept `kneurons.data.options.SPLIT_METHODS`, the same
# names): (df, fractions, seed) -> split name per row. `df` has the columns `accession`,
# `ec_class` and `cluster` (each row its own cluster for `random`).
SPLITTERS: dict[str, Callable[[pd.DataFrame, tuple, int], pd.Series]] = {
    "random": random_split,
    "homology": homology_split,
}


# ---------------------------------------------------------------------------------------------
# The stage's second half


def split_dataset(
    cleaned: pd.DataFrame,
    report: dict,
    options: DatasetOptions,
    clusters: pd.Series | None = None,
) -> tuple[dict[str, pd.DataFrame], dict]:
    """Split the output of `kneurons.data.clean.clean_dataset` and build the dataset card.

    `clusters` maps accession -> cluster id and is required by the homology split; without it
    every row is its own cluster (the random split).
    """
    df = cleaned.copy()
    if clusters is None:
        if options.split_method == "homology":
            raise DataError("homology split: no clusters given (run MMseqs2 first)")
        df["cluster"] = df["accession"]
    else:
        df["cluster"] = df["accession"].map(clusters)
        missing = df.loc[df["cluster"].isna(), "accession"]
        if len(missing):
            raise DataError(f"homology split: accession {missing.iloc[0]!r} has no cluster")
        df["cluster"] = df["cluster"].astype(str)
    df["split"] = SPLITTERS[options.split_method](df, options.fractions, options.seed)

    splits = {}
    for name in SPLIT_NAMES:
        part = df[df["split"] == name].sort_values("accession", kind="stable")
        splits[name] = part.loc[:, list(OUTPUT_COLUMNS)].reset_index(drop=True)

    classes = report["classes"]
    cluster_sizes = df["cluster"].value_counts()
    card = {
        **report,
        # Stored metadata comes back with sorted keys: restore the pipeline order.
        "dropped": {reason: report["dropped"].get(reason, 0) for reason in DROP_REASONS},
        "cropped": int(sum(part["cropped"].sum() for part in splits.values())),
        "counts": {
            name: {cls: int((part["ec_class"] == cls).sum()) for cls in classes}
            for name, part in splits.items()
        },
        "totals": {name: int(len(part)) for name, part in splits.items()},
        "length": {name: length_stats(part["length"]) for name, part in splits.items()},
        "clusters": {name: int(part["cluster"].nunique()) for name, part in splits.items()},
        "n_clusters": int(len(cluster_sizes)),
        "largest_cluster": int(cluster_sizes.max()),
        "options": options_to_dict(options),
        "split_method": options.split_method,
    }
    return splits, card


# ---------------------------------------------------------------------------------------------
# The card as markdown


def card_markdown(card: dict) -> str:
    """A short human-readable dataset card (the JSON card holds everything)."""
    classes = card["classes"]
    lines = ["# Dataset card"]
    source = card.get("source") or {}
    if source:
        lines.append("")
    if source.get("type") == "uniprot":
        lines.append(
            f"Source: UniProt query `{source.get('query')}`, release {source.get('release')} "
            f"(downloaded {source.get('downloaded')}, {source.get('rows')} rows)."
        )
    elif source:
        lines.append(f"Source: `{source.get('path')}` (SHA-256 `{source.get('sha256')}`).")
    if source.get("non_enzymes"):
        lines.append(f"Non-enzymes (class {NON_ENZYME}): `{source['non_enzymes'].get('path')}`.")
    lines += [
        "",
        f"Input rows: {card['n_input_rows']}; kept {card['n_kept']}, "
        f"dropped {card['n_dropped']}; {card['cropped']} cropped to "
        f"{card['options']['max_length']} residues.",
        "",
        "| filter | rows dropped |",
        "| --- | ---: |",
    ]
    lines += [f"| {reason} | {n} |" for reason, n in card["dropped"].items()]
    kept_first = (card.get("relabelled") or {}).get("multiple_classes_kept_first", 0)
    if kept_first:
        lines += ["", f"{kept_first} rows spanning several classes kept with their first EC."]

    method = card["split_method"]
    opts = card["options"]
    if method == "homology":
        clustering = card.get("clustering") or {}
        how = (
            f"homology split: MMseqs2 {clustering.get('mmseqs_version', '')} clusters at "
            f">= {opts['identity']:g} identity and >= {opts['coverage']:g} coverage, joined by "
            "any hit between them; whole clusters per split"
        )
    else:
        how = "random split, stratified by class"
    lines += ["", f"Split: {how} (seed {opts['seed']}).", ""]
    lines += [
        "| split | " + " | ".join(classes) + " | total | clusters | median length |",
        "| --- |" + " ---: |" * (len(classes) + 3),
    ]
    for name in SPLIT_NAMES:
        counts = card["counts"][name]
        median = card["length"][name].get("median", "")
        lines.append(
            f"| {name} | "
            + " | ".join(str(counts[c]) for c in classes)
            + f" | {card['totals'][name]} | {card['clusters'][name]} | {median} |"
        )
    outputs = card.get("outputs") or {}
    if outputs:
        lines += ["", "| output | rows | SHA-256 |", "| --- | ---: | --- |"]
        lines += [f"| {k} | {v['rows']} | `{v['sha256']}` |" for k, v in outputs.items()]
    return "\n".join(lines) + "\n"


def read_test_strata(path) -> tuple[np.ndarray, np.ndarray | None]:
    """The test set's labels and, when it has them, homology clusters as strings (else None):
    the strata and clusters of every resample over the test sequences."""
    import pyarrow.parquet as pq

    columns = ["label"] + (["cluster"] if "cluster" in pq.read_schema(path).names else [])
    test = pd.read_parquet(path, columns=columns)
    clusters = test["cluster"].astype(str).to_numpy() if "cluster" in test else None
    return test["label"].to_numpy(), clusters
