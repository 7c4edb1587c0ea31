"""The ground-truth section of summary.md: per selection with residue maps, the accuracy its kept
neurons hold beside the AUROC with which their residue maps pick out the known sites (planted
motifs, annotated sites, decoys); the cells and sentences are `kneurons.residues.report`'s. One
narrow table per site kind and map value, the verdicts in words first."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from kneurons.format import MISSING_CELL, fmt, md_table, method_order, pct, target_order
from kneurons.residues.recovery import (
    CONTRAST,
    MAP_VALUES,
    MIN_CONTRAST_SEEDS,
    PLAIN,
    SITE_KINDS,
    missing_contrasts,
    with_map_kind,
)
from kneurons.residues.report import contrast_lines, recovery_cells
from kneurons.summary.baseline import Statistics
from kneurons.summary.sections import _accuracy_cell, band_words
from kneurons.summary.tables import of_variant, variant_rows
from kneurons.vocab import RANDOM, order_of

SITE_WORDS = {  # site kind -> plain words, for headings
    "motif": "planted motifs",
    "active_site": "annotated active sites",
    "binding_site": "annotated binding sites",
    "decoy": "decoys (planted in every class, no label)",
    "distractor": "distractors",
}
MAP_WORDS = {"activation": "activation maps", "ig": "integrated-gradients maps"}


def _random_name(sub: pd.DataFrame, band: pd.DataFrame) -> str:
    n = sub.loc[sub["method_family"] == RANDOM, "method"].nunique()
    if band.empty:
        return f"{RANDOM} (maps: {n} seed{'s' * (n != 1)})"
    n_acc = int(band.iloc[0]["n_seeds"])
    if n_acc == n:
        return f"{RANDOM} ({n} seeds)"
    return f"{RANDOM} (maps: {n} seed{'s' * (n != 1)}; accuracy: {n_acc} seeds)"


def _rows(stats, recovery, variant, kind, value, map_kinds) -> list[list[str]]:
    """The rows of one (site kind, map value) table: per retention, layer type and method."""
    evals = variant_rows(stats.table, variant)
    band = of_variant(stats.random, variant)
    plain = recovery[recovery["map_kind"] == PLAIN]
    rows = []
    for retention in sorted(plain["retention"].unique(), reverse=True):
        at_r = recovery[recovery["retention"] == retention]
        for layer_type in target_order(at_r["layer_type"].unique()):
            sub = at_r[at_r["layer_type"] == layer_type]
            ev = evals[(evals["target"] == layer_type) & (evals["retention"] == retention)]
            for family in method_order(sub["method_family"].unique()):
                if family == RANDOM:
                    b = band[(band["target"] == layer_type) & (band["retention"] == retention)]
                    accuracy = (
                        f"{fmt(b.iloc[0]['mean'])} ± {fmt(b.iloc[0]['std'])} "
                        f"[{fmt(b.iloc[0]['band_low'])}, {fmt(b.iloc[0]['band_high'])}]"
                        if not b.empty
                        else MISSING_CELL
                    )
                    name = _random_name(sub, b)
                else:
                    e = ev[ev["method"] == family]
                    accuracy = _accuracy_cell(e.iloc[0]) if not e.empty else MISSING_CELL
                    name = family
                mine = sub[sub["method_family"] == family]
                cells = [
                    recovery_cells(mine[mine["map_kind"] == mk], family).get(
                        (kind, value), MISSING_CELL
                    )
                    for mk in map_kinds
                ]
                rows.append([layer_type, pct(retention), name, accuracy, *cells])
    return rows


def ground_truth_section(
    stats: Statistics,
    recovery: pd.DataFrame | None,
    variant: Sequence[str] = ("zero", "layer_type", "keep"),
    level: float = 0.95,
) -> str:
    """Per selection with a residue map: the accuracy the kept neurons hold (vs the random band)
    beside the AUROC with which their residue maps pick out the known sites (planted motifs,
    annotated sites, decoys), of the plain maps and of the contrast maps (minus the random
    selections' mean map), and in words whether each method's contrast AUROC lies above the
    random seeds'. One table per site kind and map value (six columns: nothing wraps). Empty
    when there is no recovery table."""
    if recovery is None or recovery.empty:
        return ""
    recovery = with_map_kind(recovery)
    plain = recovery[recovery["map_kind"] == PLAIN]
    contrast = recovery[recovery["map_kind"] == CONTRAST]
    kinds = order_of(plain["site_kind"], SITE_KINDS)
    present = set(zip(plain["site_kind"], plain["map"], strict=True))
    map_kinds = [PLAIN, CONTRAST] if not contrast.empty else [PLAIN]
    parts = [
        "## Ground truth: do the kept neurons act on the known sites?",
        "",
        "For each selection with residue maps: test accuracy of the model that keeps only "
        f"these neurons ({' / '.join(variant)}; random: {band_words(level)}) and the "
        "AUROC with which the selected neurons' residue maps rank the site residues above the "
        "rest of their sequence (mean over test sequences; 0.5 = chance; random: mean ± std "
        "[min, max] over seeds). A plain map follows the model's own focus through whatever "
        "units are kept, so random selections already score high on the motifs; the contrast "
        "AUROC is that of the selection's map minus the mean map of the random selections of "
        "the same size (each random seed minus the other seeds' mean, which gives the spread "
        "a selection reaches by chance). A method that finds the knowledge neurons keeps "
        "accuracy above the random band and its contrast maps lie above every random seed's "
        "on the motifs (with n seeds a random selection does so 1 time in n + 1), not on the "
        "decoys, which are planted in every class and carry no label: their contrast AUROC "
        "should stay near 0.5. Per-sequence heat strips: results/residues/; all rows: "
        "site_recovery.parquet.",
    ]
    lines = contrast_lines(recovery) if CONTRAST in map_kinds else []
    if lines:
        parts += [
            "",
            "Contrast AUROC against the random seeds' contrast AUROC (a map many times the "
            "random mean map's size gives a contrast close to its plain map: lying above the "
            "random spread then says little more than that the selection keeps the model's "
            "output):",
            "",
            *lines,
        ]
    missing = missing_contrasts(recovery)
    if missing:
        parts += [
            "",
            f"No contrast AUROC for {', '.join(missing)}: a contrast needs at least "
            f"{MIN_CONTRAST_SEEDS} random seeds of the same layer type and retention.",
        ]
    header = ["layer type", "kept", "method", "accuracy kept [CI]", "AUROC"]
    if CONTRAST in map_kinds:
        header.append("contrast AUROC")
    align = ["l", "r", "l", "r", *(["r"] * (len(header) - 4))]
    for kind in kinds:
        for value in MAP_VALUES:
            if (kind, value) not in present:
                continue
            title = f"{SITE_WORDS.get(kind, kind)}, {MAP_WORDS.get(value, value)}"
            rows = _rows(stats, recovery, variant, kind, value, map_kinds)
            parts += ["", f"### {title[0].upper()}{title[1:]}", "", md_table(header, rows, align)]
    return "\n".join(parts)
