"""The scoring stage's text in the summary: how closely integrated gradients' attributions sum
to F(1) − F(0) (`completeness_section`, from the completeness metadata of the IG score files).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from kneurons.format import MISSING_CELL, fmt_g, md_table, target_order


def completeness_section(completeness: pd.DataFrame | None) -> str:
    """How closely integrated gradients' attributions sum to F(1) − F(0), per layer type."""
    if completeness is None or completeness.empty:
        return ""
    completeness = completeness.copy()
    for col in ("n_above_tolerance", "steps_max"):
        if col not in completeness.columns:
            completeness[col] = np.nan
    agg = completeness.groupby("layer_type", sort=False).agg(
        model=("model", "first"),
        n_layers=("layer", "nunique"),
        n_examples=("n_examples", "max"),
        gap_mean_abs=("gap_mean_abs", "mean"),
        gap_max_abs=("gap_max_abs", "max"),
        delta_mean_abs=("delta_mean_abs", "mean"),
        n_pairs=("n_examples", "sum"),
        n_above=("n_above_tolerance", lambda x: x.sum(min_count=1)),
        steps_max=("steps_max", "max"),
    )
    rows = []
    for layer_type in target_order(agg.index):
        rec = agg.loc[layer_type]
        rows.append(
            [
                rec["model"],
                layer_type,
                str(int(rec["n_layers"])),
                str(int(rec["n_examples"])) if pd.notna(rec["n_examples"]) else MISSING_CELL,
                fmt_g(rec["gap_mean_abs"]),
                fmt_g(rec["gap_max_abs"]),
                fmt_g(rec["delta_mean_abs"]),
                _steps_cell(rec["steps_max"]),
                f"{int(rec['n_above'])} of {int(rec['n_pairs'])}"
                if pd.notna(rec["n_above"])
                else MISSING_CELL,
            ]
        )
    header = ["model", "layer type", "layers", "examples", "mean |gap|", "max |gap|"]
    header += ["mean |F(1) − F(0)|", "most steps", "above tolerance"]
    return "\n".join(
        [
            "## Integrated-gradients completeness",
            "",
            "gap = sum of a module's IG attributions − (F(1) − F(0)) per example; mean |gap| and "
            "mean |F(1) − F(0)| are averaged over layers, max |gap| is the largest over layers "
            "and examples. Tolerance per (example, module): atol + rtol x |F(1) − F(0)| "
            "(scoring.integrated_gradients); with adaptive refinement those above it have the "
            "panels of their path that hold the gap halved, up to max_steps nodes. Above "
            "tolerance: (example, module) integrals that still miss it, of all computed; their "
            "attributions are approximate.",
            "",
            md_table(header, rows, align=["l", "l", "r", "r", "r", "r", "r", "r", "r"]),
        ]
    )


def _steps_cell(value) -> str:
    return MISSING_CELL if pd.isna(value) else str(int(value))
