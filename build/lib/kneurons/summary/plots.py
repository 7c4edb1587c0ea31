"""The summary figures of one model, each written as a PNG and an SVG beside it: accuracy vs
retention, per-class accuracy, where the selected units lie (heatmap by layer x layer type) and
each layer type's enrichment in the group targets."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np
import pandas as pd

from kneurons.figures import method_colors, pyplot, save_figure
from kneurons.format import method_order, target_order
from kneurons.summary.baseline import Statistics, add_statistics
from kneurons.summary.tables import (
    OPTION_DEFAULTS,
    of_variant,
    one_model,
    per_class,
    unmasked_rows,
    variant_rows,
    variants,
)
from kneurons.vocab import RANDOM


def _placeholder(path_png: str | os.PathLike, message: str) -> None:
    """A small figure that only says why there is nothing to draw (the file is still an output)."""
    fig, ax = pyplot().subplots(figsize=(6, 2))
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center")
    save_figure(fig, path_png)


def chance_level(unmasked: pd.DataFrame, chance: float | None = None) -> float | None:
    """`chance` (the test set's majority-class rate) when known; else 1 / number of classes
    from the unmasked row's per-class accuracy (None without it)."""
    if chance is not None:
        return chance
    if unmasked.empty:
        return None
    classes = per_class(unmasked.iloc[0])
    return 1.0 / len(classes) if classes else None


def plot_accuracy_vs_retention(
    table: pd.DataFrame | Statistics,
    path_png: str | os.PathLike,
    variant: Sequence[str] | None = None,
    level: float = 0.95,
) -> None:
    """Accuracy vs retained neurons for one variant, a panel per target: each method with its
    bootstrap CI, the random mean with ± std and central band, unmasked and chance lines."""
    from matplotlib.ticker import FixedFormatter, FixedLocator, NullFormatter, NullLocator

    plt = pyplot()
    stats = table if isinstance(table, Statistics) else add_statistics(table, level=level)
    table = stats.table
    model = one_model(table, "plot_accuracy_vs_retention")
    found = variants(table)
    if variant is None:
        if len(found) > 1:
            raise ValueError(f"several masking variants present {found}; pass `variant`")
        variant = found[0] if found else tuple(OPTION_DEFAULTS.values())
    masked = variant_rows(table, variant)
    unmasked = unmasked_rows(table)
    targets = target_order(masked["target"])
    if not targets:
        raise ValueError(f"no masked evaluations to plot for model {model!r}, {variant}")
    band = of_variant(stats.random, variant)
    unmasked_acc = float(unmasked["accuracy"].iloc[0]) if not unmasked.empty else None
    chance = chance_level(unmasked, stats.chance)

    methods = method_order(masked.loc[masked["method_family"] != RANDOM, "method"].unique())
    colors = method_colors(methods)
    retentions_all = sorted(masked["retention"].unique())
    ncols = min(3, len(targets))
    nrows = math.ceil(len(targets) / ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(4.4 * ncols, 3.6 * nrows + 0.9), sharey=True, squeeze=False
    )
    handles: dict[str, object] = {}
    for ax, target in zip(axes.flat, targets, strict=False):
        sub = masked[masked["target"] == target]
        t_band = band[band["target"] == target].sort_values("retention")
        if not t_band.empty:
            x = t_band["retention"].to_numpy(dtype=float)
            mean = t_band["mean"].to_numpy(dtype=float)
            std = t_band["std"].fillna(0.0).to_numpy(dtype=float)
            n = int(t_band["n_seeds"].max())
            handles[f"random central {level:.0%} band"] = ax.fill_between(
                x, t_band["band_low"], t_band["band_high"], color="grey", alpha=0.15, lw=0
            )
            handles["random mean ± std"] = ax.fill_between(
                x, mean - std, mean + std, color="grey", alpha=0.35, linewidth=0
            )
            (line,) = ax.plot(x, mean, color="grey", marker="o", markersize=3, linewidth=1.2)
            handles[f"random (mean, {n} seeds)"] = line
        for i, method in enumerate(methods):
            rows = sub[sub["method"] == method].sort_values("retention")
            if rows.empty:
                continue
            # a small sideways shift (log axis) keeps the methods' error bars apart
            dodge = 10 ** (0.02 * (i - (len(methods) - 1) / 2))
            x = rows["retention"].to_numpy(dtype=float) * dodge
            y = rows["accuracy"].to_numpy(dtype=float)
            lo = rows["accuracy_ci_low"].to_numpy(dtype=float)
            hi = rows["accuracy_ci_high"].to_numpy(dtype=float)
            yerr = None
            if not np.isnan(lo).any():
                yerr = np.vstack([np.clip(y - lo, 0, None), np.clip(hi - y, 0, None)])
            container = ax.errorbar(
                x, y, yerr=yerr, marker="o", color=colors[method], linewidth=1.5, capsize=3
            )
            handles[method] = container.lines[0]
        if unmasked_acc is not None:
            handles["unmasked"] = ax.axhline(unmasked_acc, color="black", linestyle="--", lw=1)
        if chance is not None:
            handles["chance (majority class)"] = ax.axhline(
                chance, color="black", linestyle=":", lw=1
            )
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(FixedLocator(retentions_all))
        ax.xaxis.set_major_formatter(FixedFormatter([f"{r:g}" for r in retentions_all]))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.xaxis.set_minor_formatter(NullFormatter())
        lo, hi = min(retentions_all), max(retentions_all)
        ax.set_xlim(lo / 1.5, hi * 1.5)
        ax.set_ylim(0.0, 1.0)
        ax.set_title(target)
        ax.grid(True, alpha=0.3)
        ax.set_xlabel("selected neurons (% of pool)")
    for ax in axes.flat[len(targets) :]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel("test accuracy")
    mode, scope, direction = variant
    verb = "keeping" if direction == "keep" else "removing"
    fig.suptitle(
        f"{model}: accuracy when {verb} the top neurons ({mode} ablation, scope {scope})\n"
        f"error bars: bootstrap {level:.0%} CI over test sequences"
    )
    labels = sorted(
        handles,
        key=lambda k: (
            0 if k in methods else 1 if k.startswith("random (") else 2 if "random" in k else 3
        ),
    )
    fig.legend(
        [handles[k] for k in labels],
        labels,
        loc="lower center",
        ncol=min(4, max(1, len(handles))),
        frameon=False,
    )
    legend_rows = math.ceil(len(handles) / 4)
    fig.tight_layout(rect=(0, 0.25 * legend_rows / (3.6 * nrows + 0.9), 1, 1))
    save_figure(fig, path_png)


def plot_selection_heatmap(
    by_layer: pd.DataFrame,
    path_png: str | os.PathLike,
    method: str,
    scope: str,
    group_ranking: str | None = None,
) -> None:
    """Enrichment of selected neurons by layer (rows) x layer type (columns), a panel per
    retention, for one method and scope (the reference study's figures 3-5). Cells show the
    number selected; colour is enrichment over a uniform choice (1 = white)."""
    from matplotlib.colors import TwoSlopeNorm

    plt = pyplot()
    rows = by_layer[by_layer["method"] == method]
    if scope == "layer_type":
        rows = rows[rows["target"] == rows["layer_type"]]
    else:
        rows = rows[rows["target"] == scope]
        ranking = group_ranking or next(iter(rows["group_ranking"].dropna()), None)
        rows = rows[rows["group_ranking"] == ranking]
    if rows.empty:
        raise ValueError(f"no selection for method {method!r}, scope {scope!r}")
    model = one_model(rows, "plot_selection_heatmap")
    retentions = sorted(rows["retention"].unique(), reverse=True)
    types = target_order(rows["layer_type"].unique())
    layers = sorted(rows["layer"].unique())
    vmax = max(2.0, float(rows["enrichment"].max()))
    norm = TwoSlopeNorm(vmin=0.0, vcenter=1.0, vmax=vmax)
    ncols = min(3, len(retentions))
    nrows = math.ceil(len(retentions) / ncols)
    width = max(3.2, 0.9 * len(types) + 1.6)
    height = max(2.6, 0.42 * len(layers) + 1.4)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(width * ncols + 1.2, height * nrows + 0.6), squeeze=False
    )
    image = None
    for ax, r in zip(axes.flat, retentions, strict=False):
        sub = rows[rows["retention"] == r]
        grid = sub.pivot_table(index="layer", columns="layer_type", values="enrichment")
        grid = grid.reindex(index=layers, columns=types)
        counts = sub.pivot_table(index="layer", columns="layer_type", values="n_selected")
        counts = counts.reindex(index=layers, columns=types)
        image = ax.imshow(grid.to_numpy(dtype=float), cmap="RdBu_r", norm=norm, aspect="auto")
        for i in range(len(layers)):
            for j in range(len(types)):
                c = counts.iat[i, j]
                if pd.notna(c):
                    ax.text(j, i, str(int(c)), ha="center", va="center", fontsize=7)
        ax.set_xticks(range(len(types)), types, rotation=30, ha="right")
        ax.set_yticks(range(len(layers)), [str(layer) for layer in layers])
        ax.set_xlabel("layer type")
        ax.set_ylabel("layer")
        ax.set_title(f"top {float(r):g}%")
    for ax in axes.flat[len(retentions) :]:
        ax.set_visible(False)
    where = "within each layer type" if scope == "layer_type" else f"pool {scope}, {ranking}"
    fig.suptitle(f"{model}, {method}: where the selected neurons are ({where})")
    fig.tight_layout(rect=(0, 0, 0.86, 0.95))
    cax = fig.add_axes((0.88, 0.15, 0.015, 0.7))
    fig.colorbar(image, cax=cax, label="enrichment over uniform")
    save_figure(fig, path_png)


def plot_type_enrichment(by_type: pd.DataFrame, path_png: str | os.PathLike) -> None:
    """Bars: enrichment of each layer type in a group target's selection, per method, a panel
    per (target, ranking) and retention; random seeds as mean with their central band."""
    plt = pyplot()
    if by_type.empty:
        _placeholder(path_png, "only one layer type scored: no cross-type enrichment")
        return
    model = one_model(by_type, "plot_type_enrichment")
    panels = (
        by_type[["target", "group_ranking"]]
        .drop_duplicates()
        .sort_values(["target", "group_ranking"])
    )
    retentions = sorted(by_type["retention"].unique(), reverse=True)
    methods = method_order(
        by_type["method"].where(by_type["method_family"] != RANDOM, RANDOM).unique()
    )
    colors = method_colors([m for m in methods if m != RANDOM])
    nrows, ncols = len(panels), len(retentions)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(3.6 * ncols + 0.5, 3.0 * nrows + 1.0), squeeze=False, sharey="row"
    )
    handles = {}
    for i, (target, ranking) in enumerate(panels.itertuples(index=False)):
        pr = by_type[(by_type["target"] == target) & (by_type["group_ranking"] == ranking)]
        types = target_order(pr["layer_type"].unique())
        x = np.arange(len(types))
        width = 0.8 / max(1, len(methods))
        for j, r in enumerate(retentions):
            ax = axes[i, j]
            sub = pr[pr["retention"] == r]
            for k, method in enumerate(methods):
                offset = (k - (len(methods) - 1) / 2) * width
                if method == RANDOM:
                    rand = sub[sub["method_family"] == RANDOM]
                    if rand.empty:
                        continue
                    g = rand.groupby("layer_type")["enrichment"]
                    mean = g.mean().reindex(types).to_numpy()
                    lo = g.quantile(0.025).reindex(types).to_numpy()
                    hi = g.quantile(0.975).reindex(types).to_numpy()
                    bar = ax.bar(
                        x + offset,
                        mean,
                        width,
                        color="lightgrey",
                        yerr=np.vstack([mean - lo, hi - mean]),
                        capsize=2,
                    )
                    handles["random (mean, 95% band of seeds)"] = bar
                else:
                    e = sub[sub["method"] == method].set_index("layer_type")["enrichment"]
                    values = e.reindex(types).to_numpy()
                    bar = ax.bar(x + offset, values, width, color=colors[method])
                    handles[method] = bar
                    for xi, value in zip(x + offset, values, strict=True):
                        if value == 0:  # an empty bar would be invisible: say 0
                            ax.text(xi, 0, "0", ha="center", va="bottom", fontsize=7,
                                    color=colors[method])  # fmt: skip
            ax.axhline(1.0, color="black", lw=0.8, linestyle="--")
            ax.set_xticks(x, types, rotation=30, ha="right")
            ax.set_title(f"pool {target} ({ranking}), top {float(r):g}%", fontsize=9)
            if j == 0:
                ax.set_ylabel("enrichment over uniform")
            ax.grid(True, axis="y", alpha=0.3)
    fig.suptitle(f"{model}: which layer types hold the selected neurons")
    fig.legend(list(handles.values()), list(handles), loc="lower center", ncol=4, frameon=False)
    fig.tight_layout(rect=(0, 0.6 / (3.0 * nrows + 1.0), 1, 0.95))
    save_figure(fig, path_png)


def plot_per_class_accuracy(
    table: pd.DataFrame,
    path_png: str | os.PathLike,
    variant: Sequence[str],
) -> None:
    """Per-class test accuracy (recall) of masked models: a heatmap per target, rows
    method @ retention (random: mean over seeds), columns EC classes, the unmasked model on top."""
    plt = pyplot()
    model = one_model(table, "plot_per_class_accuracy")
    masked = variant_rows(table, variant)
    unmasked = unmasked_rows(table)
    targets = target_order(masked["target"])
    if not targets:
        raise ValueError(f"no masked evaluations to plot for {model!r}, {variant}")
    classes = list(per_class(masked.iloc[0]).keys())
    panels = []
    for target in targets:
        sub = masked[masked["target"] == target]
        labels, values = [], []
        if not unmasked.empty:
            pc = per_class(unmasked.iloc[0])
            labels.append("unmasked")
            values.append([pc.get(c, np.nan) for c in classes])
        fam = sub["method"].where(sub["method_family"] != RANDOM, RANDOM)
        for method in method_order(fam.unique()):
            for r in sorted(sub["retention"].unique(), reverse=True):
                rows = sub[(fam == method) & (sub["retention"] == r)]
                pcs = pd.DataFrame([per_class(x) for _, x in rows.iterrows()])
                labels.append(f"{method} @ {float(r):g}%")
                values.append([pcs[c].mean() if c in pcs else np.nan for c in classes])
        panels.append((target, labels, np.asarray(values, dtype=float)))
    ncols = min(3, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    n_rows_max = max(len(p[1]) for p in panels)
    fig, axes = plt.subplots(
        nrows,
        ncols,
        figsize=(ncols * (0.6 * len(classes) + 3.4), nrows * (0.3 * n_rows_max + 1.4) + 0.6),
        squeeze=False,
    )
    image = None
    for ax, (target, labels, values) in zip(axes.flat, panels, strict=False):
        image = ax.imshow(values, cmap="viridis", vmin=0, vmax=1, aspect="auto")
        for i in range(values.shape[0]):
            for j in range(values.shape[1]):
                v = values[i, j]
                if not np.isnan(v):
                    ax.text(
                        j,
                        i,
                        f"{v:.2f}",
                        ha="center",
                        va="center",
                        fontsize=6,
                        color="white" if v < 0.5 else "black",
                    )
        ax.set_xticks(range(len(classes)), [f"EC {c}" for c in classes], rotation=30)
        ax.set_yticks(range(len(labels)), labels, fontsize=7)
        ax.set_title(target)
        ax.set_xlabel("true class")
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    fig.suptitle(f"{model}: per-class test accuracy under masking ({'/'.join(variant)})")
    fig.tight_layout(rect=(0, 0, 0.92, 0.95))
    cax = fig.add_axes((0.94, 0.15, 0.012, 0.7))
    fig.colorbar(image, cax=cax, label="recall")
    save_figure(fig, path_png)


def plot_stability(
    stability: pd.DataFrame, path_png: str | os.PathLike, comparison: str = "split_half"
) -> None:
    """Jaccard overlap of the two top-r% selections vs retention, a panel per method and a line
    per layer type, with the overlap unrelated selections have (dashed); the legend gives each
    layer type's Spearman correlation of the scores."""
    from matplotlib.ticker import FixedFormatter, FixedLocator, NullFormatter, NullLocator

    plt = pyplot()
    sub = stability[stability["comparison"] == comparison] if not stability.empty else stability
    if sub.empty:
        _placeholder(path_png, "no scored method: no stability to show")
        return
    pairs = sub[["model", "model_b"]].drop_duplicates()
    methods = method_order(sub["method"].unique())
    fig, axes = plt.subplots(
        len(pairs), len(methods), figsize=(4.2 * len(methods), 3.4 * len(pairs) + 0.6),
        squeeze=False, sharey=True,
    )  # fmt: skip
    types = target_order(sub["layer_type"].unique())
    colors = method_colors(types)
    for i, (model_a, model_b) in enumerate(pairs.itertuples(index=False)):
        for j, method in enumerate(methods):
            ax = axes[i, j]
            rows = sub[(sub["model"] == model_a) & (sub["model_b"] == model_b)]
            rows = rows[rows["method"] == method]
            for layer_type in types:
                lt = rows[rows["layer_type"] == layer_type].sort_values("retention")
                if lt.empty:
                    continue
                rho = lt["spearman"].iloc[0]
                label = f"{layer_type} (ρ {rho:.2f})" if pd.notna(rho) else layer_type
                ax.plot(lt["retention"], lt["jaccard"], marker="o", color=colors[layer_type],
                        label=label)  # fmt: skip
                ax.plot(lt["retention"], lt["jaccard_chance"], linestyle="--", lw=0.8,
                        color=colors[layer_type])  # fmt: skip
            ax.set_xscale("log")
            levels = sorted(sub["retention"].unique())  # ticks at the levels, in plain numbers
            ax.xaxis.set_major_locator(FixedLocator(levels))
            ax.xaxis.set_major_formatter(FixedFormatter([f"{r:g}" for r in levels]))
            ax.xaxis.set_minor_locator(NullLocator())
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.set_ylim(0, 1.02)
            ax.set_xlabel("neurons selected (% of the layer type)")
            if j == 0:
                ax.set_ylabel("Jaccard overlap of the two selections")
            what = "two halves of the scoring examples" if comparison == "split_half" else (
                f"{model_a} vs {model_b}"
            )  # fmt: skip
            ax.set_title(f"{method}\n{what}", fontsize=9)
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=7, title="dashed: unrelated selections", title_fontsize=7)
    model = sub["model"].iloc[0]
    title = (
        f"{model}: would the same neurons be chosen from other examples?"
        if comparison == "split_half"
        else "Would the same neurons be chosen after another fine-tuning?"
    )
    fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path_png)
