"""Cells and pipe tables of the markdown pages: how numbers, intervals and p-values print, and
in which order methods and targets are listed."""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import pandas as pd

from kneurons.vocab import NONE, RANDOM, TARGET_ORDER, order_of

MISSING_CELL = "—"


def md_table(header: list[str], rows: list[list[str]], align: list[str] | None = None) -> str:
    """A pipe table; `align` holds "l" or "r" per column (default: first left, rest right)."""
    align = align or ["l"] + ["r"] * (len(header) - 1)
    rule = [":---" if a == "l" else "---:" for a in align]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    return "\n".join([line(header), line(rule), *(line(r) for r in rows)])


def pct(retention: float) -> str:
    return f"{float(retention):g}%"


def isnan(value) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def fmt(value: float, digits: int = 3) -> str:
    return MISSING_CELL if isnan(value) else f"{float(value):.{digits}f}"


def fmt_g(value: float) -> str:
    return MISSING_CELL if isnan(value) else f"{float(value):.3g}"


def fmt_ci(value: float, low: float, high: float) -> str:
    if isnan(low) or isnan(high):
        return fmt(value)
    return f"{fmt(value)} [{fmt(low)}, {fmt(high)}]"


# Below this a p-value is past what the arithmetic resolves; it prints as "< 1e-15", never as 0.
P_FLOOR = 1e-15


def fmt_p(p: float) -> str:
    if isnan(p):
        return MISSING_CELL
    if p < P_FLOOR:
        return f"< {P_FLOOR:.0e}"
    return f"{p:.3f}" if p >= 0.001 else f"{p:.1e}"


def fmt_signed(value: float, digits: int = 3) -> str:
    """A difference with its sign: +0.475, −0.020 (a true minus sign)."""
    if isnan(value):
        return MISSING_CELL
    text = f"{float(value):+.{digits}f}"
    return text.replace("-", "\u2212")


def fmt_delta(value: float, low: float, high: float) -> str:
    """Δ [low, high] with signs."""
    if isnan(low) or isnan(high):
        return fmt_signed(value)
    return f"{fmt_signed(value)} [{fmt_signed(low)}, {fmt_signed(high)}]"


def cell(value) -> str:
    """A table cell of any value: floats with 3 significant digits."""
    if isinstance(value, float | np.floating):
        return fmt_g(value)
    return str(value)


def class_header(label) -> str:
    """A class as a column header: "EC 3" (or "EC 3.4"); "0" is the non-enzyme class."""
    return "non-enzyme" if str(label) == "0" else f"EC {label}"


def method_order(methods: Iterable[str]) -> list[str]:
    """Selection methods in alphabetical order, with the random baseline last."""
    methods = set(methods)
    return sorted(m for m in methods if m != RANDOM) + ([RANDOM] if RANDOM in methods else [])


def target_order(targets: Iterable[str]) -> list[str]:
    """Layer types first (query, key, value, ...), then the groups (qkv, all), then others."""
    return order_of(set(targets) - {NONE}, TARGET_ORDER)


# Targets in words, for headings: layer types (vocab.LAYER_TYPES) and groups (vocab.GROUPS).
TARGET_WORDS = {
    "query": "query projections",
    "key": "key projections",
    "value": "value projections",
    "attn_out": "attention outputs",
    "ffn_in": "feed-forward inputs (fc1)",
    "ffn_out": "feed-forward outputs (fc2)",
    "sae_resid": "SAE latents of the residual stream",
    "sae_ffn": "SAE latents of the feed-forward hidden layer",
    "qkv": "query, key and value ranked together",
    "all": "all scored neuron types ranked together",
}


def target_words(target: str, code: bool = True) -> str:
    """A layer type or group in words ("key projections"), with its config name in code
    ("key projections (`key`)") unless `code` is False; unknown names as they are."""
    words = TARGET_WORDS.get(str(target))
    if words is None:
        return str(target)
    return f"{words} (`{target}`)" if code else words
