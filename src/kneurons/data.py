"""Turn a UniProt TSV of enzymes into train/val/test frames labelled by EC class.

Every input row either ends up in exactly one split or is counted under one drop reason, so the
dataset card accounts for the whole input. The order of the steps matters: duplicates are
collapsed on the cleaned, cropped sequence (what the model actually sees), and the split comes
last so that no sequence can leak between train and test.
"""

from __future__ import annotations

import csv
import dataclasses
import re
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

# UniProt header -> our column name.
REQUIRED_COLUMNS = {"Entry": "accession", "EC number": "ec_numbers", "Sequence": "sequence"}

# ESM's alphabet has tokens for the 20 standard amino acids and for these five extra letters,
# so sequences that use them can be embedded as they are.
RESIDUES = frozenset("ACDEFGHIKLMNPQRSTVWY" + "XBZUO")

EC_CLASSES = ("1", "2", "3", "4", "5", "6", "7")
CROP_MODES = ("n_terminal", "centre", "drop")
INVALID_RESIDUE_MODES = ("drop", "error")
SPLIT_NAMES = ("train", "val", "test")

# In pipeline order; the card lists all of them (zeros included) so runs are comparable.
DROP_REASONS = (
    "empty_sequence",
    "invalid_residues",
    "too_short",
    "too_long",
    "no_ec",
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
    "split",
)

# Keys of the config's `data:` block that are not dataset options (read by the workflow).
NON_OPTION_CONFIG_KEYS = frozenset({"input"})

_NUMBER = re.compile(r"[0-9]+")
_PRELIMINARY = re.compile(r"n[0-9]+")


class DataError(ValueError):
    """Bad input data; message is one line naming the file/row/key."""


# ---------------------------------------------------------------------------------------------
# Options


@dataclass(frozen=True)
class DatasetOptions:
    classes: tuple[str, ...] | None = None
    ec_level: int = 1
    min_length: int = 1
    max_length: int = 1022
    crop: str = "n_terminal"
    invalid_residues: str = "drop"
    max_per_class: int | None = None
    min_per_class: int = 1
    split_method: str = "random"
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    seed: int = 0

    def __post_init__(self):
        # Validate here so a bad config fails when it is read, not halfway through a run.
        if self.ec_level not in (1, 2, 3, 4):
            raise DataError(f"data options: ec_level must be 1-4, got {self.ec_level!r}")
        if self.classes is not None:
            classes = tuple(str(c).strip() for c in self.classes)
            bad = [c for c in classes if ec_label(c, self.ec_level) != c]
            if not classes or bad or len(set(classes)) != len(classes):
                raise DataError(
                    f"data options: classes must be distinct level-{self.ec_level} EC labels, "
                    f"got {list(classes)}"
                )
            object.__setattr__(self, "classes", classes)
        if not 1 <= self.min_length <= self.max_length:
            raise DataError(
                f"data options: need 1 <= min_length <= max_length, "
                f"got {self.min_length} and {self.max_length}"
            )
        if self.crop not in CROP_MODES:
            raise DataError(f"data options: crop must be one of {CROP_MODES}, got {self.crop!r}")
        if self.invalid_residues not in INVALID_RESIDUE_MODES:
            raise DataError(
                f"data options: invalid_residues must be one of {INVALID_RESIDUE_MODES}, "
                f"got {self.invalid_residues!r}"
            )
        if self.max_per_class is not None and self.max_per_class < 1:
            raise DataError(f"data options: max_per_class must be >= 1, got {self.max_per_class}")
        if self.min_per_class < 1:
            raise DataError(f"data options: min_per_class must be >= 1, got {self.min_per_class}")
        if self.split_method not in SPLITTERS:
            raise DataError(
                f"data options: split method must be one of {sorted(SPLITTERS)}, "
                f"got {self.split_method!r}"
            )
        fractions = tuple(float(f) for f in self.fractions)
        if len(fractions) != 3 or min(fractions) <= 0 or abs(sum(fractions) - 1) > 1e-6:
            raise DataError(
                "data options: split fractions (train, val, test) must all be > 0 and sum to 1, "
                f"got {list(fractions)}"
            )
        object.__setattr__(self, "fractions", fractions)


def options_from_config(cfg: dict) -> DatasetOptions:
    """Build options from the config's `data:` block (or the whole config holding one).

    Unknown keys are an error: a misspelt `max_lenght` would otherwise be silently ignored.
    """
    cfg = cfg or {}
    data = dict((cfg.get("data") if isinstance(cfg.get("data"), dict) else cfg) or {})
    split = dict(data.pop("split", None) or {})
    for key in NON_OPTION_CONFIG_KEYS:
        data.pop(key, None)

    fields = {f.name for f in dataclasses.fields(DatasetOptions)} - {"split_method", "fractions"}
    unknown = sorted(set(data) - fields) + [
        f"split.{k}" for k in sorted(set(split) - {"method", *SPLIT_NAMES})
    ]
    if unknown:
        raise DataError(f"config data: unknown key(s) {', '.join(unknown)}")

    kwargs = dict(data)
    if kwargs.get("classes") is not None:
        kwargs["classes"] = tuple(str(c) for c in kwargs["classes"])
    if "method" in split:
        kwargs["split_method"] = split["method"]
    given = [name for name in SPLIT_NAMES if name in split]
    if given and len(given) != 3:
        raise DataError(f"config data.split: give all of train, val, test (got {', '.join(given)})")
    if given:
        kwargs["fractions"] = tuple(split[name] for name in SPLIT_NAMES)
    return DatasetOptions(**kwargs)


def options_to_dict(options: DatasetOptions) -> dict:
    """JSON-friendly form of the options (tuples become lists) for the dataset card."""
    return {
        key: list(value) if isinstance(value, tuple) else value
        for key, value in dataclasses.asdict(options).items()
    }


# ---------------------------------------------------------------------------------------------
# Reading


def read_uniprot_tsv(path) -> pd.DataFrame:
    """Read a UniProt TSV export (optionally gzipped) with every field as plain text.

    UniProt does not quote fields, so quoting is off: a protein name starting with a double
    quote must not swallow the tabs after it.
    """
    try:
        table = pd.read_csv(
            path,
            sep="\t",
            dtype=str,
            keep_default_na=False,
            quoting=csv.QUOTE_NONE,
            compression="infer",
        )
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: empty file") from None
    except (OSError, EOFError, zlib.error, UnicodeDecodeError, pd.errors.ParserError) as exc:
        reason = " ".join(str(exc).split())
        raise DataError(f"{path}: cannot read as a UniProt TSV ({reason})") from None

    table.columns = [str(c).strip() for c in table.columns]
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise DataError(
            f"{path}: missing column(s) {', '.join(repr(c) for c in missing)} "
            f"(found: {', '.join(table.columns)})"
        )
    if table.empty:
        raise DataError(f"{path}: no data rows")
    return table.rename(columns=REQUIRED_COLUMNS)


# ---------------------------------------------------------------------------------------------
# EC numbers


def parse_ec_numbers(text: str) -> list[str]:
    """Split UniProt's `; `-separated EC field; tolerant of stray spaces and trailing `;`."""
    return [ec.strip() for ec in str(text).split(";") if ec.strip()]


def _ec_parts(ec: str) -> list[str] | None:
    """The dot-separated parts of a well-formed (possibly partial) EC number, else None.

    Accepts `3.4.21.4`, partial `3.4.-.-` and preliminary `3.5.1.n3`; rejects a number after
    a `-` (`3.-.1.1`) and a top-level class outside 1-7.
    """
    parts = ec.strip().split(".")
    if not 1 <= len(parts) <= 4 or parts[0] not in EC_CLASSES:
        return None
    unknown_seen = False
    for position, part in enumerate(parts[1:], start=1):
        if part == "-":
            unknown_seen = True
        elif unknown_seen:
            return None
        elif not (_NUMBER.fullmatch(part) or (position == 3 and _PRELIMINARY.fullmatch(part))):
            return None
    return parts


def ec_label(ec: str, level: int = 1) -> str | None:
    """The EC number truncated to `level` parts, or None if it is not known that deep."""
    if level not in (1, 2, 3, 4):
        raise ValueError(f"EC level must be 1-4, got {level!r}")
    parts = _ec_parts(ec)
    if parts is None or len(parts) < level or "-" in parts[:level]:
        return None
    return ".".join(parts[:level])


def sort_labels(labels: Iterable[str]) -> list[str]:
    """Sort labels numerically part by part, so "10.1" follows "9.1" and "2" precedes "10"."""

    def key(label: str):
        return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in label.split("."))

    return sorted(set(labels), key=key)


def _row_label(ecs: list[str], level: int) -> tuple[str | None, str | None]:
    """(label, None) for a usable row, else (None, drop reason).

    A row whose EC numbers span two top-level classes is ambiguous even if only one of them is
    specific enough for `level`, so it is dropped rather than given the resolvable label.
    """
    top = {ec_label(ec, 1) for ec in ecs} - {None}
    labels = {ec_label(ec, level) for ec in ecs} - {None}
    if len(top) > 1 or len(labels) > 1:
        return None, "multiple_classes"
    if not labels:
        return None, "no_ec"
    return labels.pop(), None


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
    kept, counts = _keep(df, pd.Series(reason, index=df.index), DROP_REASONS[:4])

    kept["cropped"] = kept["sequence"].str.len() > options.max_length
    kept["sequence"] = kept["sequence"].map(
        lambda s: crop_sequence(s, options.max_length, options.crop)
    )
    kept["length"] = kept["sequence"].str.len().astype("int64")
    return kept, counts


def label_rows(df, options) -> tuple[pd.DataFrame, dict[str, int]]:
    """Attach the EC class label (`ec_class`) and normalise the `ec_numbers` text."""
    df = df.copy()
    ecs = df["ec_numbers"].fillna("").map(parse_ec_numbers)
    labelled = ecs.map(lambda e: _row_label(e, options.ec_level))
    df["ec_numbers"] = ecs.map("; ".join)
    df["ec_class"] = labelled.map(lambda x: x[0] or "")
    reason = labelled.map(lambda x: x[1] or "")
    if options.classes is not None:
        not_selected = (reason == "") & ~df["ec_class"].isin(options.classes)
        reason = reason.mask(not_selected, "class_not_selected")
    return _keep(df, reason, ("no_ec", "multiple_classes", "class_not_selected"))


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
# Splitting


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


# Split methods by config name: (df, fractions, seed) -> split name per row.
SPLITTERS: dict[str, Callable[[pd.DataFrame, tuple, int], pd.Series]] = {
    "random": random_split,
}


# ---------------------------------------------------------------------------------------------
# The stage


def _check_table(table: pd.DataFrame) -> None:
    missing = [c for c in REQUIRED_COLUMNS.values() if c not in table.columns]
    if missing:
        raise DataError(f"table: missing column(s) {', '.join(repr(c) for c in missing)}")
    accession = table["accession"].fillna("").astype(str).str.strip()
    empty = np.flatnonzero(accession.eq("").to_numpy())
    if len(empty):
        raise DataError(f"data row {empty[0] + 1}: empty accession")
    repeated = accession[accession.duplicated()]
    if len(repeated):
        raise DataError(f"duplicate accession {repeated.iloc[0]!r} in input")


def prepare_dataset(
    table: pd.DataFrame, options: DatasetOptions
) -> tuple[dict[str, pd.DataFrame], dict]:
    """Filter, label, deduplicate, cap and split `table` (as returned by `read_uniprot_tsv`)."""
    _check_table(table)
    dropped = dict.fromkeys(DROP_REASONS, 0)
    df = table.loc[:, list(REQUIRED_COLUMNS.values())].copy()
    df["accession"] = df["accession"].astype(str).str.strip()

    df, counts = clean_sequences(df, options)
    dropped.update(counts)
    df, counts = label_rows(df, options)
    dropped.update(counts)
    df, counts = collapse_duplicates(df)
    dropped.update(counts)
    df = df.sort_values("accession", kind="stable").reset_index(drop=True)
    df, counts = cap_classes(df, options.max_per_class, options.seed)
    dropped.update(counts)
    df = df.reset_index(drop=True)

    if df.empty:
        raise DataError(f"no rows left after filtering (dropped: {dropped})")
    classes = sort_labels(options.classes or df["ec_class"])
    check_class_sizes(df, classes, options.min_per_class)

    label_index = {cls: i for i, cls in enumerate(classes)}
    df["label"] = df["ec_class"].map(label_index).astype("int64")
    df["split"] = SPLITTERS[options.split_method](df, options.fractions, options.seed)

    splits = {}
    for name in SPLIT_NAMES:
        part = df[df["split"] == name].sort_values("accession", kind="stable")
        splits[name] = part.loc[:, list(OUTPUT_COLUMNS)].reset_index(drop=True)

    card = {
        "classes": classes,
        "label_index": label_index,
        "ec_level": options.ec_level,
        "n_input_rows": int(len(table)),
        "dropped": dropped,
        "cropped": int(sum(part["cropped"].sum() for part in splits.values())),
        "counts": {
            name: {cls: int((part["ec_class"] == cls).sum()) for cls in classes}
            for name, part in splits.items()
        },
        "totals": {name: int(len(part)) for name, part in splits.items()},
        "options": options_to_dict(options),
        "split_method": options.split_method,
    }
    return splits, card
