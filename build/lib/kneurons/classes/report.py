"""The summary's words on the class-specific targets (`kneurons.classes.rankings`): the section
(`specificity_section`: what the four questions are, per operation and retention a table of each
method's own-class effect, its largest off-target effect and the call per class, and a sentence
per (method, layer type)) and the Findings bullets (`class_findings`). Both read the table of
`kneurons.classes.stats`. Imports no torch.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from kneurons.classes.rankings import FEW_TEST_SEQUENCES, SINK_EXCESS, SINK_SHARE, operation_of
from kneurons.format import class_header, fmt_delta, fmt_p, fmt_signed, md_table, pct
from kneurons.vocab import RANDOM, TARGET_ORDER, format_retention, order_of

# ---------------------------------------------------------------------------------------------
# The summary's words

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
        f"q ≤ {alpha:g} with the Δ interval on the expected side of 0. Columns: own-class effect "
        f"minus the random mean [{level:.0%} interval] and its q; the largest off-target effect "
        "minus the random mean (which class); the call (✓: class-specific). All rows: "
        "class_specificity.parquet; per evaluated class: class_effects.parquet.",
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


def _cells(r) -> list[str]:
    """One class's cells: own-class effect − random [interval]; q; off-target; the call."""
    if np.isnan(r["own_delta"]):
        own = fmt_signed(r["own_prob"])
    else:
        own = fmt_delta(r["own_delta"], r["own_delta_ci_low"], r["own_delta_ci_high"])
    off = r["off_delta"] if not np.isnan(r["off_delta"]) else r["off_prob"]
    mark = " ✓" if bool(r["specific"]) else ""
    off_cell = f"{fmt_signed(off)} ({class_header(r['off_class'])})"
    return [own, fmt_p(r["own_q"]), off_cell, f"{r['effect_kind']}{mark}"]


def _cell_table(cell: pd.DataFrame) -> tuple[str, list[pd.DataFrame]]:
    """The markdown table of one (factor, retention), a row per (method, layer type, class)
    (narrow: the number of classes adds rows, not columns), and its (method, layer type)
    parts."""
    classes = sorted(cell["selected_class"].unique(), key=str)
    header = ["method", "layer type", "class", "own-class effect − random [CI]", "q",
              "off-target − random (class)", "call"]  # fmt: skip
    body, parts = [], []
    for method in sorted(cell["method"].unique()):
        for layer_type in order_of(cell["layer_type"].unique(), TARGET_ORDER):
            sub = cell[(cell["method"] == method) & (cell["layer_type"] == layer_type)]
            for name in classes:
                r = sub[sub["selected_class"] == name]
                cells = ["—"] * 4 if r.empty else _cells(r.iloc[0])
                body.append([method, layer_type, class_header(name), *cells])
            parts.append(sub)
    return md_table(header, body, ["l", "l", "l", "r", "r", "r", "l"]), parts


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
        f"{h} {f'{model}: ' if heading == 1 else ''}Are there class-specific knowledge neurons? "
        "Each class's own units suppressed or amplified",
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
        lines += [f"{h}# {operation.capitalize()} (×{format_retention(factor)}) the top "
                  f"{pct(retention)} of each class's units", ""]  # fmt: skip
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
        what = f"{operation_of(factor)} ×{format_retention(factor)}, top {pct(retention)}"
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
        f"{r['method']}, {r['layer_type']}, top {pct(retention)} (×{format_retention(factor)}): "
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
