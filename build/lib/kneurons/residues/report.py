"""The residue stage's text in the summary: the cells and sentences of the ground-truth section
(`kneurons.summary.sections.ground_truth_section`) that read the site-recovery table
(`kneurons.residues.recovery.recovery_table`): each selection's site AUROC, and in words how each
method's contrast AUROC lies against the random seeds'. Imports no torch.
"""

from __future__ import annotations

import pandas as pd

from kneurons.format import fmt, method_order, pct, target_order
from kneurons.residues.recovery import (
    MAP_VALUES,
    NULL_SITE_KINDS,
    SITE_KINDS,
    contrast_verdicts,
    verdict_words,
)
from kneurons.vocab import RANDOM, order_of


def recovery_cells(rec: pd.DataFrame, family: str) -> dict[tuple[str, str], str]:
    """(site kind, map) -> AUROC cell: the method's value, or random's mean ± std [min, max]."""
    cells = {}
    for (kind, value), rows in rec.groupby(["site_kind", "map"], sort=False):
        values = rows["auroc_mean"].dropna()
        if values.empty:
            continue
        if family == RANDOM:
            std = values.std(ddof=1) if len(values) > 1 else 0.0
            cells[kind, value] = (
                f"{fmt(values.mean())} ± {fmt(std)} [{fmt(values.min())}, {fmt(values.max())}]"
            )
        else:
            cells[kind, value] = fmt(values.iloc[0])
    return cells


def contrast_lines(recovery: pd.DataFrame) -> list[str]:
    """Per layer type and retention, in words: each method's contrast AUROC against the random
    seeds' contrast spread, site kinds with a label first, then decoys (expected near 0.5)."""
    verdicts = contrast_verdicts(recovery)
    verdicts = verdicts[verdicts["verdict"] != ""]
    lines = []
    for retention in sorted(verdicts["retention"].unique(), reverse=True):
        at_r = verdicts[verdicts["retention"] == retention]
        for layer_type in target_order(at_r["layer_type"].unique()):
            sub = at_r[at_r["layer_type"] == layer_type]
            kinds = order_of(sub["site_kind"], SITE_KINDS)
            kinds = [k for k in kinds if k not in NULL_SITE_KINDS] + [
                k for k in kinds if k in NULL_SITE_KINDS
            ]
            parts = []
            for kind in kinds:
                for value in MAP_VALUES:
                    rows = sub[(sub["site_kind"] == kind) & (sub["map"] == value)]
                    if rows.empty:
                        continue
                    what = f"{kind} ({value} map" + (
                        "; expected near 0.5)" if kind in NULL_SITE_KINDS else ")"
                    )
                    said = [
                        f"{family} {verdict_words(rows[rows['method_family'] == family].iloc[0])}"
                        for family in method_order(rows["method_family"].unique())
                    ]
                    parts.append(f"{what}: " + "; ".join(said))
            lines.append(f"- {layer_type} {pct(retention)}: " + ". ".join(parts) + ".")
    return lines
