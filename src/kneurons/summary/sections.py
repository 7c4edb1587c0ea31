"""The sections of summary.md built on the summary's own tables of one model, one function each:
per masking variant the accuracy by target and retention, the AUC and per-class accuracy; the
comparison with the published figures; where the selected units lie; the classes' overlap.
Each returns markdown, or "" when it has no data. Ground truth: `kneurons.summary.groundtruth`;
the stages' own sections: stability (`kneurons.selection.report`), IG completeness
(`kneurons.scoring.report`), class specificity (`kneurons.classes.report`), neuron profiles
(`kneurons.profiles.report`).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from importlib import resources

import numpy as np
import pandas as pd
import yaml

from kneurons.format import (
    MISSING_CELL,
    class_header,
    fmt,
    fmt_ci,
    fmt_delta,
    fmt_p,
    md_table,
    method_order,
    pct,
    target_order,
    target_words,
)
from kneurons.summary.baseline import Statistics
from kneurons.summary.gallery import variant_words
from kneurons.summary.tables import of_variant, per_class, unmasked_rows, variant_rows
from kneurons.vocab import RANDOM

PUBLISHED_VARIANT = ("zero", "qkv", "keep")


@functools.cache
def published_figures() -> dict:
    """The reference study's printed accuracies (published.yaml, shipped with the package)."""
    text = resources.files("kneurons.summary").joinpath("published.yaml").read_text()
    return yaml.safe_load(text)


def describe_variant(variant: Sequence[str], group_ranking: str | None = None) -> str:
    mode, scope, direction = variant
    what = "keep the top r%, ablate the rest" if direction == "keep" else "ablate the top r%"
    how = "zeroed" if mode == "zero" else "replaced by their training mean"
    where = {
        "layer_type": "ranked over all layers of each layer type",
        "layer": "ranked within each layer",
        "qkv": "query, key and value ranked together",
        "all": "all scored neuron types ranked together",
    }.get(scope, scope)
    ranking = f" ({group_ranking} scale across types)" if group_ranking else ""
    return f"{what}; ablated units {how}; {where}{ranking}"


def band_words(level: float) -> str:
    """How every random band is described, the same words everywhere."""
    return f"mean ± std over seeds [central {level:.0%} of the seeds]"


def _seed_note(counts: Iterable[int], level: float, direction: str = "keep") -> str:
    text = f"_Cells: test accuracy [bootstrap {level:.0%} CI over test sequences]."
    counts = sorted(set(int(c) for c in counts))
    if counts:
        n = str(counts[0]) if len(counts) == 1 else f"{counts[0]}–{counts[-1]}"
        side = "at or below" if direction == "remove" else "at or above"
        text += (
            f" random ({n} seeds): {band_words(level)}. Δ: method − random mean [{level:.0%} "
            "CI, seeds and test sequences resampled together]. p: one-sided test against "
            "random (Δ over the seeds' spread and the test set's noise; at least "
            "(k + 1) / (n + 1) when k seeds tie or beat the method); q: its "
            "Benjamini-Hochberg value over the whole summary. "
            f"p empirical: share of random seeds {side} the method, (k + 1) / (n + 1)."
        )
    return text + "_"


def _accuracy_cell(row) -> str:
    return fmt_ci(row["accuracy"], row["accuracy_ci_low"], row["accuracy_ci_high"])


def target_block(stats: Statistics, variant: Sequence[str], target: str, level: float) -> str:
    """Accuracy [CI] per method x retention of one target, the random band and p-values."""
    sub = variant_rows(stats.table, variant)
    sub = sub[sub["target"] == target]
    retentions = sorted(sub["retention"].unique(), reverse=True)
    header = ["method", *(pct(r) for r in retentions)]
    rows = []
    single = sub[sub["method_family"] != RANDOM]
    methods = method_order(single["method"].unique())
    for method in methods:
        by_r = single[single["method"] == method].set_index("retention")
        cells = (
            _accuracy_cell(by_r.loc[r]) if r in by_r.index else MISSING_CELL for r in retentions
        )
        rows.append([method, *cells])
    band = of_variant(stats.random, variant)
    band = band[band["target"] == target]
    if not band.empty:
        by_r = band.set_index("retention")
        cells = []
        for r in retentions:
            if r in by_r.index:
                rec = by_r.loc[r]
                cells.append(
                    f"{fmt(rec['mean'])} ± {fmt(rec['std'])} "
                    f"[{fmt(rec['band_low'])}, {fmt(rec['band_high'])}]"
                )
            else:
                cells.append(MISSING_CELL)
        rows.append([f"{RANDOM} ({int(band['n_seeds'].max())} seeds)", *cells])
        for method in methods:
            by_r = single[single["method"] == method].set_index("retention")

            def cells_of(render, by_r=by_r):
                return [render(by_r.loc[r]) if r in by_r.index else MISSING_CELL
                        for r in retentions]  # fmt: skip

            rows.append(
                [f"Δ: {method}",
                 *cells_of(lambda x: fmt_delta(x["delta"], x["delta_ci_low"], x["delta_ci_high"]))]
            )  # fmt: skip
            rows.append(
                [f"q (p): {method}",
                 *cells_of(lambda x: f"{fmt_p(x['q_value'])} ({fmt_p(x['p_test'])})")]
            )  # fmt: skip
            rows.append([f"p empirical: {method}", *cells_of(lambda x: fmt_p(x["p_value"]))])
    note = _seed_note(band["n_seeds"], level, variant[2])
    kept = sub.groupby("retention")["n_kept"].max()
    n_total = sub["n_total"].max()
    rows.append(["neurons kept", *(str(int(kept[r])) for r in retentions)])
    words = target_words(target)
    parts = [f"### {words[0].upper()}{words[1:]}", ""]
    if pd.notna(n_total):
        parts += [f"{int(n_total)} neurons in this selection pool.", ""]
    parts += [md_table(header, rows), "", note]
    return "\n".join(parts)


def auc_section(stats: Statistics, variant: Sequence[str]) -> str:
    """AUC of accuracy vs retention per target and method (at least two retention levels)."""
    auc = of_variant(stats.auc, variant)
    if auc.empty or auc["n_retentions"].max() < 2:
        return ""
    has_random = (auc["method"] == RANDOM).any()
    rows = []
    for target in target_order(auc["target"]):
        sub = auc[auc["target"] == target].set_index("method")
        for method in method_order(sub.index):
            rec = sub.loc[method]
            if method == RANDOM:
                cell = (
                    f"{fmt(rec['random_auc_mean'])} ± {fmt(rec['random_auc_std'])} "
                    f"[{fmt(rec['random_auc_band_low'])}, {fmt(rec['random_auc_band_high'])}]"
                )
            else:
                cell = fmt_ci(rec["auc"], rec["auc_ci_low"], rec["auc_ci_high"])
            delta = fmt_delta(rec["delta"], rec["delta_ci_low"], rec["delta_ci_high"])
            if method == RANDOM:
                delta = MISSING_CELL
            rows.append([target, method, cell, delta, fmt_p(rec["q_value"]),
                         fmt_p(rec["p_value"])])  # fmt: skip
    return "\n".join(
        [
            "#### Area under accuracy vs retention",
            "",
            "Mean accuracy over the retention levels on a log axis (trapezoids over "
            "log10 r, divided by its range)"
            + (
                "; random: AUC mean ± std over seeds [central band]; Δ, q (of the one-sided "
                "test, in the summary's one BH family) and p empirical as in the tables above, "
                "on the AUC."
                if has_random
                else "."
            ),
            "",
            md_table(
                ["target", "method", "AUC", "Δ vs random", "q", "p empirical"],
                rows,
                ["l", "l", "r", "r", "r", "r"],
            ),
        ]
    )


def per_class_section(stats: Statistics, variant: Sequence[str]) -> str:
    """Recall per class at the lowest retention, per target and method (random: seed mean)."""
    sub = variant_rows(stats.table, variant)
    if sub.empty:
        return ""
    r_min = sub["retention"].min()
    sub = sub[sub["retention"] == r_min]
    unmasked = unmasked_rows(stats.table)
    classes = list(per_class(sub.iloc[0]).keys())
    rows = []
    if not unmasked.empty:
        pc = per_class(unmasked.iloc[0])
        rows.append(["(unmasked)", "", *(fmt(pc.get(c)) for c in classes)])
    for target in target_order(sub["target"]):
        tr = sub[sub["target"] == target]
        families = tr["method"].where(tr["method_family"] != RANDOM, RANDOM)
        for method in method_order(families.unique()):
            rows_m = tr[families == method]
            pcs = pd.DataFrame([per_class(r) for _, r in rows_m.iterrows()])
            rows.append([target, method, *(fmt(pcs[c].mean()) for c in classes)])
    note = " (random: mean over seeds)." if (sub["method_family"] == RANDOM).any() else "."
    return "\n".join(
        [
            f"#### Per-class accuracy at {pct(r_min)} retention",
            "",
            "Recall within each EC class" + note,
            "",
            md_table(
                ["target", "method", *(class_header(c) for c in classes)],
                rows,
                ["l", "l"] + ["r"] * len(classes),
            ),
        ]
    )


def variant_section(stats: Statistics, variant: Sequence[str], level: float) -> str:
    """One masking variant: its description, a block per target, AUC and per-class accuracy."""
    rows = variant_rows(stats.table, variant)
    ranking = rows["group_ranking"].dropna().unique()
    parts = [
        f"## Test accuracy when {variant_words(*variant)}",
        "",
        describe_variant(variant, ranking[0] if len(ranking) else None).capitalize()
        + f" (mode / scope / direction: {' / '.join(variant)}).",
        "",
    ]
    for target in target_order(rows["target"]):
        parts += [target_block(stats, variant, target, level), ""]
    for section in (auc_section(stats, variant), per_class_section(stats, variant)):
        if section:
            parts += [section, ""]
    return "\n".join(parts).rstrip()


def published_section(stats: Statistics) -> str:
    """This run beside the published figures, when qkv / zero / keep evaluations exist."""
    sub = variant_rows(stats.table, PUBLISHED_VARIANT)
    if sub.empty:
        return ""
    pub = published_figures()
    retentions = list(pub["retention"])
    header = ["", "unmasked", *(pct(r) for r in retentions)]
    unmasked = unmasked_rows(stats.table)
    ours_unmasked = _accuracy_cell(unmasked.iloc[0]) if not unmasked.empty else MISSING_CELL
    band = of_variant(stats.random, PUBLISHED_VARIANT)
    band = band[band["target"] == "qkv"].set_index("retention")
    rows = []
    for name, published in pub["accuracy"].items():
        rows.append([f"published: {name}", fmt(pub["unmasked"]), *(fmt(v) for v in published)])
        cells = []
        for r in retentions:
            if name == RANDOM:
                ok = r in band.index
                cells.append(
                    f"{fmt(band.at[r, 'mean'])} ± {fmt(band.at[r, 'std'])}" if ok else MISSING_CELL
                )
                continue
            m = sub[(sub["method"] == name) & (sub["retention"] == r)]
            cells.append(_accuracy_cell(m.iloc[0]) if not m.empty else MISSING_CELL)
        rows.append([f"this run: {name}", ours_unmasked, *cells])
    ranking = sub["group_ranking"].dropna().unique()
    return "\n".join(
        [
            "## Beside the published figures (Nori et al. 2023)",
            "",
            "Rows marked **published** are the figures printed in arXiv 2312.10770 (ESM-2 8M, "
            "EC classes 1-6, query/key/value selected together, zeroed units, one random draw, "
            "selection on the test set); they are copied, not recomputed. Rows marked "
            "**this run** are this pipeline's qkv / zero / keep evaluations"
            + (f" (cross-type ranking: {ranking[0]})" if len(ranking) else "")
            + ", selected on training examples; random is mean ± std over seeds.",
            "",
            md_table(header, rows),
        ]
    )


def enrichment_section(by_type: pd.DataFrame | None) -> str:
    """Key units' enrichment in the qkv target, and every layer type's in each group target."""
    if by_type is None or by_type.empty:
        return ""
    parts = [
        "## Where knowledge neurons live",
        "",
        "Enrichment = (share of a layer type's units selected) / (share of the pool selected); "
        "1 is what a uniform choice gives. p (hypergeometric): chance of at least this many "
        "selected under a uniform choice of the same size. p vs random: share of random "
        "seeds' enrichment at or above the method's, (k + 1) / (n + 1).",
        "",
    ]
    key_rows = by_type[(by_type["target"] == "qkv") & (by_type["layer_type"] == "key")]
    if not key_rows.empty:
        rows = []
        for rec in key_rows[key_rows["method_family"] != RANDOM].itertuples(index=False):
            rows.append(
                [
                    rec.method,
                    str(rec.group_ranking),
                    pct(rec.retention),
                    f"{fmt(rec.enrichment, 2)}",
                    f"{fmt(rec.random_mean, 2)} [{fmt(rec.random_band_low, 2)}, "
                    f"{fmt(rec.random_band_high, 2)}]",
                    fmt_p(rec.p_enriched),
                    fmt_p(rec.p_value),
                ]
            )
        header = ["method", "ranking", "retention", "key enrichment", "random"]
        header += ["p (hypergeom.)", "p vs random"]
        parts += [
            "### Are key projections enriched? (the reference study's claim)",
            "",
            "Key units' enrichment within the query + key + value pool.",
            "",
            md_table(header, rows, ["l", "l", "r", "r", "r", "r", "r"]),
            "",
        ]
    for target in ("all", "qkv"):
        t_rows = by_type[(by_type["target"] == target) & (by_type["method_family"] != RANDOM)]
        if t_rows.empty:
            continue
        types = target_order(t_rows["layer_type"].unique())
        rows = []
        for (method, ranking, r), g in t_rows.groupby(
            ["method", "group_ranking", "retention"], sort=False
        ):
            e = g.set_index("layer_type")["enrichment"]
            rows.append([method, str(ranking), pct(r), *(fmt(e.get(t, np.nan), 2) for t in types)])
        rows.sort(key=lambda x: (x[0], x[1], -float(x[2][:-1])))
        parts += [
            f"### Enrichment by layer type, {target_words(target)}",
            "",
            md_table(["method", "ranking", "retention", *types], rows),
            "",
        ]
    return "\n".join(parts).rstrip()


def overlap_section(overlap: pd.DataFrame | None) -> str:
    """Jaccard overlap of the classes' top units, summarised over the pairs of classes."""
    if overlap is None or overlap.empty:
        return ""
    agg = (
        overlap.groupby(["method", "layer_type", "retention"], sort=True)
        .agg(
            pairs=("jaccard", "size"),
            mean=("jaccard", "mean"),
            min=("jaccard", "min"),
            max=("jaccard", "max"),
            expected=("expected_random", "mean"),
        )
        .reset_index()
    )
    rows = [
        [
            rec.method,
            rec.layer_type,
            pct(rec.retention),
            str(rec.pairs),
            fmt(rec.mean),
            f"{fmt(rec.min)}–{fmt(rec.max)}",
            fmt(rec.expected),
        ]
        for rec in agg.itertuples(index=False)
    ]
    header = ["method", "layer type", "retention", "pairs", "mean J", "range", "chance"]
    return "\n".join(
        [
            "## Overlap between the classes' top neurons",
            "",
            "Jaccard overlap of the top-r% units (per layer type) selected from each class's "
            "own scores, over all pairs of classes; chance: the overlap two unrelated "
            "selections of that size have.",
            "",
            md_table(header, rows, ["l", "l", "r", "r", "r", "r", "r"]),
        ]
    )
