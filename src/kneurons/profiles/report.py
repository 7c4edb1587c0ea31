"""What the top neurons respond to: the site overlap of the profiled units' windows, pooled per
method and layer type and set against the random reference (random-0), as numbers and words.

Reads the per-unit table of `kneurons.profiles.scan`
(results/summary/{model}/neuron_profiles.parquet):
one row per (method, layer type, unit) with, per site kind K, `n_windows`, `n_inside_K` (windows
whose peak lies in a site of kind K) and `expected_K` (the share of all scanned residues inside
such sites: the chance that a peak drawn at random lands in one). Pooled over a (method, layer
type)'s units, the windows are treated as independent draws: the p-values are a rough guide (two
units can peak in the same sequence), the fractions and ratios are the result. Imports no torch.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from kneurons.format import MISSING_CELL, fmt_p, md_table
from kneurons.residues.recovery import SITE_KINDS
from kneurons.vocab import LAYER_TYPES, SCORING_METHODS, order_of, random_method

REFERENCE = random_method(0)  # the random selection the methods' units are compared with
POOLED_COLUMNS = (
    "method",
    "layer_type",
    "site_kind",
    "n_units",
    "n_windows",
    "n_inside",
    "fraction",
    "expected",
    "enrichment",
    "p_value",
    "reference_fraction",
    "reference_enrichment",
    "p_vs_reference",
)
SITE_WORDS = {
    "motif": "a planted motif",
    "decoy": "a decoy motif",
    "distractor": "a distractor motif",
    "active_site": "an annotated active site",
    "binding_site": "an annotated binding site",
}


def site_kinds(table: pd.DataFrame) -> list[str]:
    """The site kinds a profile table has columns for, in display order (motif first)."""
    kinds = [c.removeprefix("n_inside_") for c in table.columns if c.startswith("n_inside_")]
    return order_of(kinds, SITE_KINDS)


def method_sequence(methods) -> list[str]:
    """Scoring methods in their vocabulary order, then the random reference."""
    return order_of(methods, [*SCORING_METHODS, REFERENCE])


def binomial_sf(k: int, n: int, p: float) -> float:
    """One-sided P(X >= k) for X ~ Binomial(n, p): how surprising k hits of n are at chance p."""
    if n == 0 or k <= 0:
        return 1.0
    if p <= 0:
        return 0.0
    return float(stats.binom.sf(k - 1, n, min(p, 1.0)))


def pooled_overlap(table: pd.DataFrame) -> pd.DataFrame:
    """One row per (method, layer type, site kind): the units' windows pooled (`POOLED_COLUMNS`).

    fraction = n_inside / n_windows; expected: the share of scanned residues in such sites;
    enrichment = fraction / expected; p_value: one-sided binomial test of n_inside against it;
    reference_*: the same layer type's random-0 units (NaN without them), p_vs_reference: a
    one-sided Fisher exact test that the method's windows hit the sites more often than theirs.
    """
    rows = []
    kinds = site_kinds(table)
    if table.empty or not kinds:
        return pd.DataFrame(columns=list(POOLED_COLUMNS))
    counts = {}
    for (method, layer_type), units in table.groupby(["method", "layer_type"], sort=False):
        for kind in kinds:
            n = int(units["n_windows"].sum())
            k = int(units[f"n_inside_{kind}"].sum())
            counts[(method, layer_type, kind)] = (
                len(units),
                n,
                k,
                float(units[f"expected_{kind}"].max()),
            )
    for (method, layer_type, kind), (n_units, n, k, expected) in counts.items():
        fraction = k / n if n else np.nan
        ref = counts.get((REFERENCE, layer_type, kind))
        ref_fraction = ref[2] / ref[1] if ref and ref[1] else np.nan
        p_ref = np.nan
        if ref and ref[1] and n and method != REFERENCE:
            contingency = [[k, n - k], [ref[2], ref[1] - ref[2]]]
            p_ref = float(stats.fisher_exact(contingency, alternative="greater").pvalue)
        rows.append(
            {
                "method": method,
                "layer_type": layer_type,
                "site_kind": kind,
                "n_units": n_units,
                "n_windows": n,
                "n_inside": k,
                "fraction": fraction,
                "expected": expected,
                "enrichment": fraction / expected if expected > 0 else np.nan,
                "p_value": binomial_sf(k, n, expected),
                "reference_fraction": ref_fraction,
                "reference_enrichment": ref_fraction / expected if expected > 0 else np.nan,
                "p_vs_reference": p_ref,
            }
        )
    out = pd.DataFrame(rows, columns=list(POOLED_COLUMNS))
    method_rank = {m: i for i, m in enumerate(method_sequence(out["method"]))}
    type_rank = {t: i for i, t in enumerate(order_of(out["layer_type"], LAYER_TYPES))}
    kind_rank = {k: i for i, k in enumerate(kinds)}
    order = sorted(
        range(len(out)),
        key=lambda i: (
            type_rank[out.at[i, "layer_type"]],
            method_rank[out.at[i, "method"]],
            kind_rank[out.at[i, "site_kind"]],
        ),
    )
    return out.iloc[order].reset_index(drop=True)


def percent(value: float) -> str:
    return MISSING_CELL if value is None or np.isnan(value) else f"{100 * value:.0f}%"


def times(value: float) -> str:
    return MISSING_CELL if value is None or np.isnan(value) else f"{value:.1f}×"


def overlap_sentence(row) -> str:
    """One (method, layer type, site kind) in plain words, with the numbers."""
    where = SITE_WORDS.get(row["site_kind"], f"a {row['site_kind']} site")
    text = (
        f"{row['method']}, {row['layer_type']}: {percent(row['fraction'])} of the top "
        f"{row['n_units']} units' {row['n_windows']} windows peak in {where} (chance "
        f"{percent(row['expected'])}, {times(row['enrichment'])}, p {fmt_p(row['p_value'])})"
    )
    if row["method"] == REFERENCE:
        return text + "; this is the random reference."
    if np.isnan(row["reference_fraction"]):
        return text + f"; no {REFERENCE} units to compare with."
    if row["fraction"] > row["reference_fraction"]:
        verdict = "more often than"
    elif row["fraction"] < row["reference_fraction"]:
        verdict = "less often than"
    else:
        verdict = "as often as"
    return (
        text + f"; {verdict} {REFERENCE}'s units ({percent(row['reference_fraction'])}, "
        f"{times(row['reference_enrichment'])}; p {fmt_p(row['p_vs_reference'])})."
    )


def top_residue_counts(units: pd.DataFrame) -> str:
    """How often each residue is a unit's most enriched one, e.g. "W 5, Y 2" (most first)."""
    if "top_residue" not in units:
        return MISSING_CELL
    counts = units["top_residue"].dropna().loc[lambda s: s != ""].value_counts()
    counts = counts.sort_index().sort_values(ascending=False, kind="mergesort")
    return ", ".join(f"{r} {n}" for r, n in counts.items()) or MISSING_CELL


def section_table(table: pd.DataFrame, pooled: pd.DataFrame) -> str:
    """One row per (layer type, method): units, their most enriched residues, and per site kind
    the share of windows peaking in such a site (× chance)."""
    kinds = order_of(pooled["site_kind"], SITE_KINDS) if len(pooled) else []
    header = ["layer type", "method", "units", "most enriched residue (units)"]
    header += [f"{k}: windows in site (× chance)" for k in kinds]
    rows = []
    types = order_of(table["layer_type"], LAYER_TYPES)
    for layer_type in types:
        of_type = table[table["layer_type"] == layer_type]
        for method in method_sequence(of_type["method"]):
            units = of_type[of_type["method"] == method]
            cells = [layer_type, method, str(len(units)), top_residue_counts(units)]
            part = pooled[(pooled["method"] == method) & (pooled["layer_type"] == layer_type)]
            by_kind = part.set_index("site_kind")
            for kind in kinds:
                if kind not in by_kind.index:
                    cells.append(MISSING_CELL)
                    continue
                r = by_kind.loc[kind]
                cells.append(f"{percent(r['fraction'])} ({times(r['enrichment'])})")
            rows.append(cells)
    return md_table(header, rows, ["l", "l", "r", "l"] + ["r"] * len(kinds))


def profiles_section(table: pd.DataFrame, level: int = 2) -> str:
    """The summary's section "What the top neurons respond to", or "" without profiles.

    `table`: the per-unit profile table (neuron_profiles.parquet). Says, per method and layer
    type, which residue the top units' most active windows are most enriched in, and how often
    those windows peak inside a known site (planted motif or annotated site) against chance and
    against random-0's units, with a sentence per method and layer type for the main site kind
    (motif, else the annotated sites).
    """
    if table is None or table.empty:
        return ""
    hashes = "#" * level
    n_units = int(table.groupby(["method", "layer_type"]).size().max())
    top_k = int(table["n_windows"].max())
    pooled = pooled_overlap(table)
    lines = [
        f"{hashes} What the top neurons respond to",
        "",
        f"For the top {n_units} units of each method and layer type (all-class ranking over all "
        f"layers of the type), the {top_k} test sequences where each unit is most active, one "
        "window around its peak residue per sequence (neuron_profiles.md has the windows, their "
        "residue composition and a logo per method and layer type). Most enriched residue: the "
        "residue most over-represented in a unit's windows against all scanned residues, counted "
        "over the units.",
        "",
    ]
    if pooled.empty:
        lines += [
            "The input has no site annotations: no site overlap to report.",
            "",
            section_table(table, pooled),
            "",
        ]
        return "\n".join(lines)
    lines += [
        "In site: share of the windows whose peak lies inside such a site, against chance (the "
        f"share of all scanned residues inside one) and against the {REFERENCE} units of the "
        "same layer type. p: one-sided binomial test against chance, and one-sided Fisher test "
        f"against {REFERENCE}, windows pooled over units as if independent (a rough guide).",
        "",
        section_table(table, pooled),
        "",
    ]
    present = set(pooled["site_kind"])
    main = [k for k in ("motif", "active_site", "binding_site") if k in present]
    for kind in main or site_kinds(table)[:1]:
        for _, row in pooled[pooled["site_kind"] == kind].iterrows():
            if row["method"] != REFERENCE:
                lines.append(f"- {overlap_sentence(row)}")
    lines.append("")
    return "\n".join(lines)
