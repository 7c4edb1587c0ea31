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
from kneurons.format import class_header, fmt_signed, pct
from kneurons.vocab import format_retention

NO_SCORES = "no scores"  # the row of a class without per-class scores
NOT_EVALUATED = "not evaluated"  # scored, but no row for this factor and retention


def plot_class_matrix(
    effects: pd.DataFrame, path_png: str | os.PathLike, method: str, layer_type: str
) -> None:
    """Matrices of one method and layer type, a column of panels per (factor, retention), rows
    the class whose own units were changed, columns the evaluated class. Top: the change of
    the evaluated class's mean true-class probability minus the random units' mean change (a
    class-specific selection is a strong diagonal; a strong off-diagonal cell is off-target
    damage). Bottom: the change of the log-odds of the SELECTED class's probability p(c) on the
    evaluated class's sequences (knowledge of class-c inputs: the diagonal alone; an output
    push: the whole row alike). Blue lowered, red raised; the numbers are white on dark cells,
    black on light ones. A class without per-class scores (no units of its own) is a grey
    hatched row saying "no scores", with a footnote. Writes a PNG and an SVG beside it."""
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
    scored = set(sub["selected_class"].dropna().astype(str))
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
            image = matrix_panel(ax, part, value, classes, limit, scored)
            operation = f"{operation_of(factor)} ×{format_retention(factor)}, top {pct(retention)}"
            ax.set_title(f"{operation}\n{what}", fontsize=8)
        axes_row[0].set_ylabel("units of class", fontsize=8)
        fig.colorbar(image, ax=list(axes_row), shrink=0.8, label=label)
    title = f"{method}, {layer_type}: each class's own units, per evaluated class"
    fig.suptitle(title, fontsize=10)
    unscored = [class_header(c) for c in classes if str(c) not in scored]
    if unscored:
        note = (
            f"Hatched rows, {', '.join(unscored)}: {NO_SCORES} (no scoring example of the class; "
            "raise scoring.n_examples), so no units of its own to change."
        )
        fig.text(0.5, 0.01, note, ha="center", fontsize=8)
    save_figure(fig, path_png)


def cell_digits(limit: float) -> int:
    """Decimals for the cells of a panel whose values reach +-`limit`: 2, or enough to give
    its largest values two significant digits (0.0029 -> 4: "+0.0012", not "+0.00")."""
    if not np.isfinite(limit) or limit <= 0:
        return 2
    return max(2, 1 - int(np.floor(np.log10(limit))))


def _blank_row(ax, row: int, n_columns: int, words: str) -> None:
    """A grey hatched row with `words` in it: a class whose own units were not changed."""
    from matplotlib.patches import Rectangle

    ax.add_patch(Rectangle((-0.5, row - 0.5), n_columns, 1, facecolor="0.9", edgecolor="0.6",
                           hatch="///", linewidth=0))  # fmt: skip
    box = {"facecolor": "white", "edgecolor": "none", "pad": 1.5}
    ax.text((n_columns - 1) / 2, row, words, ha="center", va="center", fontsize=7,
            color="black", bbox=box)  # fmt: skip


def matrix_panel(ax, part: pd.DataFrame, value: str, classes: list, limit: float, scored: set):
    """One matrix: rows the selected class, columns the evaluated class. A class without
    per-class scores (not in `scored`) or not evaluated in this panel is a hatched row that
    says so; cell numbers are white on dark cells and black on light ones."""
    from kneurons.figures import cell_text_colour

    grid = part.pivot_table(
        index="selected_class", columns="evaluated_class", values=value, aggfunc="mean"
    ).reindex(index=classes, columns=classes)
    values = grid.to_numpy(dtype=float)
    image = ax.imshow(values, cmap="RdBu_r", vmin=-limit, vmax=limit)
    digits = cell_digits(limit)
    present = set(part["selected_class"].dropna().astype(str))
    for r, label in enumerate(classes):
        if str(label) not in scored:
            _blank_row(ax, r, len(classes), NO_SCORES)
        elif str(label) not in present:
            _blank_row(ax, r, len(classes), NOT_EVALUATED)
        else:
            for c, v in enumerate(values[r]):
                if np.isfinite(v):
                    text = fmt_signed(v, digits) if round(v, digits) else f"{0:.{digits}f}"
                    ax.text(c, r, text, ha="center", va="center", fontsize=7,
                            color=cell_text_colour(image, v))  # fmt: skip
    labels = [class_header(c) for c in classes]
    ax.set_xticks(range(len(classes)), labels, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(classes)), labels, fontsize=8)
    ax.set_xlabel("evaluated class", fontsize=8)
    return image
