"""Concept matching in tables and words: per concept the best unit of each kind (neuron,
latent), chosen by validation F1 and reported on test, how many units of the kind pass a test
F1, and the page that puts the best neuron beside the best latent (summary/{model}/concepts.md);
the same in short for the summary (`concepts_block`).

Reads the tables of `kneurons.concepts.matching` (every (concept, unit) row and the concepts
with their residue counts). Imports no torch.
"""

from __future__ import annotations

from collections.abc import Collection

import numpy as np
import pandas as pd

from kneurons.format import MISSING_CELL, fmt, md_table

F1_PASS = 0.5  # a unit "passes" a concept at test F1 above this (config concepts.f1_pass)
MIN_RESIDUES = 10  # fewer validation or test residues: the concept is flagged, not reported
KINDS = ("neuron", "latent")
CLOSE = 0.02  # test F1s closer than this are "about the same"
BEST_COLUMNS = (
    "concept",
    "site_kind",
    "motif",
    "label",
    "kind",
    "n_units",  # units of this kind scanned
    "layer_type",
    "layer",
    "unit",
    "threshold",
    "val_f1",
    "test_precision",
    "test_recall",
    "test_f1",
    "n_pass",  # units of this kind with test F1 > f1_pass (each at its validation threshold)
    "f1_pass",
    "n_val_residues",
    "n_test_residues",
    "test_base_rate",  # share of test residues in the concept
    "all_on_f1",  # F1 of a detector that is on everywhere: the floor any unit should beat
    "flagged",  # too few residues to report the concept as a finding
)


def best_units(
    units: pd.DataFrame,
    concepts: pd.DataFrame,
    n_test_residues: int,
    f1_pass: float = F1_PASS,
    min_residues: int = MIN_RESIDUES,
) -> pd.DataFrame:
    """One row per (concept, kind of unit scanned) (`BEST_COLUMNS`): the unit with the best
    validation F1 (the first in scan order on ties: layer type, layer, unit) with its test
    scores at its validation threshold, and `n_pass`. A concept with fewer than `min_residues`
    validation or test residues is `flagged`; a concept no unit was scanned for has one row per
    kind with no unit."""
    rows = []
    kinds = [k for k in KINDS if k in set(units["kind"])] or ["neuron"]
    kinds += sorted(set(units["kind"]) - set(kinds))
    for concept in concepts.itertuples(index=False):
        rate = concept.n_test_residues / n_test_residues if n_test_residues else float("nan")
        base = {
            "concept": concept.concept,
            "site_kind": concept.site_kind,
            "motif": concept.motif,
            "label": concept.label,
            "n_val_residues": int(concept.n_val_residues),
            "n_test_residues": int(concept.n_test_residues),
            "test_base_rate": rate,
            "all_on_f1": 2 * rate / (1 + rate) if rate == rate else float("nan"),
            "flagged": bool(min(concept.n_val_residues, concept.n_test_residues) < min_residues),
            "f1_pass": float(f1_pass),
        }
        for kind in kinds:
            own = units[(units["concept"] == concept.concept) & (units["kind"] == kind)]
            row = {**base, "kind": kind, "n_units": len(own),
                   "n_pass": int((own["test_f1"] > f1_pass).sum())}  # fmt: skip
            if len(own):
                top = own.iloc[int(np.argmax(own["val_f1"].to_numpy()))]
                row.update({key: top[key] for key in ("layer_type", "layer", "unit", "threshold",
                            "val_f1", "test_precision", "test_recall", "test_f1")})  # fmt: skip
            rows.append(row)
    best = pd.DataFrame(rows, columns=list(BEST_COLUMNS))
    for column in ("layer", "unit"):
        best[column] = best[column].astype("Int64")
    return best


def kept_units(units: pd.DataFrame, n_units: int) -> pd.DataFrame:
    """The rows written to units.parquet: per (concept, layer type), the `n_units` units with
    the best validation F1 (all units for 0); units with validation F1 0 are left out."""
    units = units[units["val_f1"] > 0]
    if n_units > 0:
        order = units.sort_values(["val_f1", "test_f1"], ascending=False, kind="mergesort")
        units = order.groupby(["concept", "layer_type"], sort=False).head(n_units)
    return units.sort_values(["concept", "layer_type", "layer", "unit"], kind="mergesort")


def _unit_cell(row) -> str:
    if pd.isna(row["unit"]):
        return MISSING_CELL
    unit = f"{row['layer_type']} {int(row['layer'])}:{int(row['unit'])}"
    return f"{unit} (> {row['threshold']:g} max)"


def verdict(rows: pd.DataFrame) -> str:
    """One sentence for one concept (its rows of `best_units`)."""
    head = rows.iloc[0]
    name = f"`{head['concept']}`"
    if head["flagged"]:
        return (
            f"{name}: too few residues to judge ({head['n_val_residues']} validation, "
            f"{head['n_test_residues']} test); not a finding."
        )
    scored = rows[rows["unit"].notna()].set_index("kind")
    if scored.empty:
        return f"{name}: no unit was scanned."
    floor = f"a detector on everywhere scores {fmt(head['all_on_f1'])}"
    if {"neuron", "latent"} <= set(scored.index):
        neuron, latent = scored.loc["neuron", "test_f1"], scored.loc["latent", "test_f1"]
        if abs(latent - neuron) < CLOSE:
            words = "the best latent and the best neuron score about the same test F1"
        elif latent > neuron:
            words = "the best latent scores a higher test F1 than the best neuron"
        else:
            words = "the best neuron scores a higher test F1 than the best latent"
        return (
            f"{name}: {words} ({fmt(latent)} and {fmt(neuron)}; {floor}). No interval: "
            "a description of this test set, not a tested difference."
        )
    kind = scored.index[0]
    return (
        f"{name}: the best {kind} reaches test F1 {fmt(scored.iloc[0]['test_f1'])} ({floor}); "
        f"no {'latents' if kind == 'neuron' else 'neurons'} were scanned."
    )


def concepts_markdown(best: pd.DataFrame, model: str, meta: dict) -> str:
    """summary/{model}/concepts.md: a sentence per concept, then the best neuron beside the
    best latent per concept, with the units passing and the residue counts."""
    lines = [
        f"# Concepts: {model}",
        "",
        f"Each unit read as a detector of a concept's residues (on where its activation exceeds a "
        f"fraction of its maximum over the validation residues), over {meta['n_val_sequences']} "
        f"validation sequences ({meta['n_val_residues']} residues) and {meta['n_test_sequences']} "
        f"test sequences ({meta['n_test_residues']} residues). Per unit, the fraction "
        f"({', '.join(f'{t:g}' for t in meta['thresholds'])}) with the best validation F1 is "
        "chosen; per concept and kind of unit, the unit with the best validation F1 is chosen, "
        "and both are reported on test. The best of thousands of units is an optimistic pick on "
        "validation (some unit fits its residues by chance); that is why its test F1, on "
        "sequences the choice did not see, is what counts. Neurons are read by |activation| "
        "except ffn_in (signed, before the GELU); latents by their activation (>= 0).",
        "",
    ]
    if best.empty:
        return "\n".join([*lines, "No concepts: the sites table holds no site.", ""])
    lines += [f"- {verdict(rows)}" for _, rows in best.groupby("concept", sort=False)]
    f1_pass = float(best["f1_pass"].iloc[0])
    kinds = [k for k in KINDS if k in set(best["kind"])]
    header = ["concept", "residues (val / test)"]
    for kind in kinds:
        header += [f"best {kind}", "P", "R", "F1", f"{kind}s F1 > {f1_pass:g}"]
    header += ["all-on F1"]
    rows = []
    for concept, group in best.groupby("concept", sort=False):
        head = group.iloc[0]
        flag = " (too few: flagged)" if head["flagged"] else ""
        cells = [f"`{concept}`", f"{head['n_val_residues']} / {head['n_test_residues']}{flag}"]
        by_kind = group.set_index("kind")
        for kind in kinds:
            row = by_kind.loc[kind]
            passing = f"{int(row['n_pass'])} of {int(row['n_units'])}"
            cells += [_unit_cell(row), fmt(row["test_precision"]), fmt(row["test_recall"]),
                      fmt(row["test_f1"]), passing]  # fmt: skip
        rows.append([*cells, fmt(head["all_on_f1"])])
    lines += [
        "",
        "## Best unit per concept (test precision, recall, F1)",
        "",
        "Unit: layer type, layer:unit and its threshold as a fraction of its validation "
        f"maximum. Units passing: units of the kind with test F1 above {f1_pass:g}, each at its "
        "own validation threshold. All-on F1: the F1 of a detector that is on at every residue "
        "(2 x base rate / (1 + base rate)), the floor a unit must beat.",
        "",
        md_table(header, rows, ["l", "r"] + ["l", "r", "r", "r", "r"] * len(kinds) + ["r"]),
        "",
    ]
    return "\n".join(lines)


def _best_cell(row, poor: Collection[tuple[str, int]]) -> str:
    if row is None or pd.isna(row["unit"]) or pd.isna(row["test_f1"]):
        return MISSING_CELL
    layer = int(row["layer"])
    text = f"{fmt(row['test_f1'])} ({row['layer_type']} {layer}:{int(row['unit'])}"
    return text + (", poor SAE)" if (row["layer_type"], layer) in poor else ")")


def concepts_block(
    best: pd.DataFrame | None, poor: Collection[tuple[str, int]] = (), page: str = "concepts.md"
) -> str:
    """The summary's concept table: per concept the best neuron's test F1 beside the best
    latent's (each chosen on validation, with its unit) and how many units of each kind pass;
    flagged concepts marked, a latent of a poor SAE (`poor`: its (layer type, layer)) too;
    `page`: concepts.md relative to the summary. "" without concepts."""
    if best is None or best.empty:
        return ""
    f1_pass = float(best["f1_pass"].iloc[0])
    rows = []
    for concept, group in best.groupby("concept", sort=False):
        by_kind = {rec["kind"]: rec for _, rec in group.iterrows()}
        head = group.iloc[0]
        cells = [f"`{concept}`" + (" (flagged: too few residues)" if head["flagged"] else "")]
        cells += [_best_cell(by_kind.get(kind), poor) for kind in KINDS]
        for kind in KINDS:
            rec = by_kind.get(kind)
            cells.append(
                MISSING_CELL if rec is None else f"{int(rec['n_pass'])} of {int(rec['n_units'])}"
            )
        rows.append([*cells, fmt(head["all_on_f1"])])
    header = ["concept", "best neuron F1", "best latent F1", f"neurons F1 > {f1_pass:g}",
              f"latents F1 > {f1_pass:g}", "all-on F1"]  # fmt: skip
    return "\n".join(
        [
            "### Concepts: the best neuron beside the best latent",
            "",
            "Each unit read as a detector of a concept's residues; per concept and kind, the unit "
            "with the best validation F1, its F1 on test (layer type layer:unit), and how many "
            f"units of the kind reach test F1 > {f1_pass:g}. All-on F1: a detector on at every "
            "residue, the floor to beat. A flagged concept has too few residues to be a finding. "
            f"Thresholds, precision and recall: [{page}]({page}).",
            "",
            md_table(header, rows, ["l", "r", "r", "r", "r", "r"]),
        ]
    )
