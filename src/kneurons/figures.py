"""Figures: matplotlib without a screen, one colour per method, every file written atomically
(a PNG, and an SVG beside it unless asked otherwise), cell numbers in white or black by the
cell's luminance (`text_colour`). Used by the summary, residue-map and
site-recovery plots."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

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


def relative_luminance(rgba: Sequence[float]) -> float:
    """The WCAG relative luminance of an sRGB colour (components in 0..1): 0 black, 1 white."""

    def linear(c: float) -> float:
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (linear(float(c)) for c in rgba[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def text_colour(rgba: Sequence[float]) -> str:
    """The colour of text on a cell of colour `rgba`: "white" on a dark cell, "black" on a light
    one, whichever contrasts more (WCAG contrast ratio; equal at a relative luminance of about
    0.18)."""
    luminance = relative_luminance(rgba)
    on_black = (luminance + 0.05) / 0.05
    on_white = 1.05 / (luminance + 0.05)
    return "black" if on_black >= on_white else "white"


def cell_text_colour(image, value: float) -> str:
    """`text_colour` of the cell of `value` in an imshow `image` (its colormap and norm);
    "black" for a missing value (such a cell shows the white figure behind it)."""
    if value is None or not np.isfinite(float(value)):
        return "black"
    return text_colour(image.cmap(image.norm(value)))
