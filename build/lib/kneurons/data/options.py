"""The options of the data stage and the EC labels they are written in.

`DatasetOptions` holds the options of both halves of the stage (`kneurons.data.clean.clean_dataset`
and `kneurons.data.split.split_dataset`); its defaults are those of config/schema.yaml
(tests/test_data.py checks that they agree), and `options_from_config` builds it from the
config's `data:` block, refusing unknown keys. EC numbers: `parse_ec_numbers` reads UniProt's EC
field, `ec_label` truncates a number to the label of a level, `sort_labels` orders labels.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from dataclasses import dataclass

from kneurons.data.tsv import LENGTH_MISMATCH_MODES
from kneurons.errors import DataError

EC_CLASSES = ("1", "2", "3", "4", "5", "6", "7")
# The label of proteins from the optional non-enzyme table: "0" sorts before every EC class,
# so with non-enzymes the label index 0 means "no EC number".
NON_ENZYME = "0"
CROP_MODES = ("n_terminal", "centre", "drop")
INVALID_RESIDUE_MODES = ("drop", "error")
MULTI_LABEL_MODES = ("drop", "first")
SPLIT_NAMES = ("train", "val", "test")
# The split methods (`data.split.method`); kneurons.data.split.SPLITTERS implements each.
SPLIT_METHODS = ("random", "homology")

# Keys of the config's `data:` block that are not dataset options (read by the workflow).
NON_OPTION_CONFIG_KEYS = frozenset({"input", "non_enzymes", "uniprot", "synthetic"})
SPLIT_CONFIG_KEYS = {"method": "split_method", "identity": "identity", "coverage": "coverage"}

_NUMBER = re.compile(r"[0-9]+")
_PRELIMINARY = re.compile(r"n[0-9]+")
# "EC 1.1.1.1", "EC:1.1.1.1", "ec1.1.1.1": the prefix is dropped, the number kept.
_EC_PREFIX = re.compile(r"^ec\s*:?\s*(?=[0-9])", re.IGNORECASE)


# ---------------------------------------------------------------------------------------------
# Options


@dataclass(frozen=True)
class DatasetOptions:
    classes: tuple[str, ...] | None = None
    ec_level: int = 1
    multi_label: str = "drop"
    min_length: int = 1
    max_length: int = 1022
    crop: str = "n_terminal"
    invalid_residues: str = "drop"
    length_mismatch: str = "error"
    max_per_class: int | None = None
    min_per_class: int = 1
    split_method: str = "random"
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    # Homology split: pairs at >= `identity` sequence identity over >= `coverage` of both
    # sequences are kept in one split (MMseqs2 --min-seq-id, -c with --cov-mode 0).
    identity: float = 0.3
    coverage: float = 0.8
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
        if self.multi_label not in MULTI_LABEL_MODES:
            raise DataError(
                f"data options: multi_label must be one of {MULTI_LABEL_MODES}, "
                f"got {self.multi_label!r}"
            )
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
        if self.length_mismatch not in LENGTH_MISMATCH_MODES:
            raise DataError(
                f"data options: length_mismatch must be one of {LENGTH_MISMATCH_MODES}, "
                f"got {self.length_mismatch!r}"
            )
        if self.max_per_class is not None and self.max_per_class < 1:
            raise DataError(f"data options: max_per_class must be >= 1, got {self.max_per_class}")
        if self.min_per_class < 1:
            raise DataError(f"data options: min_per_class must be >= 1, got {self.min_per_class}")
        if self.split_method not in SPLIT_METHODS:
            raise DataError(
                f"data options: split method must be one of {sorted(SPLIT_METHODS)}, "
                f"got {self.split_method!r}"
            )
        fractions = tuple(float(f) for f in self.fractions)
        if len(fractions) != 3 or min(fractions) <= 0 or abs(sum(fractions) - 1) > 1e-6:
            raise DataError(
                "data options: split fractions (train, val, test) must all be > 0 and sum to 1, "
                f"got {list(fractions)}"
            )
        object.__setattr__(self, "fractions", fractions)
        for name in ("identity", "coverage"):
            value = float(getattr(self, name))
            if not 0 < value <= 1:
                raise DataError(f"data options: split {name} must be in (0, 1], got {value}")
            object.__setattr__(self, name, value)


def options_from_config(cfg: dict) -> DatasetOptions:
    """Build options from the config's `data:` block (or the whole config holding one).

    Unknown keys are an error: a misspelt `max_lenght` would otherwise be silently ignored.
    """
    cfg = cfg or {}
    data = dict((cfg.get("data") if isinstance(cfg.get("data"), dict) else cfg) or {})
    split = dict(data.pop("split", None) or {})
    for key in NON_OPTION_CONFIG_KEYS:
        data.pop(key, None)

    fields = {f.name for f in dataclasses.fields(DatasetOptions)}
    fields -= {"fractions", *SPLIT_CONFIG_KEYS.values()}
    unknown = sorted(set(data) - fields) + [
        f"split.{k}" for k in sorted(set(split) - {*SPLIT_CONFIG_KEYS, *SPLIT_NAMES})
    ]
    if unknown:
        raise DataError(f"config data: unknown key(s) {', '.join(unknown)}")

    kwargs = dict(data)
    if kwargs.get("classes") is not None:
        kwargs["classes"] = tuple(str(c) for c in kwargs["classes"])
    for key, field in SPLIT_CONFIG_KEYS.items():
        if key in split:
            kwargs[field] = split[key]
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
# EC labels


def parse_ec_numbers(text: str) -> list[str]:
    """Split UniProt's `; `-separated EC field; tolerant of stray spaces and trailing `;`.

    An `EC ` prefix (`EC 1.1.1.1`, as in UniProt's flat files) is dropped.
    """
    ecs = (_EC_PREFIX.sub("", ec.strip()) for ec in str(text).split(";"))
    return [ec.strip() for ec in ecs if ec.strip()]


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
