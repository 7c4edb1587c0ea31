"""The site-recovery figure (`plot_site_recovery`): the site AUROC of each method's residue maps
(`kneurons.residues.recovery.recovery_table`), plain and contrast maps, against the random seeds'
spread. Imports no torch; matplotlib only when a figure is drawn.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from kneurons.figures import method_colors, pyplot, save_figure
from kneurons.residues.recovery import (
    CONTRAST,
    MAP_KINDS,
    MAP_VALUES,
    PLAIN,
    SITE_KINDS,
    family_order,
    with_map_kind,
)
from kneurons.vocab import RANDOM, TARGET_ORDER, order_of


def plot_site_recovery(recovery: pd.DataFrame, path_png: str | os.PathLike) -> None:
    """Bars: site AUROC of each method's residue maps, a panel row per (site kind, map) and a
    panel per retention, plain maps left and contrast maps (minus the random selections' mean
    map) right, a bar group per layer type; random seeds as mean with min-max whiskers; 0.5
    dashed. Writes `path_png` and an SVG beside it."""
    plt = pyplot()
    if recovery is None or recovery.empty:
        fig, ax = plt.subplots(figsize=(6, 2))
        ax.axis("off")
        ax.text(0.5, 0.5, "no site annotations: nothing to recover", ha="center")
        save_figure(fig, path_png)
        return
    recovery = with_map_kind(recovery)
    kinds = order_of(recovery["site_kind"], SITE_KINDS)
    panels = [(k, m) for k in kinds for m in MAP_VALUES if m in set(recovery["map"])]
    retentions = sorted(recovery["retention"].unique(), reverse=True)
    map_kinds = [k for k in MAP_KINDS if k in set(recovery["map_kind"])]
    grid = [(r, mk) for mk in map_kinds for r in retentions]  # plain panels, then contrast
    methods = family_order(recovery["method_family"].unique())
    colors = method_colors([m for m in methods if m != RANDOM])
    nrows, ncols = len(panels), len(grid)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(1.2 + 3.8 * ncols, 0.8 + 2.6 * nrows), squeeze=False
    )
    width = 0.8 / max(1, len(methods))
    for i, (kind, value) in enumerate(panels):
        for j, (r, map_kind) in enumerate(grid):
            ax = axes[i, j]
            sub = recovery[
                (recovery["site_kind"] == kind)
                & (recovery["map"] == value)
                & (recovery["retention"] == r)
                & (recovery["map_kind"] == map_kind)
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
            what = f"{value} map" if map_kind == PLAIN else f"{value} map − random mean"
            ax.set_title(f"{kind}, {what}, keep {float(r):g}%", fontsize=9)
            if j == 0:
                ax.set_ylabel("site AUROC")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8, frameon=False)
    title = "Do the kept neurons act on the known sites? (0.5 = chance)"
    if CONTRAST in map_kinds:
        title += "\nleft: plain maps; right: contrast maps (random seeds: each minus the others)"
    fig.suptitle(title, fontsize=10)
    # the legend takes fixed room whatever the panel count; tight_layout makes room for the title
    fig.tight_layout(rect=(0, 0.4 / fig.get_figheight(), 1, 1))
    save_figure(fig, path_png)
