"""The selection stage's text in the summary: how stable the selection is across split halves
of the scoring examples and across fine-tuning seeds (`stability_section`, from the table of
`kneurons.selection.stability`).
"""

from __future__ import annotations

import pandas as pd

from kneurons.format import MISSING_CELL, fmt, md_table, pct


def stability_section(stability: pd.DataFrame | None) -> str:
    """Split-half (and, where given, across fine-tuning seeds) overlap of the top r% and the rank
    correlation of the scores, per method and layer type."""
    if stability is None or stability.empty:
        return ""
    parts = [
        "## Stability of the selection",
        "",
        "Would the same neurons be chosen from other scoring examples? Each method's scores "
        "are also computed on two disjoint halves of the scoring examples (alternating within "
        "each class); J: Jaccard overlap of the two halves' top r% (over all layers of the "
        "type), beside chance, the Jaccard two unrelated selections of that size have; "
        "ρ: Spearman correlation of the two halves' scores over all units; ρ full: the "
        "Spearman-Brown estimate for two full samples (each half has half the examples, so "
        "split-half figures understate the full selection's stability). 1 = identical; "
        "chance = the selection says nothing beyond its sample.",
        "",
    ]
    for comparison, title in (("split_half", "Split halves of the scoring examples"),
                              ("finetune_seed", "Across fine-tuning seeds")):  # fmt: skip
        sub = stability[stability["comparison"] == comparison]
        if sub.empty:
            continue
        retentions = sorted(sub["retention"].unique(), reverse=True)
        header = ["models"] if comparison == "finetune_seed" else []
        header += ["method", "layer type", *(f"J {pct(r)} (chance)" for r in retentions), "ρ"]
        if comparison == "split_half":
            header.append("ρ full")
        rows = []
        keys = ["model", "model_b", "method", "layer_type"]
        for (model_a, model_b, method, layer_type), g in sub.groupby(keys, sort=False):
            by_r = g.set_index("retention")
            row = [f"{model_a} vs {model_b}"] if comparison == "finetune_seed" else []
            row += [method, layer_type]
            row += [
                f"{fmt(by_r.at[r, 'jaccard'], 2)} ({fmt(by_r.at[r, 'jaccard_chance'], 3)})"
                if r in by_r.index
                else MISSING_CELL
                for r in retentions
            ]
            row.append(fmt(g["spearman"].iloc[0], 2))
            if comparison == "split_half":
                row.append(fmt(g["spearman_brown"].iloc[0], 2))
            rows.append(row)
        parts += [f"### {title}", "", md_table(header, rows), ""]
    return "\n".join(parts).rstrip()
