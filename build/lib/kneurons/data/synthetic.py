"""A planted-motif task with a known answer: which residues a classifier must read.

Each class owns one or more motifs (fixed strings or PROSITE-like patterns) planted at random
positions in background sequence drawn from the Swiss-Prot amino-acid composition. Options add
decoy motifs shared by all classes (present but uninformative), label noise, and classes defined
by two motifs together (an AND: other classes carry one of the two alone, so neither k-mer
decides the class by itself), and the null task: labels permuted across all sequences, so no
label depends on its sequence (`permute_labels`). The output is a UniProt-format table (Entry,
EC number, Sequence, Length) that the rest of the pipeline reads unchanged, plus an annotation
table of every planted site. Everything is drawn from one seeded generator, so a seed gives the
same data set.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

# Amino-acid composition of UniProtKB/Swiss-Prot (release statistics, percent).
SWISSPROT_COMPOSITION = {
    "A": 8.25, "R": 5.53, "N": 4.06, "D": 5.45, "C": 1.37, "Q": 3.93, "E": 6.75,
    "G": 7.07, "H": 2.27, "I": 5.96, "L": 9.66, "K": 5.84, "M": 2.42, "F": 3.86,
    "P": 4.70, "S": 6.56, "T": 5.34, "W": 1.08, "Y": 2.92, "V": 6.87,
}  # fmt: skip
AMINO_ACIDS = "".join(SWISSPROT_COMPOSITION)

_ELEMENT = re.compile(
    r"^(?:(?P<x>x)|(?P<any>\[(?P<any_set>[A-Z]+)\])|(?P<not>\{(?P<not_set>[A-Z]+)\})|(?P<aa>[A-Z]))"
    r"(?:\((?P<lo>\d+)(?:,(?P<hi>\d+))?\))?$"
)


class PatternError(ValueError):
    """A motif pattern that cannot be parsed; the message names the pattern and element."""


@dataclass(frozen=True)
class Element:
    """One position class of a pattern, repeated lo..hi times."""

    choices: str  # residues allowed at this position
    lo: int = 1
    hi: int = 1


def parse_pattern(pattern: str) -> list[Element]:
    """Parse a PROSITE-like pattern such as `C-x(2)-[DE]-H` or a plain string such as `WCWHW`.

    Elements are separated by '-': a residue, `x` (any residue), `[DE]` (one of), `{P}` (any but),
    each optionally repeated `(n)` or `(n,m)` times. A pattern without '-' is a fixed string.
    """
    pattern = pattern.strip()
    if not pattern:
        raise PatternError("empty motif pattern")
    if "-" not in pattern and re.fullmatch(r"[A-Z]+", pattern):
        return [Element(aa) for aa in pattern]
    elements = []
    for part in pattern.split("-"):
        match = _ELEMENT.match(part.strip())
        if not match:
            raise PatternError(f"motif {pattern!r}: cannot parse element {part!r}")
        if match["x"]:
            choices = AMINO_ACIDS
        elif match["any"]:
            choices = match["any_set"]
        elif match["not"]:
            choices = "".join(a for a in AMINO_ACIDS if a not in match["not_set"])
        else:
            choices = match["aa"]
        if set(choices) - set(AMINO_ACIDS) or not choices:
            raise PatternError(f"motif {pattern!r}: element {part!r} allows no standard residue")
        lo = int(match["lo"]) if match["lo"] else 1
        hi = int(match["hi"]) if match["hi"] else lo
        if hi < lo or hi == 0:
            raise PatternError(f"motif {pattern!r}: bad repeat in {part!r}")
        elements.append(Element(choices, lo, hi))
    return elements


def sample_pattern(elements: list[Element], rng: np.random.Generator) -> str:
    out = []
    for el in elements:
        for _ in range(int(rng.integers(el.lo, el.hi + 1))):
            out.append(el.choices[int(rng.integers(len(el.choices)))])
    return "".join(out)


@dataclass(frozen=True)
class ClassSpec:
    motifs: tuple[str, ...]
    mode: str = "any"  # "any": one of the motifs per copy; "and": all motifs, in random order


@dataclass(frozen=True)
class SyntheticOptions:
    classes: dict[str, ClassSpec] = field(
        default_factory=lambda: {
            "1": ClassSpec(("WCHWM",)),
            "2": ClassSpec(("YPDYK",)),
            "3": ClassSpec(("C-x(2)-[DE]-H-F",)),
            "4": ClassSpec(("MRNQF",)),
        }
    )
    n_per_class: int = 300
    min_length: int = 80
    max_length: int = 200
    copies: int = 1  # planted copies of the class motif(s) per sequence
    decoys: tuple[str, ...] = ()  # motifs planted in every class
    decoy_rate: float = 0.5  # fraction of sequences that get each decoy
    and_distractor_rate: float = 0.5  # other-class sequences given one motif of an AND class
    label_noise: float = 0.0  # fraction of labels replaced by a random other class
    # the null task: after generation (and label noise), the labels are permuted across all
    # sequences by the same seeded generator; class sizes stay, the motifs no longer tell them
    permute_labels: bool = False
    seed: int = 0

    @classmethod
    def from_config(cls, cfg: dict) -> SyntheticOptions:
        cfg = dict(cfg or {})
        if "classes" in cfg:
            classes = {}
            for label, spec in cfg.pop("classes").items():
                if isinstance(spec, str):
                    spec = {"motifs": [spec]}
                elif isinstance(spec, list):
                    spec = {"motifs": spec}
                classes[str(label)] = ClassSpec(tuple(spec["motifs"]), spec.get("mode", "any"))
            cfg["classes"] = classes
        if "decoys" in cfg:
            cfg["decoys"] = tuple(cfg["decoys"])
        return cls(**cfg)


def _free_slots(occupied: np.ndarray, width: int) -> np.ndarray:
    """Start positions where `width` residues fit without touching an occupied one."""
    if width > len(occupied):
        return np.array([], dtype=int)
    blocked = np.convolve(occupied.astype(int), np.ones(width, dtype=int), mode="valid")
    return np.flatnonzero(blocked == 0)


def generate(options: SyntheticOptions) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return (UniProt-format table, site annotations).

    Annotations: accession, label, kind ("motif", "decoy" or "distractor"), motif (the pattern),
    site (the planted string), start, end (1-based, inclusive, as UniProt features). An
    annotation's label is the class the sequence was generated for (whose motif it carries),
    also where label noise or `permute_labels` gave the sequence another label in the table.
    """
    for label, spec in options.classes.items():
        if spec.mode not in ("any", "and"):
            raise PatternError(f"class {label}: mode must be 'any' or 'and', got {spec.mode!r}")
    if options.min_length > options.max_length:
        raise ValueError("synthetic: min_length must be <= max_length")
    rng = np.random.default_rng(options.seed)
    weights = np.array(list(SWISSPROT_COMPOSITION.values()))
    weights = weights / weights.sum()
    parsed = {m: parse_pattern(m) for spec in options.classes.values() for m in spec.motifs}
    parsed.update({m: parse_pattern(m) for m in options.decoys})
    and_classes = [lbl for lbl, spec in options.classes.items() if spec.mode == "and"]
    labels = list(options.classes)

    rows, sites = [], []
    for label in labels:
        spec = options.classes[label]
        for i in range(options.n_per_class):
            accession = f"SYN{label}{i:05d}"
            length = int(rng.integers(options.min_length, options.max_length + 1))
            seq = list(rng.choice(list(AMINO_ACIDS), size=length, p=weights))
            occupied = np.zeros(length, dtype=bool)
            plants: list[tuple[str, str]] = []  # (kind, pattern)
            for _ in range(options.copies):
                if spec.mode == "and":
                    plants.extend(("motif", m) for m in spec.motifs)
                else:
                    plants.append(("motif", spec.motifs[int(rng.integers(len(spec.motifs)))]))
            for other in and_classes:
                if other != label and rng.random() < options.and_distractor_rate:
                    motifs = options.classes[other].motifs
                    plants.append(("distractor", motifs[int(rng.integers(len(motifs)))]))
            for decoy in options.decoys:
                if rng.random() < options.decoy_rate:
                    plants.append(("decoy", decoy))
            for kind, pattern in plants:
                site = sample_pattern(parsed[pattern], rng)
                slots = _free_slots(occupied, len(site))
                if len(slots) == 0:
                    raise ValueError(
                        f"synthetic: no room for {pattern!r} in a {length}-residue sequence; "
                        "raise min_length or plant fewer motifs"
                    )
                start = int(slots[int(rng.integers(len(slots)))])
                seq[start : start + len(site)] = site
                occupied[start : start + len(site)] = True
                sites.append(
                    {"accession": accession, "label": label, "kind": kind, "motif": pattern,
                     "site": site, "start": start + 1, "end": start + len(site)}
                )  # fmt: skip
            rows.append({"accession": accession, "label": label, "sequence": "".join(seq)})

    table = pd.DataFrame(rows)
    if options.label_noise > 0:
        flip = rng.random(len(table)) < options.label_noise
        for idx in np.flatnonzero(flip):
            others = [lbl for lbl in labels if lbl != table.at[idx, "label"]]
            table.at[idx, "label"] = others[int(rng.integers(len(others)))]
    if options.permute_labels:
        table["label"] = rng.permutation(table["label"].to_numpy())
    uniprot = pd.DataFrame(
        {
            "Entry": table["accession"],
            "EC number": table["label"].map(lambda lbl: f"{lbl}.1.1.1"),
            "Sequence": table["sequence"],
            "Length": table["sequence"].str.len(),
        }
    )
    return uniprot, pd.DataFrame(sites)
