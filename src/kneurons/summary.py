"""Summary stage: gather the masked evaluations into tables, a markdown report and plots.

Each masked evaluation is one row (model, method, layer type, retention -> test accuracy). This
module only reshapes and presents those rows; it never recomputes anything. All functions take and
return data, except `plot_accuracy_vs_retention`, which writes a PNG and an SVG.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

REQUIRED_COLUMNS = (
    "model",
    "method",
    "method_family",
    "seed",
    "layer_type",
    "retention",
    "n_kept",
    "n_total",
    "n",
    "accuracy",
    "macro_f1",
    "per_class_accuracy",
)
SORT_COLUMNS = ("model", "layer_type", "method_family", "method", "retention")
LAYER_TYPE_ORDER = ("query", "key", "value", "attn_out", "ffn_in", "ffn_out")
RANDOM = "random"
UNMASKED = "unmasked"
UNMASKED_LAYER_TYPE = "none"
BAND_COLUMNS = ("model", "layer_type", "retention", "mean", "std", "n_seeds", "min", "max")
MISSING_CELL = "—"


# ---------------------------------------------------------------------------------------------
# tables


def collect(rows: Iterable[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate per-evaluation rows into one table, validated and in a stable order.

    Sorted by model, layer type, method family, method (ascending) and retention (descending).
    Raises ValueError if there are no rows or a required column is missing.
    """
    frames = [frame for frame in rows if frame is not None]
    if not frames:
        raise ValueError("no evaluation rows to collect")
    table = pd.concat(frames, ignore_index=True)
    missing = [col for col in REQUIRED_COLUMNS if col not in table.columns]
    if missing:
        raise ValueError(f"evaluation rows lack required column(s): {', '.join(missing)}")
    table = table.sort_values(
        list(SORT_COLUMNS), ascending=[True, True, True, True, False], kind="stable"
    )
    return table.reset_index(drop=True)


def _masked(table: pd.DataFrame) -> pd.DataFrame:
    return table[table["method_family"] != UNMASKED]


def random_band(table: pd.DataFrame) -> pd.DataFrame:
    """Spread of the random baseline: per (model, layer_type, retention) over seeds.

    Columns: model, layer_type, retention, mean, std (ddof=1; 0 when only one seed), n_seeds,
    min, max of accuracy. Sorted by model, layer type and retention (descending).
    """
    rand = table[table["method_family"] == RANDOM]
    if rand.empty:
        return pd.DataFrame({col: pd.Series(dtype=_band_dtype(col)) for col in BAND_COLUMNS})
    grouped = rand.groupby(["model", "layer_type", "retention"], sort=False)["accuracy"]
    band = grouped.agg(
        mean="mean", std="std", n_seeds="count", min="min", max="max"
    ).reset_index()  # pandas' std is the sample std (ddof=1): NaN for a single seed
    band["std"] = band["std"].fillna(0.0)
    band["n_seeds"] = band["n_seeds"].astype("int64")
    band = band.sort_values(
        ["model", "layer_type", "retention"], ascending=[True, True, False], kind="stable"
    )
    return band.loc[:, list(BAND_COLUMNS)].reset_index(drop=True)


def _band_dtype(col: str) -> str:
    if col in ("model", "layer_type"):
        return "object"
    return "int64" if col == "n_seeds" else "float64"


def _method_order(methods: Iterable[str]) -> list[str]:
    """Selection methods in alphabetical order, with the random baseline last."""
    methods = set(methods)
    return sorted(m for m in methods if m != RANDOM) + ([RANDOM] if RANDOM in methods else [])


def _layer_type_order(layer_types: Iterable[str]) -> list[str]:
    """Canonical layer types first (query, key, value, ...), then any others alphabetically."""
    present = set(layer_types) - {UNMASKED_LAYER_TYPE}
    known = [lt for lt in LAYER_TYPE_ORDER if lt in present]
    return known + sorted(present - set(known))


def accuracy_table(table: pd.DataFrame) -> pd.DataFrame:
    """Wide accuracy table: one row per (model, layer_type, method), one column per retention.

    Random seeds collapse to a single "random" row holding their mean. Columns are retention
    levels sorted descending; the unmasked row is left out (it has no retention level).
    """
    masked = _masked(table).copy()
    masked["method"] = masked["method"].where(masked["method_family"] != RANDOM, RANDOM)
    wide = masked.pivot_table(
        index=["model", "layer_type", "method"],
        columns="retention",
        values="accuracy",
        aggfunc="mean",
    )
    retentions = sorted(masked["retention"].unique(), reverse=True)
    wide = wide.reindex(columns=retentions)
    order = []
    for model in sorted(masked["model"].unique()):
        sub = masked[masked["model"] == model]
        for layer_type in _layer_type_order(sub["layer_type"]):
            methods = sub.loc[sub["layer_type"] == layer_type, "method"]
            order.extend((model, layer_type, method) for method in _method_order(methods))
    wide = wide.reindex(pd.MultiIndex.from_tuples(order, names=["model", "layer_type", "method"]))
    wide.columns.name = "retention"
    return wide


# ---------------------------------------------------------------------------------------------
# markdown


def _md_table(header: list[str], rows: list[list[str]], align: list[str] | None = None) -> str:
    """A pipe table; `align` holds "l" or "r" per column (default: first left, rest right)."""
    align = align or ["l"] + ["r"] * (len(header) - 1)
    rule = [":---" if a == "l" else "---:" for a in align]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    return "\n".join([line(header), line(rule), *(line(r) for r in rows)])


def _pct(retention: float) -> str:
    return f"{float(retention):g}%"


def _fmt(value: float, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING_CELL
    return f"{float(value):.{digits}f}"


def _fmt_g(value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING_CELL
    return f"{float(value):.3g}"


def _unmasked_rows(table: pd.DataFrame) -> pd.DataFrame:
    return table[table["method_family"] == UNMASKED]


def _seed_note(counts: Iterable[int]) -> str:
    counts = sorted(set(int(c) for c in counts))
    if not counts:
        return ""
    n = str(counts[0]) if len(counts) == 1 else f"{counts[0]}–{counts[-1]}"
    plural = "" if counts == [1] else "s"
    return f"_random: mean ± std of test accuracy over the random selections ({n} seed{plural})._"


def _layer_block(table: pd.DataFrame, band: pd.DataFrame, model: str, layer_type: str) -> str:
    sub = table[(table["model"] == model) & (table["layer_type"] == layer_type)]
    sub = _masked(sub)
    retentions = sorted(sub["retention"].unique(), reverse=True)
    header = ["method", *(_pct(r) for r in retentions)]
    rows = []
    single = sub[sub["method_family"] != RANDOM]
    for method in _method_order(single["method"].unique()):
        acc = single[single["method"] == method].groupby("retention")["accuracy"].mean()
        rows.append([method, *(_fmt(acc.get(r, np.nan)) for r in retentions)])
    lt_band = band[(band["model"] == model) & (band["layer_type"] == layer_type)]
    note = ""
    if not lt_band.empty:
        by_r = lt_band.set_index("retention")
        cells = []
        for r in retentions:
            if r in by_r.index:
                cells.append(f"{_fmt(by_r.at[r, 'mean'])} ± {_fmt(by_r.at[r, 'std'])}")
            else:
                cells.append(MISSING_CELL)
        rows.append([RANDOM, *cells])
        note = _seed_note(lt_band["n_seeds"])
    kept = sub.groupby("retention")["n_kept"].max()
    n_total = sub["n_total"].max()
    rows.append(["neurons kept", *(str(int(kept[r])) for r in retentions)])
    parts = [f"### {layer_type}", ""]
    if pd.notna(n_total):
        parts += [f"{int(n_total)} neurons of this type in all.", ""]
    parts.append(_md_table(header, rows))
    if note:
        parts += ["", note]
    return "\n".join(parts)


def _completeness_section(completeness: pd.DataFrame) -> str:
    grouped = completeness.groupby(["model", "layer_type"], sort=False)
    agg = grouped.agg(
        n_layers=("layer", "nunique"),
        n_examples=("n_examples", "max"),
        gap_mean_abs=("gap_mean_abs", "mean"),
        gap_max_abs=("gap_max_abs", "max"),
        delta_mean_abs=("delta_mean_abs", "mean"),
    ).reset_index()
    rows = []
    for model in sorted(agg["model"].unique()):
        sub = agg[agg["model"] == model].set_index("layer_type")
        for layer_type in _layer_type_order(sub.index):
            rec = sub.loc[layer_type]
            rows.append(
                [
                    model,
                    layer_type,
                    str(int(rec["n_layers"])),
                    str(int(rec["n_examples"])) if pd.notna(rec["n_examples"]) else MISSING_CELL,
                    _fmt_g(rec["gap_mean_abs"]),
                    _fmt_g(rec["gap_max_abs"]),
                    _fmt_g(rec["delta_mean_abs"]),
                ]
            )
    header = [
        "model",
        "layer type",
        "layers",
        "examples",
        "mean |gap|",
        "max |gap|",
        "mean |F(1) − F(0)|",
    ]
    return "\n".join(
        [
            "## Integrated-gradients completeness",
            "",
            "gap = sum of a module's IG attributions − (F(1) − F(0)) per example; mean |gap| and "
            "mean |F(1) − F(0)| are averaged over layers, max |gap| is the largest over layers "
            "and examples. A small gap relative to |F(1) − F(0)| means enough integration steps.",
            "",
            _md_table(header, rows, align=["l", "l", "r", "r", "r", "r", "r"]),
        ]
    )


def _dataset_section(card: dict) -> str:
    totals = card.get("totals") or {}
    counts = card.get("counts") or {}
    classes = list(card.get("classes") or [])
    parts = ["## Dataset", ""]
    if classes and counts:
        header = ["split", *classes, "total"]
        rows = []
        for split, total in totals.items():
            per_class = counts.get(split, {})
            rows.append([split, *(str(per_class.get(c, 0)) for c in classes), str(total)])
        parts.append(_md_table(header, rows))
    else:
        rows = [[split, str(total)] for split, total in totals.items()]
        parts.append(_md_table(["split", "sequences"], rows))
    return "\n".join(parts)


def _metrics_section(metrics: dict) -> str:
    rows = []
    for split in ("train", "val", "test"):
        if split in metrics and isinstance(metrics[split], dict):
            m = metrics[split]
            rows.append([split, _fmt(m.get("accuracy", np.nan)), _fmt(m.get("macro_f1", np.nan))])
    return "\n".join(
        [
            "## Fine-tuned classifier",
            "",
            _md_table(["split", "accuracy", "macro-F1"], rows),
        ]
    )


def markdown_summary(
    table: pd.DataFrame,
    completeness: pd.DataFrame | None = None,
    card: dict | None = None,
    metrics: dict | None = None,
) -> str:
    """A markdown report of the masking results (and, when given, completeness, data, metrics)."""
    parts = ["# Knowledge neurons: accuracy under neuron masking", ""]

    unmasked = _unmasked_rows(table)
    if not unmasked.empty:
        rows = [
            [rec.model, _fmt(rec.accuracy), _fmt(rec.macro_f1), str(int(rec.n))]
            for rec in unmasked.drop_duplicates("model").itertuples(index=False)
        ]
        parts += [
            "## Unmasked model (test set)",
            "",
            _md_table(["model", "accuracy", "macro-F1", "test examples"], rows),
            "",
        ]

    if metrics:
        parts += [_metrics_section(metrics), ""]
    if card:
        parts += [_dataset_section(card), ""]

    band = random_band(table)
    masked = _masked(table)
    for model in sorted(masked["model"].unique()):
        parts += [
            f"## {model}: test accuracy by retention",
            "",
            "Each cell is the test accuracy when only the top r% of the layer type's neurons "
            "(ranked by the method's score) are kept and the rest are silenced.",
            "",
        ]
        sub = masked[masked["model"] == model]
        for layer_type in _layer_type_order(sub["layer_type"]):
            parts += [_layer_block(table, band, model, layer_type), ""]

    if completeness is not None and not completeness.empty:
        parts += [_completeness_section(completeness), ""]

    return "\n".join(parts).rstrip() + "\n"


# ---------------------------------------------------------------------------------------------
# plot


def _chance_level(unmasked: pd.DataFrame) -> float | None:
    if unmasked.empty:
        return None
    raw = unmasked["per_class_accuracy"].iloc[0]
    try:
        per_class = json.loads(raw) if isinstance(raw, str) else dict(raw)
    except (TypeError, ValueError):
        return None
    return 1.0 / len(per_class) if per_class else None


def plot_accuracy_vs_retention(table: pd.DataFrame, path_png: str | os.PathLike) -> None:
    """Accuracy vs retained neurons for one model; writes `path_png` and an SVG beside it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedFormatter, FixedLocator, NullFormatter, NullLocator

    from kneurons.io import atomic_path

    models = list(pd.unique(table["model"]))
    if len(models) != 1:
        raise ValueError(f"plot_accuracy_vs_retention needs one model's rows, got {models}")
    model = models[0]

    masked = _masked(table)
    unmasked = _unmasked_rows(table)
    layer_types = _layer_type_order(masked["layer_type"])
    if not layer_types:
        raise ValueError(f"no masked evaluations to plot for model {model!r}")
    band = random_band(table)
    unmasked_acc = float(unmasked["accuracy"].iloc[0]) if not unmasked.empty else None
    chance = _chance_level(unmasked)

    methods = _method_order(masked.loc[masked["method_family"] != RANDOM, "method"].unique())
    palette = [c for i, c in enumerate(plt.get_cmap("tab10").colors) if i != 7]  # 7 is grey
    colors = {m: palette[i % len(palette)] for i, m in enumerate(methods)}

    retentions_all = sorted(masked["retention"].unique())
    ncols = min(3, len(layer_types))
    nrows = math.ceil(len(layer_types) / ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(4.2 * ncols, 3.4 * nrows), sharey=True, squeeze=False
    )
    handles: dict[str, object] = {}

    for ax, layer_type in zip(axes.flat, layer_types, strict=False):
        sub = masked[masked["layer_type"] == layer_type]
        lt_band = band[band["layer_type"] == layer_type].sort_values("retention")
        if not lt_band.empty:
            x = lt_band["retention"].to_numpy(dtype=float)
            mean = lt_band["mean"].to_numpy(dtype=float)
            std = lt_band["std"].fillna(0.0).to_numpy(dtype=float)
            n = int(lt_band["n_seeds"].max())
            handles["random min–max"] = ax.fill_between(
                x, lt_band["min"], lt_band["max"], color="grey", alpha=0.15, linewidth=0
            )
            handles["random mean ± std"] = ax.fill_between(
                x, mean - std, mean + std, color="grey", alpha=0.35, linewidth=0
            )
            (line,) = ax.plot(x, mean, color="grey", marker="o", markersize=3, linewidth=1.2)
            handles[f"random (mean, {n} seeds)"] = line
        for method in methods:
            rows = sub[sub["method"] == method]
            if rows.empty:
                continue
            acc = rows.groupby("retention")["accuracy"].mean().sort_index()
            (line,) = ax.plot(
                acc.index.to_numpy(dtype=float),
                acc.to_numpy(dtype=float),
                marker="o",
                color=colors[method],
                linewidth=1.5,
            )
            handles[method] = line
        if unmasked_acc is not None:
            handles["unmasked"] = ax.axhline(unmasked_acc, color="black", linestyle="--", lw=1)
        if chance is not None:
            handles["chance"] = ax.axhline(chance, color="black", linestyle=":", lw=1)

        ax.set_xscale("log")
        ax.xaxis.set_major_locator(FixedLocator(retentions_all))
        ax.xaxis.set_major_formatter(FixedFormatter([f"{r:g}" for r in retentions_all]))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.xaxis.set_minor_formatter(NullFormatter())
        lo, hi = min(retentions_all), max(retentions_all)
        ax.set_xlim(lo / 1.5, hi * 1.5)
        ax.set_ylim(0.0, 1.0)
        ax.set_title(layer_type)
        ax.grid(True, alpha=0.3)

    for ax in axes.flat[len(layer_types) :]:
        ax.set_visible(False)
    for ax in axes[-1, :]:
        ax.set_xlabel("retained neurons (%)")
    for ax in axes[:, 0]:
        ax.set_ylabel("test accuracy")
    # the last visible subplot of a row above an empty slot also needs an x label
    for idx in range(len(layer_types)):
        row, col = divmod(idx, ncols)
        if row < nrows - 1 and (row + 1) * ncols + col >= len(layer_types):
            axes[row, col].set_xlabel("retained neurons (%)")

    fig.suptitle(f"{model}: accuracy when keeping the top neurons")
    # legend: selection methods first, then the random baseline, then reference lines
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
    fig.tight_layout(rect=(0, 0.06 * legend_rows / nrows, 1, 1))

    path_png = Path(path_png)
    try:
        with atomic_path(path_png) as tmp:
            fig.savefig(tmp, format="png", dpi=150)
        with atomic_path(path_png.with_suffix(".svg")) as tmp:
            fig.savefig(tmp, format="svg")
    finally:
        plt.close(fig)
