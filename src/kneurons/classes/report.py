"""Class-specific knowledge neurons: suppress or amplify each class's own top units and measure
what happens to every class (the causal test of Dai et al. 2022, per EC class).

Targets (rule `evaluate_classes`, one cached file per (model, layer type, method, factor,
retention), `CLASS_EVAL_FILE`): for every class c, the top r% units of one layer type (all its
layers) ranked by class c's own scores (the `label = c` rows of the score and selection files)
are multiplied by `factor` (0 suppresses them, 2 doubles their output), every other unit runs
normally, and the whole test set is evaluated. A random seed's file holds one row: its random
units (ranked by the seed's scores, not by any class) of the same size, the baseline. Each row
keeps, per test sequence, with and without the change: the probability of the true class and
whether the prediction is right (`true_prob`, `correct`, `base_true_prob`, `base_correct`), the
predicted class (`predicted`, `base_predicted`), and every class's probability (`probs`,
`base_probs`: N x K values flattened sequence by sequence, float32; sequence i's K
probabilities are entries i*K to i*K + K - 1).

Measures and calls (`kneurons.classes.stats`): the own-class effect against random units and
against the other classes' units, the largest off-target effect against random, whether the
set knows class c's inputs or pushes the output toward or away from c whatever the input, and
whether the changed model collapses onto one class; a set is class-specific only when all of
them agree.

Refinement (`shared_units`): a unit in the top set of more than `shared_fraction` of the
classes is shared (it ranks high for most classes: general machinery, not one class's
knowledge); the table counts, per class, how many of its selected units are shared and how many
remain class-specific.

The summary's words (`specificity_section`, `class_findings`) and the figure
(`plot_class_matrix`) read the table of `kneurons.classes.stats`. Imports no torch (the masks are
built in `kneurons.classes.masks`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from kneurons.format import class_header, fmt_delta, fmt_p, fmt_signed, md_table, pct
from kneurons.selection.ranking import pick, selected
from kneurons.vocab import ALL_CLASSES, RANDOM, TARGET_ORDER, format_retention, order_of

CLASS_EVAL_FILE = "results/classes/{model}/{layer_type}/{method}/x{factor}/top{retention}.parquet"
# One class-specific evaluation: the key columns of a CLASS_EVAL_FILE row.
CLASS_KEY_COLUMNS = (
    "model",
    "method",
    "method_family",
    "seed",
    "layer_type",
    "factor",
    "operation",
    "retention",
    "label",
    "selected_class",
)
# per test sequence (N values a row) and per (test sequence, class) (N x K values, flattened)
SEQUENCE_COLUMNS = (
    "true_prob",
    "correct",
    "predicted",
    "base_true_prob",
    "base_correct",
    "base_predicted",
)
PROBABILITY_COLUMNS = ("probs", "base_probs")
VECTOR_COLUMNS = (*SEQUENCE_COLUMNS, *PROBABILITY_COLUMNS)
GROUP = ["layer_type", "factor", "retention"]  # the cells in which methods meet random
FEW_TEST_SEQUENCES = 5  # a class with fewer test sequences is flagged in the summary
# Sink collapse (kneurons.classes.stats.sink): a changed model that answers one class for at least
# SINK_SHARE of the test sequences while that class is at least SINK_EXCESS less of the test set
SINK_SHARE = 0.8
SINK_EXCESS = 0.3


def format_factor(value: float | str) -> str:
    """0 -> "0", 2.0 -> "2", 0.5 -> "0.5": the {factor} wildcard as written in paths (as
    `vocab.format_retention` writes a level)."""
    return format_retention(value)


def operation_of(factor: float) -> str:
    """What multiplying units by `factor` does: suppress (0), dampen (between 0 and 1),
    identity (1), amplify (above 1)."""
    factor = float(factor)
    if factor == 0:
        return "suppress"
    if factor < 1:
        return "dampen"
    return "identity" if factor == 1 else "amplify"


def alternative_of_factor(factor: float) -> str | None:
    """The one-sided direction a class-specific selection should move its class: suppressing
    or dampening lowers it (less), amplifying raises it (greater); identity has none."""
    operation = operation_of(factor)
    if operation == "identity":
        return None
    return "greater" if operation == "amplify" else "less"


def class_rankings(ranking: pd.DataFrame, method_family: str) -> dict[int, pd.DataFrame]:
    """label -> the rows of a selection file (scope layer_type) to select from: each class's
    own ranking for a scored method (labels >= 0), the all-class ranking (label -1) for a
    random seed, whose units are not tied to any class."""
    if method_family == RANDOM:
        return {ALL_CLASSES: pick(ranking)}
    labels = sorted(int(x) for x in ranking["label"].unique() if int(x) != ALL_CLASSES)
    if not labels:
        raise ValueError(
            "the selection has no per-class rankings (scoring.per_class must be true for the "
            "class-specific targets)"
        )
    return {label: pick(ranking, label=label) for label in labels}


def class_eval_frame(rows: Sequence[dict]) -> pd.DataFrame:
    """Rows of a CLASS_EVAL_FILE, typed for parquet."""
    frame = pd.DataFrame(list(rows))
    frame["seed"] = frame["seed"].astype("Int64")
    frame["label"] = frame["label"].astype("int64")
    frame["selected_class"] = frame["selected_class"].astype("string")
    return frame


def shared_units(
    rankings: Mapping[tuple[str, str], pd.DataFrame],
    retentions: Sequence[float],
    shared_fraction: float = 0.5,
) -> pd.DataFrame:
    """Refinement of each class's top set: (method, layer type) -> selection file rows (scope
    layer_type) with per-class rankings. Per (method, layer type, retention, class): units
    selected, how many of them are also in the top set of more than `shared_fraction` of the
    classes (`n_shared`), and how many remain (`n_specific`)."""
    rows = []
    for (method, layer_type), ranking in rankings.items():
        labels = sorted(int(x) for x in ranking["label"].unique() if int(x) != ALL_CLASSES)
        if len(labels) < 2:
            continue
        for retention in retentions:
            top = {}
            for label in labels:
                units = pick(ranking, label=label)
                chosen = units[selected(units, float(retention))]
                top[label] = set(zip(chosen["layer"], chosen["neuron"], strict=True))
            how_many = pd.Series([u for s in top.values() for u in s]).value_counts()
            is_shared = set(how_many.index[how_many > shared_fraction * len(labels)])
            for label, units in top.items():
                n_shared = len(units & is_shared)
                rows.append(
                    {
                        "method": method,
                        "layer_type": layer_type,
                        "retention": float(retention),
                        "label": label,
                        "n_selected_units": len(units),
                        "n_shared": n_shared,
                        "n_specific": len(units) - n_shared,
                    }
                )
    return pd.DataFrame(
        rows,
        columns=[
            "method",
            "layer_type",
            "retention",
            "label",
            "n_selected_units",
            "n_shared",
            "n_specific",
        ],
    )


# ---------------------------------------------------------------------------------------------
# The summary's words and the figure

KIND_WORDS = {  # effect_kind -> plain words
    "specific": "class-specific",
    "generic": "no more than the other classes' units do to it",
    "off-target": "off-target damage",
    "output": "output push (p(c) moved alike on every input)",
    "collapse": "sink collapse",
    "none": "no own-class effect beyond random",
    "untested": "untested",
    "at-chance": "not a finding (model at chance)",
}


def _intro(table: pd.DataFrame, level: float) -> list[str]:
    alpha, margin = float(table["alpha"].iloc[0]), float(table["margin"].iloc[0])
    return [
        "For every class c, the top units of one layer type ranked by class c's own scores are "
        "multiplied by a factor (×0 suppresses them, ×2 amplifies them; all other units run "
        "normally) and the whole test set is evaluated. Each set is asked four questions, each "
        "against random units of the same size:",
        "",
        "- **Own-class effect**: does the set change the true-class probability of class c's "
        "sequences more than random units do, and more than the other classes' top units do "
        "to class c?",
        "- **Largest off-target effect**: the other class whose sequences lose the most "
        "true-class probability, against the random units' largest loss. Suppressing, that is "
        "damage beyond class c; amplifying, it is probability pushed onto c from the other "
        "classes' sequences. Either makes a change of the whole model look like one of c.",
        "- **Input knowledge or output push**: does the set move p(c) on class c's sequences "
        "more than on the other classes' sequences (log-odds)? A set that shifts p(c) alike on "
        "every input pushes the model's OUTPUT toward or away from c and knows nothing of "
        "class-c sequences (on a model trained on shuffled labels that is all a set can do).",
        f"- **Sink collapse**: the changed model answers one class for at least {SINK_SHARE:.0%} "
        f"of the test sequences while that class is at least {SINK_EXCESS * 100:.0f} points "
        "rarer in the test set: the units broke the model, and every class's drop is generic "
        "damage.",
        "",
        "A set is **class-specific** (✓) only when its own-class effect is beyond random and "
        "beyond the other classes' units, it depends on the input, the model does not collapse, "
        f"and any off-target drop beyond random is at least {margin:g} (probability) smaller "
        "than the own-class effect (both minus the random mean; `class_specific.margin`). Tests "
        "are one-sided (own-class, input and output effects in the factor's direction, lower "
        "for ×0 and higher for ×2; the off-target effect lower) against the random seeds, with "
        "the test sequences resampled within each class (and by homology cluster where the "
        "test set has clusters) and ties with a seed counting against the set. "
        "Benjamini-Hochberg q-values run over every scored (method, layer type, factor, "
        "retention, class) row of this model, one family per question; beyond random means "
        f"q ≤ {alpha:g} with the Δ interval on the expected side of 0. Cells: own-class effect "
        f"minus the random mean [{level:.0%} interval] and its q; the largest off-target effect "
        "minus the random mean (which class); the call. All rows: class_specificity.parquet; "
        "per evaluated class: class_effects.parquet.",
        "",
    ]


def _warnings(table: pd.DataFrame, scored: pd.DataFrame) -> list[str]:
    """The paragraphs that limit what the tables can say."""
    lines = []
    if model_at_chance(table):
        lines += [
            "**The unchanged model is at chance** (test accuracy "
            f"{table['base_accuracy'].iloc[0]:.3f}, interval down to "
            f"{table['base_accuracy_ci_low'].iloc[0]:.3f}, one-sided exact binomial p = "
            f"{fmt_p(table['base_above_chance_p'].iloc[0])} against chance, the majority-class "
            f"rate of the test set, {table['chance'].iloc[0]:.3f}): it is not shown to hold "
            "class knowledge for any unit to carry, so nothing below is a finding and no set is "
            "called specific.",
            "",
        ]
    if bool(table["base_sink_collapse"].iloc[0]):
        lines += [
            "**The unchanged model already answers one class** "
            f"({class_header(table['base_sink_class'].iloc[0])} for "
            f"{table['base_sink_share'].iloc[0]:.0%} of the test sequences): every change is "
            "read against a collapsed model.",
            "",
        ]
    if table.loc[table["method_family"] == RANDOM].empty:
        lines += [
            "**No random baseline** (add `random` to scoring.methods): the effects below cannot "
            "be told from what any units of the same size would do; no tests, no calls.",
            "",
        ]
    few = table.loc[table["n_class"] < FEW_TEST_SEQUENCES, "selected_class"].unique()
    if len(few):
        names = ", ".join(class_header(c) for c in sorted(few))
        lines += [
            f"**Few test sequences** for {names} (< {FEW_TEST_SEQUENCES}): their effects rest "
            "on too few sequences to be read as a finding.",
            "",
        ]
    unscored = set(table["selected_class"].dropna()) - set(scored["selected_class"].dropna())
    if unscored:
        names = ", ".join(class_header(c) for c in sorted(unscored, key=str))
        lines += [
            f"No per-class scores for {names} (no scoring example of the class: raise "
            "scoring.n_examples): their own units could not be selected.",
            "",
        ]
    return lines


def _cell(r) -> str:
    """One class's cell: own-class effect − random [interval], q; off-target; the call."""
    if np.isnan(r["own_delta"]):
        own = fmt_signed(r["own_prob"])
    else:
        own = fmt_delta(r["own_delta"], r["own_delta_ci_low"], r["own_delta_ci_high"])
    off = r["off_delta"] if not np.isnan(r["off_delta"]) else r["off_prob"]
    mark = " ✓" if bool(r["specific"]) else ""
    return (
        f"{own}, q {fmt_p(r['own_q'])}; off {class_header(r['off_class'])} {fmt_signed(off)}; "
        f"{r['effect_kind']}{mark}"
    )


def _cell_table(cell: pd.DataFrame) -> tuple[str, list[pd.DataFrame]]:
    """The markdown table of one (factor, retention) and its (method, layer type) parts."""
    classes = sorted(cell["selected_class"].unique(), key=str)
    header = ["method", "layer type", *(class_header(c) for c in classes)]
    body, parts = [], []
    for method in sorted(cell["method"].unique()):
        for layer_type in order_of(cell["layer_type"].unique(), TARGET_ORDER):
            sub = cell[(cell["method"] == method) & (cell["layer_type"] == layer_type)]
            cells = []
            for name in classes:
                r = sub[sub["selected_class"] == name]
                cells.append("—" if r.empty else _cell(r.iloc[0]))
            body.append([method, layer_type, *cells])
            parts.append(sub)
    return md_table(header, body, ["l", "l", *["r"] * len(classes)]), parts


def _random_words(randoms: pd.DataFrame) -> str:
    """The random units' own-class and largest off-target effects per layer type."""
    if randoms.empty:
        return ""

    def spread(column: str) -> str:
        agg = randoms.groupby("layer_type")[column].agg(["mean", "std"])
        agg = agg.reindex(order_of(agg.index, TARGET_ORDER))
        return "; ".join(
            f"{lt} {fmt_signed(s['mean'])} ± {s['std']:.3f}" for lt, s in agg.iterrows()
        )

    return (
        f"Random units ({randoms['method'].nunique()} seeds, every class): own-class effect "
        f"{spread('own_prob')}; largest off-target effect {spread('off_prob')} (mean ± std over "
        "seeds and classes)."
    )


def specificity_section(
    table: pd.DataFrame | None, model: str, level: float = 0.95, heading: int = 2
) -> str:
    """The summary section: what the four questions are (`kneurons.classes.stats`), per operation
    and retention a table of each method's own-class effect (minus random, with interval and
    q), its largest off-target effect and the call per class, the random units' effects, and a
    sentence per (method, layer type) saying which classes' units are specific and what the
    others are (output push, off-target damage, sink collapse, ...). Empty without a table."""
    if table is None or table.empty:
        return ""
    h = "#" * heading
    scored = table[table["method_family"] != RANDOM]
    lines = [
        f"{h} {model}: class-specific knowledge neurons — suppress or amplify each class's own "
        "units",
        "",
        *_intro(table, level),
    ]
    if scored.empty:
        lines.append(
            "Only random selections were evaluated (no scored method): nothing to compare."
        )
        return "\n".join(lines)
    lines += _warnings(table, scored)
    chance = model_at_chance(table)
    verdicts = []
    for (factor, retention), cell in scored.groupby(["factor", "retention"], sort=True):
        operation = operation_of(factor)
        lines += [f"{h}# {operation} (×{format_factor(factor)}), top {pct(retention)} of each "
                  "class's units", ""]  # fmt: skip
        markdown, parts = _cell_table(cell)
        lines += [markdown, ""]
        for sub in parts:
            verdict = _verdict(sub, operation, factor, retention)
            if chance and verdict:
                verdict += " Not a finding: the model is at chance."
            verdicts.append(verdict)
        randoms = table[
            (table["method_family"] == RANDOM)
            & (table["factor"] == factor)
            & (table["retention"] == retention)
        ]
        words = _random_words(randoms)
        if words:
            lines += [words, ""]
    lines += ["In words:", ""] + [f"- {v}" for v in verdicts if v] + [""]
    lines += [_kind_counts(scored), ""]
    lines += _shared_words(scored)
    return "\n".join(lines).rstrip() + "\n"


def _kind_counts(scored: pd.DataFrame, lead: str = "Calls over all") -> str:
    """How many scored sets got each call, in words."""
    counts = scored["effect_kind"].value_counts()
    parts = [f"{int(counts[k])} {KIND_WORDS[k]}" for k in KIND_WORDS if k in counts.index]
    return f"{lead} {len(scored)} scored sets: " + "; ".join(parts) + "."


def _shared_words(scored: pd.DataFrame) -> list[str]:
    if "n_shared" not in scored.columns:
        return []
    shared = scored.dropna(subset=["n_shared"])
    if shared.empty:
        return []
    agg = shared.groupby(["method", "layer_type", "retention"])[
        ["n_selected_units", "n_shared"]
    ].mean()
    parts = [
        f"{m} {lt} top {pct(r)}: {v['n_shared']:.0f} of {v['n_selected_units']:.0f}"
        for (m, lt, r), v in agg.iterrows()
    ]
    return [
        "Shared units (in the top set of most classes; mean per class): "
        + "; ".join(parts)
        + ". The rest are each class's own.",
        "",
    ]


def model_at_chance(table: pd.DataFrame) -> bool:
    """Whether the unchanged model is not shown to beat chance, the majority-class rate of the
    test set (`kneurons.classes.stats`, column `model_at_chance`; older tables: the accuracy
    interval reaching column `chance`)."""
    if table.empty:
        return False
    if "model_at_chance" in table.columns:
        return bool(table["model_at_chance"].iloc[0])
    if "base_accuracy_ci_low" not in table.columns:
        return False
    return bool(table["base_accuracy_ci_low"].iloc[0] <= table["chance"].iloc[0])


def _range(values: pd.Series) -> str:
    low, high = fmt_signed(values.min()), fmt_signed(values.max())
    return low if low == high else f"{low} to {high}"


def _names(sub: pd.DataFrame) -> str:
    return ", ".join(class_header(c) for c in sub["selected_class"])


def class_findings(table: pd.DataFrame | None, alpha: float = 0.05) -> list[str]:
    """Findings bullets: per (factor, retention), the (method, layer type) cells whose class
    units are class-specific (`effect_kind` specific), with how many classes; or that none are,
    and what the sets were instead. None when the unchanged model is at chance or nothing was
    tested. `alpha` is only named when the table lacks its own `alpha` column (the level its
    calls were made at)."""
    if table is None or table.empty or model_at_chance(table):
        return []
    scored = table[table["method_family"] != RANDOM]
    if scored.empty or scored["own_q"].isna().all():
        return []
    alpha = float(table["alpha"].iloc[0]) if "alpha" in table.columns else alpha
    bullets = []
    for (factor, retention), cell in scored.groupby(["factor", "retention"], sort=True):
        what = f"{operation_of(factor)} ×{format_factor(factor)}, top {pct(retention)}"
        hits = []
        for (method, layer_type), sub in cell.groupby(["method", "layer_type"], sort=True):
            found = sub[sub["specific"].astype(bool)]
            if len(found):
                hits.append(
                    f"{method} {layer_type} ({len(found)} of {sub['selected_class'].nunique()} "
                    f"classes: {_names(found)}; own-class effect − random "
                    f"{_range(found['own_delta'])})"
                )
        if hits:
            bullets.append(
                f"{what}: class-specific (own class beyond random and beyond the other "
                "classes' units, input-dependent, off-target effect within the margin, no "
                "collapse) for " + "; ".join(hits) + "."
            )
        else:
            bullets.append(
                f"{what}: no set of a class's own units is class-specific (one-sided tests, "
                f"q ≤ {alpha:g}); " + _kind_counts(cell, lead="of the")
            )
    return bullets


def _kind_sentence(sub: pd.DataFrame, kind: str) -> str:
    """Which classes got `kind`, with what shows it."""
    rows = sub[sub["effect_kind"] == kind]
    if rows.empty:
        return ""
    if kind == "off-target":
        detail = "; ".join(
            f"{class_header(r['off_class'])} {fmt_signed(r['off_prob'])} under "
            f"{class_header(r['selected_class'])}'s units"
            for _, r in rows.iterrows()
        )
        return f"off-target damage for {_names(rows)} (largest drop of another class: {detail})"
    if kind == "generic":
        detail = "; ".join(
            f"{class_header(r['selected_class'])} {fmt_signed(r['own_prob'])}, the other "
            f"classes' units {fmt_signed(r['cross_mean'])} on average"
            for _, r in rows.iterrows()
        )
        return f"{KIND_WORDS[kind]} for {_names(rows)} ({detail})"
    if kind == "collapse":
        detail = ", ".join(
            f"{class_header(r['selected_class'])}: {class_header(r['sink_class'])} for "
            f"{r['sink_share']:.0%}"
            for _, r in rows.iterrows()
        )
        return f"sink collapse for {_names(rows)} (the changed model answers {detail})"
    return f"{KIND_WORDS[kind]} for {_names(rows)}"


def _verdict(sub: pd.DataFrame, operation: str, factor: float, retention: float) -> str:
    """One sentence per (method, layer type): the own-class effect's range, then which classes'
    units are class-specific and what the others are."""
    if sub.empty:
        return ""
    r = sub.iloc[0]
    n = sub["selected_class"].nunique()
    own = sub["own_prob"]
    what = {
        "suppress": "suppressing",
        "dampen": "dampening",
        "amplify": "amplifying",
        "identity": "leaving",
    }[operation]
    text = (
        f"{r['method']}, {r['layer_type']}, top {pct(retention)} (×{format_factor(factor)}): "
        f"{what} each class's own units changes that class's true-class probability by "
        f"{_range(own)}; "
    )
    if sub["own_q"].isna().all():
        return text + "no random baseline to test it against."
    k = int(sub["specific"].astype(bool).sum())
    if k == n:
        return text + f"class-specific for all {n} classes."
    head = (
        f"**not** class-specific for any of the {n} classes"
        if k == 0
        else f"class-specific for {k} of {n} classes ({_names(sub[sub['specific']])})"
    )
    rest = [_kind_sentence(sub, kind) for kind in KIND_WORDS if kind != "specific"]
    return text + head + "; " + "; ".join(x for x in rest if x) + "."


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
            operation = f"{operation_of(factor)} ×{format_factor(factor)}, top {pct(retention)}"
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


def read_class_evals(paths: Sequence[str | os.PathLike]) -> pd.DataFrame:
    """Several CLASS_EVAL_FILEs as one table."""
    frames = [pd.read_parquet(p) for p in paths]
    if not frames:
        return pd.DataFrame(columns=[*CLASS_KEY_COLUMNS, *VECTOR_COLUMNS])
    return pd.concat(frames, ignore_index=True)


def class_names(card_path: str | os.PathLike) -> list[str]:
    """The classes of the dataset card, in label order."""
    with open(card_path) as fh:
        return [str(c) for c in json.load(fh)["classes"]]
