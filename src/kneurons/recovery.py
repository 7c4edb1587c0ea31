"""How well residue maps find known sites: AUROC of site residues, tables, markdown and a plot.

Sites are planted motifs (synthetic data; kinds `motif`, `decoy`) or annotated active/binding
sites of a UniProt table (`active_site`, `binding_site`); a residue map (`kneurons.residues`)
has one row per (accession, position) and the columns of `MAP_VALUES`. A map recovers a site
kind when its site residues outrank the other residues of the same sequence: AUROC 1, chance 0.5.
Imports no torch (this is the site_recovery job, separate from the residue maps).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

import numpy as np
import pandas as pd

from kneurons.figures import method_colors, pyplot, save_figure
from kneurons.vocab import RANDOM, TARGET_ORDER, order_of, parse_method

MAP_VALUES = ("activation", "ig")  # the value columns of a residue map
SITE_KINDS = ("motif", "active_site", "binding_site", "decoy", "distractor")  # display order


def auroc(values: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney, ties count half); NaN without both classes."""
    values = np.asarray(values, dtype=np.float64)
    positive = np.asarray(positive, dtype=bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = pd.Series(values).rank(method="average").to_numpy()
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def site_mask(maps: pd.DataFrame, sites: pd.DataFrame) -> np.ndarray:
    """True for the rows of `maps` (accession, position) that fall inside any site interval."""
    inside = np.zeros(len(maps), dtype=bool)
    by_accession = maps.groupby("accession").indices
    for site in sites.itertuples(index=False):
        idx = by_accession.get(site.accession)
        if idx is None:
            continue
        pos = maps["position"].to_numpy()[idx]
        inside[idx[(pos >= site.start) & (pos <= site.end)]] = True
    return inside


def site_recovery(maps: pd.DataFrame, sites: pd.DataFrame, value: str) -> dict:
    """AUROC of `value` for site residues, per sequence (then averaged) and pooled."""
    positive = site_mask(maps, sites)
    per_sequence = []
    for _, idx in maps.groupby("accession").indices.items():
        score = auroc(maps[value].to_numpy()[idx], positive[idx])
        if not np.isnan(score):
            per_sequence.append(score)
    return {
        "auroc_mean": float(np.mean(per_sequence)) if per_sequence else float("nan"),
        "auroc_pooled": auroc(maps[value].to_numpy(), positive),
        "n_sequences": len(per_sequence),
        "n_site_residues": int(positive.sum()),
    }


_FEATURE = re.compile(r"(?:ACT_SITE|BINDING)\s+(\d+)(?:\.\.(\d+))?")


def parse_site_features(text: str) -> list[tuple[int, int]]:
    """(start, end) intervals from UniProt `ft_act_site` / `ft_binding` text.

    E.g. 'ACT_SITE 57; /note="Proton acceptor"; BINDING 100..104; /ligand="ATP"'.
    """
    return [(int(a), int(b) if b else int(a)) for a, b in _FEATURE.findall(text or "")]


def sites_from_uniprot(table: pd.DataFrame) -> pd.DataFrame:
    """Annotated active and binding sites of a UniProt table (raw or renamed columns)."""
    columns = {
        "Active site": "active_site",
        "ft_act_site": "active_site",
        "Binding site": "binding_site",
        "ft_binding": "binding_site",
    }
    accession = "Entry" if "Entry" in table.columns else "accession"
    rows = []
    for column, kind in columns.items():
        if column not in table.columns:
            continue
        for acc, text in zip(table[accession], table[column], strict=True):
            for start, end in parse_site_features(text):
                rows.append({"accession": acc, "kind": kind, "start": start, "end": end})
    return pd.DataFrame(rows, columns=["accession", "kind", "start", "end"])


def recovery_table(maps: Sequence[pd.DataFrame], sites: pd.DataFrame) -> pd.DataFrame:
    """One row per (selection, site kind, map value) with the AUROC of site residues.

    IG is used signed: a residue that raises the true-class probability ranks high.
    """
    rows = []
    for frame in maps:
        if frame.empty:
            continue
        head = frame.iloc[0]
        family, seed = parse_method(str(head["method"]))
        for kind, kind_sites in sites.groupby("kind"):
            for value in MAP_VALUES:
                stats = site_recovery(frame, kind_sites, value)
                rows.append(
                    {
                        "method": head["method"],
                        "method_family": family,
                        "seed": seed,
                        "layer_type": head["layer_type"],
                        "retention": float(head["retention"]),
                        "site_kind": kind,
                        "map": value,
                        **stats,
                    }
                )
    table = pd.DataFrame(rows)
    if len(table):
        table["seed"] = table["seed"].astype("Int64")
    return table


def recovery_markdown(table: pd.DataFrame, model: str) -> str:
    """Per site kind and map: methods x (layer type, retention) AUROC; random as mean ± std."""
    lines = [f"# Site recovery: {model}", ""]
    if table.empty:
        return "\n".join([*lines, "No site annotations: nothing to recover.", ""])
    lines += [
        "AUROC with which each residue map ranks site residues above the other residues of the "
        "same sequence (mean over sequences; 0.5 = chance). Motif and annotated-site rows should "
        "be high for a method that finds the knowledge neurons; decoy rows should stay near 0.5.",
        "",
    ]
    table = table.assign(column=table["layer_type"] + " " + table["retention"].map("{:g}%".format))
    columns = list(dict.fromkeys(table.sort_values(["layer_type", "retention"])["column"]))
    for (kind, value), part in table.groupby(["site_kind", "map"], sort=True):
        lines += [f"## {kind}: {value} map", ""]
        lines.append("| method | " + " | ".join(columns) + " |")
        lines.append("| :--- |" + " ---: |" * len(columns))
        for family, rows in part.groupby("method_family", sort=True):
            cells = []
            for column in columns:
                values = rows.loc[rows["column"] == column, "auroc_mean"].dropna()
                if values.empty:
                    cells.append("—")
                elif family == RANDOM:
                    std = values.std(ddof=1) if len(values) > 1 else 0.0
                    cells.append(f"{values.mean():.3f} ± {std:.3f}")
                else:
                    cells.append(f"{values.iloc[0]:.3f}")
            lines.append(f"| {family} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def _method_order(families) -> list[str]:
    """Method families alphabetically, the random baseline last."""
    families = set(families)
    return sorted(f for f in families if f != RANDOM) + ([RANDOM] if RANDOM in families else [])


def plot_site_recovery(recovery: pd.DataFrame, path_png: str | os.PathLike) -> None:
    """Bars: site AUROC of each method's residue maps, a panel per (site kind, map) and retention,
    a bar group per layer type; random seeds as mean with min-max whiskers; 0.5 dashed. Writes
    `path_png` and an SVG beside it."""
    plt = pyplot()
    if recovery is None or recovery.empty:
        fig, ax = plt.subplots(figsize=(6, 2))
        ax.axis("off")
        ax.text(0.5, 0.5, "no site annotations: nothing to recover", ha="center")
        save_figure(fig, path_png)
        return
    kinds = order_of(recovery["site_kind"], SITE_KINDS)
    panels = [(k, m) for k in kinds for m in MAP_VALUES if m in set(recovery["map"])]
    retentions = sorted(recovery["retention"].unique(), reverse=True)
    methods = _method_order(recovery["method_family"].unique())
    colors = method_colors([m for m in methods if m != RANDOM])
    nrows, ncols = len(panels), len(retentions)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(1.2 + 3.8 * ncols, 0.8 + 2.6 * nrows), squeeze=False
    )
    width = 0.8 / max(1, len(methods))
    for i, (kind, value) in enumerate(panels):
        for j, r in enumerate(retentions):
            ax = axes[i, j]
            sub = recovery[
                (recovery["site_kind"] == kind)
                & (recovery["map"] == value)
                & (recovery["retention"] == r)
            ]
            types = order_of(sub["layer_type"], TARGET_ORDER)
            x = np.arange(len(types))
            for k, family in enumerate(methods):
                offset = (k - (len(methods) - 1) / 2) * width
                g = sub[sub["method_family"] == family].groupby("layer_type")["auroc_mean"]
                mean = g.mean().reindex(types).to_numpy()
                if family == RANDOM:
                    lo = mean - g.min().reindex(types).to_numpy()
                    hi = g.max().reindex(types).to_numpy() - mean
                    ax.bar(x + offset, mean, width, color="0.75", label="random (min-max)",
                           yerr=np.vstack([lo, hi]), capsize=2, ecolor="0.35")  # fmt: skip
                else:
                    ax.bar(x + offset, mean, width, color=colors[family], label=family)
            ax.axhline(0.5, color="0.3", linestyle="--", linewidth=0.8)
            ax.set_ylim(0, 1)
            ax.set_xticks(x, types, fontsize=8)
            ax.set_title(f"{kind}, {value} map, keep {float(r):g}%", fontsize=9)
            if j == 0:
                ax.set_ylabel("site AUROC")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8, frameon=False)
    fig.suptitle("Do the kept neurons act on the known sites? (0.5 = chance)", fontsize=10)
    fig.tight_layout(rect=(0, 0.06, 1, 0.96))
    save_figure(fig, path_png)
