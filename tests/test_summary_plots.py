"""Tests for kneurons.summary.plots: every figure writes a PNG and an SVG beside it."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_rgba
from test_summary_selection import unit_selections
from test_summary_tables import MODEL, collect, eval_rows, summary_stats

from kneurons.figures import relative_luminance, text_colour
from kneurons.summary.overlap import enrichment_tables
from kneurons.summary.plots import (
    chance_level,
    plot_accuracy_vs_retention,
    plot_per_class_accuracy,
    plot_selection_heatmap,
    plot_type_enrichment,
)


@pytest.fixture
def table() -> pd.DataFrame:
    return collect(eval_rows())


def _check_plot(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    svg = path.with_suffix(".svg")
    assert svg.exists() and svg.stat().st_size > 0
    assert b"<svg" in svg.read_bytes()[:2000]
    assert not list(path.parent.glob("*.tmp"))


def test_plot_writes_png_and_svg(table, tmp_path):
    path = tmp_path / "plots" / "accuracy.png"
    plot_accuracy_vs_retention(table, path)
    _check_plot(path)


def test_plot_without_random_and_single_retention(table, tmp_path):
    sub = table[
        (table["method_family"] == "unmasked")
        | ((table["method_family"] != "random") & (table["retention"] == 10.0))
    ]
    path = tmp_path / "single.png"
    plot_accuracy_vs_retention(sub, path)
    _check_plot(path)


def test_plot_rejects_two_models(table, tmp_path):
    two = pd.concat([table, table.assign(model="esm2_t12_35M")], ignore_index=True)
    with pytest.raises(ValueError, match="one model"):
        plot_accuracy_vs_retention(two, tmp_path / "two.png")
    assert not (tmp_path / "two.png").exists()


def test_chance_level_uses_class_count(table):
    unmasked = table[table["method_family"] == "unmasked"]
    assert math.isclose(chance_level(unmasked), 1 / 3)
    assert chance_level(unmasked.iloc[0:0]) is None


def test_selection_plots(tmp_path):
    stats = summary_stats()
    by_layer, by_type = enrichment_tables(
        unit_selections(), [50.0, 10.0], rankings=["zscore"], model=MODEL
    )
    for scope in ("layer_type", "qkv", "all"):
        path = tmp_path / f"heatmap_{scope}.png"
        plot_selection_heatmap(by_layer, path, "activation", scope)
        _check_plot(path)
    with pytest.raises(ValueError, match="no selection"):
        plot_selection_heatmap(by_layer, tmp_path / "x.png", "saliency", "qkv")
    plot_type_enrichment(by_type, tmp_path / "enrichment.png")
    _check_plot(tmp_path / "enrichment.png")
    plot_type_enrichment(by_type.iloc[0:0], tmp_path / "empty.png")  # one type: a note
    _check_plot(tmp_path / "empty.png")
    plot_per_class_accuracy(stats.table, tmp_path / "per_class.png", ("zero", "layer_type", "keep"))
    _check_plot(tmp_path / "per_class.png")
    plot_accuracy_vs_retention(stats, tmp_path / "ci.png")
    _check_plot(tmp_path / "ci.png")


def _contrast(text_rgba, cell_rgba) -> float:
    light, dark = sorted((relative_luminance(text_rgba), relative_luminance(cell_rgba)))[::-1]
    return (light + 0.05) / (dark + 0.05)


def test_heatmap_numbers_contrast_with_their_cells(tmp_path, monkeypatch):
    """Every number written on a heatmap cell is readable (WCAG contrast >= 4.5: white on the
    dark ends of the colour map, black on light cells), not black on dark navy."""
    stats = summary_stats()
    by_layer, _ = enrichment_tables(
        unit_selections(), [50.0, 10.0], rankings=["zscore"], model=MODEL
    )
    figures = []
    monkeypatch.setattr("kneurons.summary.plots.save_figure", lambda fig, *a: figures.append(fig))
    plot_selection_heatmap(by_layer, tmp_path / "h.png", "activation", "layer_type")
    plot_per_class_accuracy(stats.table, tmp_path / "p.png", ("zero", "layer_type", "keep"))
    checked = 0
    for fig in figures:
        for ax in fig.axes:
            for image in ax.get_images():
                values = image.get_array()
                for text in ax.texts:
                    col, row = (round(v) for v in text.get_position())
                    value = values[row, col]
                    if np.ma.is_masked(value) or not np.isfinite(value):
                        continue
                    cell = image.cmap(image.norm(value))
                    assert _contrast(to_rgba(text.get_color()), cell) >= 4.5, text.get_text()
                    checked += 1
    assert checked > 0
    assert text_colour((0.02, 0.19, 0.38)) == "white" and text_colour((0.97, 0.97, 0.97)) == "black"
