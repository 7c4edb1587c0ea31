"""The logos of the profiled units (`plot_logos`): letters stacked by information content at
each offset from the unit's peak, over its most active windows (`kneurons.profiles.scan`)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from kneurons.figures import pyplot, save_figure
from kneurons.profiles.composition import AMINO_ACIDS

# Letter colours by side-chain chemistry (the usual protein logo scheme).
CHEMISTRY = {
    **dict.fromkeys("DE", "#d62728"),  # acidic
    **dict.fromkeys("KRH", "#1f77b4"),  # basic
    **dict.fromkeys("GSTYC", "#2ca02c"),  # polar
    **dict.fromkeys("NQ", "#9467bd"),  # amide
    **dict.fromkeys("AVLIPWFM", "#222222"),  # hydrophobic
}


def logo_matrix(windows: pd.DataFrame, half_width: int) -> pd.DataFrame:
    """Letter heights (bits) per window offset (-half_width .. +half_width, 0 = peak) and
    amino acid, from one unit's windows aligned at the peak: frequency x information content,
    with IC = log2(20) - entropy - (19 / (2 ln 2 n)), the small-sample correction for n letters
    at the offset (clipped windows have fewer letters at the ends), floored at 0."""
    offsets = np.arange(-half_width, half_width + 1)
    counts = pd.DataFrame(0.0, index=offsets, columns=list(AMINO_ACIDS))
    for w in windows.itertuples(index=False):
        first = w.window_start - w.position  # offset of the window's first residue
        for j, residue in enumerate(w.window):
            if residue in counts.columns:
                counts.at[first + j, residue] += 1
    n = counts.sum(axis=1)
    freq = counts.div(n.where(n > 0), axis=0).fillna(0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy = -(freq * np.log2(freq.where(freq > 0))).sum(axis=1)
    correction = (len(AMINO_ACIDS) - 1) / (2 * np.log(2) * n.where(n > 0))
    ic = (np.log2(len(AMINO_ACIDS)) - entropy - correction).clip(lower=0).fillna(0.0)
    return freq.mul(ic, axis=0)


def draw_logo(ax, heights: pd.DataFrame) -> None:
    """Letters stacked by height at each offset (the tallest on top), drawn as glyph paths."""
    from matplotlib import transforms
    from matplotlib.font_manager import FontProperties
    from matplotlib.patches import PathPatch
    from matplotlib.textpath import TextPath

    font = FontProperties(family="DejaVu Sans", weight="bold")
    for x, column in heights.iterrows():
        bottom = 0.0
        for residue, height in column.sort_values(kind="mergesort").items():
            if height <= 1e-3:
                continue
            path = TextPath((0, 0), residue, size=1, prop=font)
            box = path.get_extents()
            shape = (transforms.Affine2D().translate(-box.x0, -box.y0)
                     .scale(0.85 / box.width, height / box.height)
                     .translate(x - 0.425, bottom))  # fmt: skip
            ax.add_patch(PathPatch(shape.transform_path(path), color=CHEMISTRY[residue], lw=0))
            bottom += height
    ax.set_xlim(heights.index.min() - 0.6, heights.index.max() + 0.6)
    ax.set_ylim(0, max(1.0, float(heights.sum(axis=1).max()) * 1.05))
    ax.set_xticks(list(heights.index))
    ax.axvline(0, color="0.85", lw=0.8, zorder=0)


def plot_logos(
    windows: pd.DataFrame, units: pd.DataFrame, half_width: int, path_png, title: str = ""
) -> None:
    """One logo per unit of `units` (rows of the profile table, in order) from its windows."""
    plt = pyplot()
    n = max(1, len(units))
    fig, axes = plt.subplots(n, 1, figsize=(0.55 * (2 * half_width + 1) + 2.5, 1.9 * n + 0.8),
                             squeeze=False)  # fmt: skip
    kinds = [c.removeprefix("n_inside_") for c in units.columns if c.startswith("n_inside_")]
    for ax, unit in zip(axes[:, 0], units.itertuples(index=False), strict=False):
        mine = windows[
            (windows["method"] == unit.method)
            & (windows["layer_type"] == unit.layer_type)
            & (windows["layer"] == unit.layer)
            & (windows["neuron"] == unit.neuron)
        ]
        draw_logo(ax, logo_matrix(mine, half_width))
        notes = [f"{getattr(unit, f'n_inside_{k}')}/{unit.n_windows} peaks in {k}" for k in kinds]
        if getattr(unit, "cutoff_ties", 1) > 1:
            notes.append(f"{unit.cutoff_ties} sequences tie at the cut")
        sites = "; ".join(notes)
        ax.set_title(f"rank {unit.rank}: layer {unit.layer}, neuron {unit.neuron}"
                     + (f" ({sites})" if sites else ""), fontsize=9, loc="left")  # fmt: skip
        ax.set_ylabel("bits")
    if len(units) == 0:
        axes[0, 0].text(0.5, 0.5, "no units", ha="center", va="center")
        axes[0, 0].set_axis_off()
    axes[-1, 0].set_xlabel("residue offset from the unit's peak")
    fig.suptitle(title or "Most active windows of the top units", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path_png, svg=False, dpi=130)
