"""The figure of the class-specific targets (`kneurons.classes.rankings`): per method and layer
type, the matrices of each class's own units against every evaluated class
(`plot_class_matrix`), read from the per-evaluated-class table of `kneurons.classes.effects`.
Imports no torch; matplotlib only when a figure is drawn.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from kneurons.classes.rankings import operation_of
from kneurons.format import class_header, pct
from kneurons.vocab import format_retention


def plot_class_matrix(
    effects: pd.DataFrame, path_png: str | os.PathLike, method: str, layer_type: str
) -> None:
    """Matrices of one method and layer type, a column of panels per (factor, retention), rows
    the class whose own units were changed, columns the evaluated class. Top: the change of
    the evaluated class's mean true-class probability minus the random units' mean change (a
    class-specific selection is a strong diagonal; a strong off-diagonal cell is off-target
    damage). Bottom: the change of the log-odds of the SELECTED class's probability p(c) on the
    evaluated class's sequences (knowledge of class-c inputs: the diagonal alone; an output
    push: the whole row alike). Blue lowered, red raised. Writes a PNG and an SVG beside it."""
    from kneurons.figures import pyplot, save_figure

    plt = pyplot()
    sub = effects[(effects["method"] == method) & (effects["layer_type"] == layer_type)]
    if sub.empty:
        fig, ax = plt.subplots(figsize=(5, 1.5))
        ax.axis("off")
        ax.text(0.5, 0.5, f"no class-specific rows for {method}, {layer_type}", ha="center")
        save_figure(fig, path_png)
        return
    column = "corrected_delta_prob"
    if sub[column].isna().all():
        column = "delta_prob"
    pairs = zip(sub["factor"].astype(float), sub["retention"].astype(float), strict=True)
    cells = sorted(set(pairs))
    classes = sorted(sub["evaluated_class"].unique(), key=str)
    fig, axes = plt.subplots(
        2, len(cells), figsize=(1.6 + 0.55 * len(classes) * len(cells) + 1.2 * len(cells), 8.2),
        squeeze=False, gridspec_kw={"hspace": 0.55},
    )  # fmt: skip
    corrected = column.startswith("corrected")
    rows = [
        (column, "evaluated class's true-class p", "Δ" + (" − random mean" if corrected else "")),
        ("delta_selected_logodds", "p(units' class) on the evaluated class", "Δ log-odds"),
    ]
    for axes_row, (value, what, label) in zip(axes, rows, strict=True):
        limit = float(np.nanmax(np.abs(sub[value].to_numpy()), initial=0.0)) or 1.0
        image = None
        for ax, (factor, retention) in zip(axes_row, cells, strict=True):
            part = sub[(sub["factor"] == factor) & (sub["retention"] == retention)]
            image = _matrix_panel(ax, part, value, classes, limit)
            operation = f"{operation_of(factor)} ×{format_retention(factor)}, top {pct(retention)}"
            ax.set_title(f"{operation}\n{what}", fontsize=8)
        axes_row[0].set_ylabel("units of class", fontsize=8)
        fig.colorbar(image, ax=list(axes_row), shrink=0.8, label=label)
    title = f"{method}, {layer_type}: each class's own units, per evaluated class"
    fig.suptitle(title, fontsize=10)
    save_figure(fig, path_png)


def _matrix_panel(ax, part: pd.DataFrame, value: str, classes: list, limit: float):
    grid = part.pivot_table(
        index="selected_class", columns="evaluated_class", values=value, aggfunc="mean"
    ).reindex(index=classes, columns=classes)
    image = ax.imshow(grid.to_numpy(), cmap="RdBu_r", vmin=-limit, vmax=limit)
    for (r, c), v in np.ndenumerate(grid.to_numpy()):
        if np.isfinite(v):
            ax.text(c, r, f"{v:+.2f}", ha="center", va="center", fontsize=7)
    labels = [class_header(c) for c in classes]
    ax.set_xticks(range(len(classes)), labels, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(classes)), labels, fontsize=8)
    ax.set_xlabel("evaluated class", fontsize=8)
    return image
