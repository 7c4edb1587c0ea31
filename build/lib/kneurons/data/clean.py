"""Read a UniProt TSV of enzymes, label the rows by EC class and clean them.

Every input row either ends up in the cleaned table or is counted under one drop reason, so the
dataset card accounts for the whole input. The order of the steps matters: duplicates are
collapsed on the cleaned, cropped sequence (what the model actually sees), and classes are
capped before any split so that the split (`kneurons.data.split`) sees the final rows.

The data stage has two halves so that MMseqs2 can cluster the cleaned sequences in between (in
its own environment, rule `cluster_sequences`): `clean_dataset` here (read, clean, label,
deduplicate, cap) and `kneurons.data.split.split_dataset` (whole clusters, or single rows, to
train/val/test, and the card). `kneurons.data.options.DatasetOptions` holds the options of both
halves, and the EC labels are read there too (`kneurons.data.options`).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from kneurons.data.options import (
    NON_ENZYME,
    DatasetOptions,
    ec_label,
    parse_ec_numbers,
    sort_labels,
)
from kneurons.data.tsv import (
    LENGTH_COLUMN,
    REQUIRED_COLUMNS,
    length_mismatches,
    line_list,
)
from kneurons.errors import DataError

# ESM's alphabet has tokens for the 20 standard amino acids and for these five extra letters,
# so sequences that use them can be embedded as they are.
RESIDUES = frozenset("ACDEFGHIKLMNPQRSTVWY" + "XBZUO")

# In pipeline order; the card lists all of them (zeros included) so runs are comparable.
DROP_REASONS = (
    "length_mismatch",
    "empty_sequence",
    "invalid_residues",
    "too_short",
    "too_long",
    "no_ec",
    "non_enzyme_has_ec",
    "multiple_classes",
    "class_not_selected",
    "duplicate_sequence",
    "duplicate_conflicting_labels",
    "class_cap",
)

OUTPUT_COLUMNS = (
    "accession",
    "sequence",
    "length",
    "label",
    "ec_class",
    "ec_numbers",
    "cropped",
    "cluster",
    "split",
)
# What `clean_dataset` returns (and the workflow stores between the two halves).
CLEANED_COLUMNS = tuple(c for c in OUTPUT_COLUMNS if c not in ("cluster", "split"))


# ---------------------------------------------------------------------------------------------
# Labels


def _row_label(ecs: list[str], level: int, multi_label: str = "drop") -> tuple[str, str, bool]:
    """(label, drop reason, relabelled) for one row; exactly one of label and reason is "".

    A row whose EC numbers span two top-level classes is ambiguous even if only one of them is
    specific enough for `level`, so by default it is dropped rather than given the resolvable
    label. With `multi_label="first"` it gets the label of its first EC number that resolves
    at `level` (UniProt lists them in the curators' order) and `relabelled` is True.
    """
    top = {ec_label(ec, 1) for ec in ecs} - {None}
    resolved = [label for label in (ec_label(ec, level) for ec in ecs) if label is not None]
    if not resolved:
        return "", "no_ec", False
    if len(top) > 1 or len(set(resolved)) > 1:
        if multi_label == "first":
            return resolved[0], "", True
        return "", "multiple_classes", False
    return resolved[0], "", False


# ---------------------------------------------------------------------------------------------
# Pipeline steps: each takes a frame and returns (kept rows, {drop reason: count})


def _keep(df: pd.DataFrame, reason: pd.Series, reasons: Iterable[str]):
    """Split off the rows with a non-empty `reason` and count them per reason."""
    counts = {r: int((reason == r).sum()) for r in reasons}
    return df[reason == ""].copy(), counts


def crop_sequence(sequence: str, max_length: int, mode: str = "n_terminal") -> str:
    if len(sequence) <= max_length:
        return sequence
    start = 0 if mode == "n_terminal" else (len(sequence) - max_length) // 2
    return sequence[start : start + max_length]


def _invalid_residues(sequence: str) -> str:
    """The residues ESM cannot embed, each once, in order of first appearance."""
    return "".join(dict.fromkeys(c for c in sequence if c not in RESIDUES))


def check_lengths(df, options) -> tuple[pd.DataFrame, dict[str, int]]:
    """Rows whose sequence is not as long as their UniProt `Length` (column `uniprot_length`,
    missing for a table without one) are an error or, with `length_mismatch="drop"`, dropped.

    `read_uniprot_tsv` already stops at such a row (naming its line) unless told to drop;
    this is the count for the card, and the check for tables that did not come from a file.
    """
    if "uniprot_length" not in df.columns:
        return df.copy(), {"length_mismatch": 0}
    given = df["uniprot_length"].notna().to_numpy()
    bad = given & length_mismatches(df["sequence"], df["uniprot_length"]).to_numpy()
    if options.length_mismatch == "error" and bad.any():
        row = df[bad].iloc[0]
        raise DataError(
            f"row for accession {row['accession']}: sequence of "
            f"{len(str(row['sequence']).strip())} residues, its Length says "
            f"{row['uniprot_length']!r}"
        )
    reason = pd.Series(np.where(bad, "length_mismatch", ""), index=df.index)
    return _keep(df.drop(columns="uniprot_length"), reason, ("length_mismatch",))


def clean_sequences(df, options) -> tuple[pd.DataFrame, dict[str, int]]:
    """Normalise, check and crop sequences; adds `length` and `cropped`."""
    df = df.copy()
    df["sequence"] = df["sequence"].fillna("").astype(str).str.strip().str.upper()
    invalid = df["sequence"].map(_invalid_residues)
    if options.invalid_residues == "error" and invalid.ne("").any():
        row = df[invalid.ne("")].iloc[0]
        raise DataError(
            f"row for accession {row['accession']}: invalid residue(s) "
            f"{invalid[row.name]!r} in sequence"
        )

    length = df["sequence"].str.len()
    too_long = (length > options.max_length) & (options.crop == "drop")
    reason = np.select(
        [length == 0, invalid != "", length < options.min_length, too_long],
        ["empty_sequence", "invalid_residues", "too_short", "too_long"],
        default="",
    )
    kept, counts = _keep(
        df,
        pd.Series(reason, index=df.index, dtype=object),
        ("empty_sequence", "invalid_residues", "too_short", "too_long"),
    )

    kept["cropped"] = kept["sequence"].str.len() > options.max_length
    kept["sequence"] = kept["sequence"].map(
        lambda s: crop_sequence(s, options.max_length, options.crop)
    )
    kept["length"] = kept["sequence"].str.len().astype("int64")
    return kept, counts


def label_rows(df, options) -> tuple[pd.DataFrame, dict[str, int]]:
    """Attach the EC class label (`ec_class`) and normalise the `ec_numbers` text.

    Rows of the non-enzyme table (`non_enzyme` column True) are labelled `NON_ENZYME`; one
    that does carry an EC number is dropped, not trusted as a negative. The count of rows kept
    under `multi_label="first"` is returned as `multiple_classes_kept_first` (not a drop).
    """
    df = df.copy()
    ecs = df["ec_numbers"].fillna("").map(parse_ec_numbers)
    labelled = ecs.map(lambda e: _row_label(e, options.ec_level, options.multi_label))
    df["ec_numbers"] = ecs.map("; ".join)
    df["ec_class"] = labelled.map(lambda x: x[0]).astype(object)
    reason = labelled.map(lambda x: x[1])
    # astype: on an empty frame map() cannot infer the types
    reason = reason.astype(object)
    relabelled = labelled.map(lambda x: x[2]).astype(bool)
    if "non_enzyme" in df.columns:
        negative = df["non_enzyme"].astype(bool)
        has_ec = ecs.map(bool)
        df.loc[negative, "ec_class"] = NON_ENZYME
        reason = reason.mask(negative, "").mask(negative & has_ec, "non_enzyme_has_ec")
        relabelled = relabelled & ~negative
    if options.classes is not None:
        selected = df["ec_class"].isin([*options.classes, NON_ENZYME])
        reason = reason.mask((reason == "") & ~selected, "class_not_selected")
    kept, counts = _keep(
        df, reason, ("no_ec", "non_enzyme_has_ec", "multiple_classes", "class_not_selected")
    )
    counts["multiple_classes_kept_first"] = int((relabelled & (reason == "")).sum())
    return kept, counts


def collapse_duplicates(df) -> tuple[pd.DataFrame, dict[str, int]]:
    """Keep one copy of each sequence; drop every copy of a sequence labelled two ways.

    Identical sequences in two splits would leak test data into training, and a sequence with
    two labels has no right answer.
    """
    conflicting = df.groupby("sequence")["ec_class"].transform("nunique") > 1
    repeated = df.duplicated("sequence", keep="first") & ~conflicting
    reason = pd.Series("", index=df.index)
    reason[conflicting] = "duplicate_conflicting_labels"
    reason[repeated] = "duplicate_sequence"
    return _keep(df, reason, ("duplicate_sequence", "duplicate_conflicting_labels"))


def cap_classes(df, max_per_class: int | None, seed: int) -> tuple[pd.DataFrame, dict[str, int]]:
    """Subsample over-full classes (seeded) so one class cannot dominate training."""
    if max_per_class is None:
        return df.copy(), {"class_cap": 0}
    rng = np.random.default_rng(seed)
    positions = df.groupby("ec_class").indices
    keep = []
    for cls in sort_labels(positions):
        rows = positions[cls]
        if len(rows) > max_per_class:
            rows = rng.choice(rows, size=max_per_class, replace=False)
        keep.append(rows)
    keep = np.sort(np.concatenate(keep)) if keep else np.array([], dtype=int)
    return df.iloc[keep].copy(), {"class_cap": len(df) - len(keep)}


def check_class_sizes(df, classes: list[str], min_per_class: int) -> None:
    """Fail loudly rather than train a classifier on a class it has almost never seen."""
    counts = df["ec_class"].value_counts()
    small = [(c, int(counts.get(c, 0))) for c in classes if counts.get(c, 0) < min_per_class]
    if small:
        listed = ", ".join(f"{c!r} ({n})" for c, n in small)
        raise DataError(
            f"too few rows after filtering for class(es) {listed}; min_per_class={min_per_class}"
        )


# ---------------------------------------------------------------------------------------------
# The cleaning half of the stage


def _source(table: pd.DataFrame, key: str, fallback: str) -> str:
    """How errors name a table: `data.input x.tsv` for one read from a file, else `fallback`."""
    path = table.attrs.get("path")
    return f"data.{key} {path}" if path else fallback


def _check_table(table: pd.DataFrame, name: str) -> None:
    missing = [c for c in REQUIRED_COLUMNS.values() if c not in table.columns]
    if missing:
        raise DataError(f"{name}: missing column(s) {', '.join(repr(c) for c in missing)}")
    accession = table["accession"].fillna("").astype(str).str.strip()
    empty = np.flatnonzero(accession.eq("").to_numpy())
    if len(empty):
        raise DataError(f"{name}: data row {empty[0] + 1}: empty accession")
    repeated = np.flatnonzero(accession.duplicated(keep=False).to_numpy())
    if len(repeated):
        first = accession.iloc[repeated[0]]
        rows = np.flatnonzero(accession.eq(first).to_numpy()) + 1
        raise DataError(f"{name}: duplicate accession {first!r} (data rows {line_list(rows)})")


def _table_frame(table: pd.DataFrame, non_enzyme: bool) -> pd.DataFrame:
    """The columns cleaning uses, with UniProt's `Length` as `uniprot_length` (None without)."""
    frame = table.loc[:, list(REQUIRED_COLUMNS.values())].assign(non_enzyme=non_enzyme)
    frame["uniprot_length"] = (
        table[LENGTH_COLUMN].astype(str).astype(object) if LENGTH_COLUMN in table.columns else None
    )
    return frame


def length_stats(lengths: pd.Series) -> dict:
    if lengths.empty:
        return {"n": 0}
    q = lengths.quantile([0.05, 0.5, 0.95])
    return {
        "n": int(len(lengths)),
        "min": int(lengths.min()),
        "p05": float(q[0.05]),
        "median": float(q[0.5]),
        "mean": round(float(lengths.mean()), 2),
        "p95": float(q[0.95]),
        "max": int(lengths.max()),
    }


def clean_dataset(
    table: pd.DataFrame, options: DatasetOptions, non_enzymes: pd.DataFrame | None = None
) -> tuple[pd.DataFrame, dict]:
    """Filter, label, deduplicate and cap `table` (and the optional non-enzyme table).

    Returns the kept rows (`CLEANED_COLUMNS`, sorted by accession) and a report: input rows per
    table, drop counts by reason, classes and label index, length statistics before cleaning.
    """
    name = _source(table, "input", "input table")
    _check_table(table, name)
    frames = [_table_frame(table, non_enzyme=False)]
    n_inputs = {"table": int(len(table))}
    if non_enzymes is not None:
        other = _source(non_enzymes, "non_enzymes", "non-enzyme table")
        _check_table(non_enzymes, other)
        frames.append(_table_frame(non_enzymes, non_enzyme=True))
        n_inputs["non_enzymes"] = int(len(non_enzymes))
        shared = sorted(
            set(table["accession"].astype(str).str.strip())
            & set(non_enzymes["accession"].astype(str).str.strip())
        )
        if shared:
            raise DataError(
                f"duplicate accession {shared[0]!r} in both {name} and {other} "
                f"({len(shared)} shared)"
            )
        name = f"{name} + {other}"
    df = pd.concat(frames, ignore_index=True)
    df["accession"] = df["accession"].astype(str).str.strip()
    input_lengths = df["sequence"].fillna("").astype(str).str.strip().str.len()
    n_input = sum(n_inputs.values())

    dropped = dict.fromkeys(DROP_REASONS, 0)
    relabelled = {"multiple_classes_kept_first": 0}

    def step(df, counts):
        relabelled.update((k, counts.pop(k)) for k in list(counts) if k in relabelled)
        dropped.update(counts)
        if df.empty:  # one line, not a traceback from the next step
            counted = ", ".join(f"{reason} {n}" for reason, n in dropped.items() if n)
            raise DataError(
                f"{name}: no rows left after cleaning: all {n_input} dropped ({counted})"
            )
        return df

    df = step(*check_lengths(df, options))
    df = step(*clean_sequences(df, options))
    df = step(*label_rows(df, options))
    df = step(*collapse_duplicates(df))
    df = df.sort_values("accession", kind="stable").reset_index(drop=True)
    df = step(*cap_classes(df, options.max_per_class, options.seed))
    df = df.reset_index(drop=True)

    classes = list(options.classes) if options.classes else list(df["ec_class"])
    if non_enzymes is not None:
        classes.append(NON_ENZYME)
    classes = sort_labels(classes)
    if len(classes) < 2:  # a classifier of one class: every accuracy would be 1
        raise DataError(
            f"{name}: only one class left after cleaning ({classes[0]}: {len(df)} rows); "
            "need at least two"
        )
    check_class_sizes(df, classes, options.min_per_class)

    label_index = {cls: i for i, cls in enumerate(classes)}
    df["label"] = df["ec_class"].map(label_index).astype("int64")
    if n_input != len(df) + sum(dropped.values()):  # the card must account for every row
        raise AssertionError(f"rows unaccounted for: {n_input} in, {len(df)} kept, {dropped}")
    report = {
        "classes": classes,
        "label_index": label_index,
        "ec_level": options.ec_level,
        "n_input_rows": n_input,
        "input_rows": n_inputs,
        "dropped": dropped,
        "n_dropped": int(sum(dropped.values())),
        "n_kept": int(len(df)),
        "relabelled": relabelled,
        "input_length": length_stats(input_lengths),
    }
    return df.loc[:, list(CLEANED_COLUMNS)], report
