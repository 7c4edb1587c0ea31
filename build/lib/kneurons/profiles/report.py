"""What the top neurons respond to: the site overlap of the profiled units' windows, pooled per
method and layer type and set against the random reference (random-0), as numbers and words.

Reads the per-unit table of `kneurons.profiles.scan`
(results/summary/{model}/neuron_profiles.parquet):
one row per (method, layer type, unit) with, per site kind K, `n_windows`, `n_inside_K` (windows
whose peak lies in a site of kind K) and `expected_K` (the share of all scanned residues inside
such sites: the chance that a peak drawn at random lands in one). Pooled over a (method, layer
type)'s units, the windows are treated as independent draws: the p-values are a rough guide (two
units can peak in the same sequence), the fractions and ratios are the result. Also the profiles
job's own page, neuron_profiles.md (`profiles_markdown`, from the `Profiles` of
`kneurons.profiles.composition`). Imports no torch.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from kneurons.format import MISSING_CELL, class_header, fmt_g, fmt_p, md_table
from kneurons.profiles.composition import Profiles, binomial_sf
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


def _sorted_pairs(table: pd.DataFrame) -> list[tuple[str, str]]:
    types = order_of(table["layer_type"], LAYER_TYPES)
    methods = method_sequence(table["method"])
    present = set(zip(table["method"], table["layer_type"], strict=True))
    return [(m, lt) for lt in types for m in methods if (m, lt) in present]


def profiles_markdown(profiles: Profiles, model: str, n_examples: int = 3) -> str:
    """neuron_profiles.md: per layer type and method, the top units with their most enriched
    residues, site overlap and `n_examples` most active windows, and a sentence per site kind
    comparing the units' overlap with random-0's."""
    table, windows = profiles.table, profiles.windows
    kinds = site_kinds(table)
    top_k, half_width = profiles.top_k, profiles.half_width
    lines = [
        f"# Neuron profiles: {model}",
        "",
        f"{profiles.n_sequences} test sequences ({profiles.n_residues} residues) scanned in one "
        "forward pass. For the top units of each method's all-class ranking of each layer type "
        f"(over all its layers): the {top_k} sequences where the unit is most active, one window "
        f"each (peak residue ± {half_width}, clipped to the sequence). Most active: largest "
        "|activation| (query, key, value, attn_out, ffn_out: the sign of these units carries no "
        "meaning of its own), largest signed activation for ffn_in (read before the GELU). "
        f"{REFERENCE} is the random reference: units drawn without looking at the task. Enriched "
        "residues: log2 of the windows' frequency (with a pseudocount) over the background of all "
        "scanned residues. Ties at cut: scanned sequences whose peak equals the weakest kept "
        "window's (1 = a clean cut; more, e.g. for layer-0 units, which see each residue alone: "
        "the kept windows among them were drawn at random, seeded).",
        "",
    ]
    if profiles.n_sequences <= top_k:
        lines += [
            f"**Only {profiles.n_sequences} sequences for {top_k} windows per unit**: every unit "
            "has a window in every sequence, so only where it peaks tells units apart (raise "
            "profiles.n_sequences or lower profiles.top_k).",
            "",
        ]
    if kinds:
        chance = ", ".join(f"{k} {100 * profiles.expected[k]:.1f}%" for k in kinds)
        lines += [f"Share of scanned residues inside sites (chance of a peak): {chance}.", ""]
    else:
        lines += ["The input has no site annotations: composition only.", ""]
    pooled = pooled_overlap(table)
    for method, layer_type in _sorted_pairs(table):
        units = table[(table["method"] == method) & (table["layer_type"] == layer_type)]
        lines += [f"## {layer_type}: {method}", ""]
        part = pooled[(pooled["method"] == method) & (pooled["layer_type"] == layer_type)]
        for _, row in part.iterrows():
            lines.append(f"- {overlap_sentence(row)}")
        if len(part):
            lines.append("")
        header = ["rank", "unit", "mean response", "ties at cut", "top residues (log2 enr.)"]
        header += [f"{k} (p)" for k in kinds] + ["top class", "most active windows"]
        align = ["r", "l", "r", "r", "l", *["r"] * len(kinds), "l", "l"]
        rows = []
        for unit in units.sort_values("rank").itertuples(index=False):
            mine = windows[
                (windows["method"] == method)
                & (windows["layer_type"] == layer_type)
                & (windows["layer"] == unit.layer)
                & (windows["neuron"] == unit.neuron)
            ].sort_values("window_rank")
            ties = str(unit.cutoff_ties) if hasattr(unit, "cutoff_ties") else MISSING_CELL
            cells = [str(unit.rank), f"L{unit.layer} #{unit.neuron}", fmt_g(unit.mean_response),
                     ties, unit.top_residues or MISSING_CELL]  # fmt: skip
            for kind in kinds:
                n_in = getattr(unit, f"n_inside_{kind}")
                p = getattr(unit, f"p_{kind}")
                cells.append(f"{n_in}/{unit.n_windows} ({fmt_p(p)})")
            if unit.n_windows:
                share = f"{100 * unit.top_class_share:.0f}%"
                cells.append(f"{class_header(unit.top_class)} ({share})")
            else:
                cells.append(MISSING_CELL)
            shown = [
                f"{w.window}@{w.accession}:{w.position}" for w in mine.head(n_examples).itertuples()
            ]
            cells.append(" ".join(f"`{s}`" for s in shown))
            rows.append(cells)
        lines += [md_table(header, rows, align), ""]
    return "\n".join(lines)
