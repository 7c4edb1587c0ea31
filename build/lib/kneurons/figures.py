"""Figures: matplotlib without a screen, one colour per method, every file written atomically
(a PNG, and an SVG beside it unless asked otherwise). Used by the summary, residue-map and
site-recovery plots."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from kneurons.io import atomic_path


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed), imported on first use."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def method_colors(methods: Sequence[str]) -> dict[str, tuple]:
    """A tab10 colour per method, in order; grey (tab10's 8th) is kept for the random baseline."""
    palette = [c for i, c in enumerate(pyplot().get_cmap("tab10").colors) if i != 7]
    return {m: palette[i % len(palette)] for i, m in enumerate(methods)}


def save_figure(fig, path_png: str | os.PathLike, svg: bool = True, dpi: int = 150) -> None:
    """`fig` as PNG at `path_png` (and as SVG beside it), each written atomically; closes it."""
    path_png = Path(path_png)
    try:
        with atomic_path(path_png) as tmp:
            fig.savefig(tmp, format="png", dpi=dpi)
        if svg:
            with atomic_path(path_png.with_suffix(".svg")) as tmp:
                fig.savefig(tmp, format="svg")
    finally:
        pyplot().close(fig)
