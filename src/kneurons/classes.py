"""Class-specific knowledge neurons: suppress or amplify each class's own top units and measure
what happens to every class (the causal test of Dai et al. 2022, per EC class).

Targets (rule `evaluate_classes`, one cached file per (model, layer type, method, factor,
retention), `CLASS_EVAL_FILE`): for every class c, the top r% units of one layer type (all its
layers) ranked by class c's own scores (the `label = c` rows of the score and selection files)
are multiplied by `factor` (0 suppresses them, 2 doubles their output), every other unit runs
normally, and the whole test set is evaluated. A random seed's file holds one row: its random
units (ranked by the seed's scores, not by any class) of the same size, the baseline. Each row
keeps, per test sequence, the probability of the true class and whether the prediction is
right, with and without the change (`true_prob`, `correct`, `base_true_prob`, `base_correct`).

Measures (`effects_table`, `specificity_table`): for a row and an evaluated class e, the change
of e's accuracy and of e's mean true-class probability from the unchanged model (Δ_e). The
specificity for the selected class c is Δ_c minus the mean of Δ_e over the other classes: a
class's own neurons, suppressed, should take that class's knowledge and leave the others
(negative specificity); amplified, they should raise its confidence (positive). Random units of
the same size give the same number for every class c (the same units, the class's own Δ minus
the others'): the band a class-specific selection must leave. The statistics are those of the
rest of the summary (`kneurons.statistics`): bootstrap over test sequences (resampled within
each class, paired across all rows), the random band over seeds, the t and bootstrap p-values
against random combined by their maximum, Benjamini-Hochberg q-values over all cells.

Refinement (`shared_units`): a unit in the top set of more than `shared_fraction` of the
classes is shared (it ranks high for most classes: general machinery, not one class's
knowledge); the table counts, per class, how many of its selected units are shared and how many
remain class-specific.

Imports no torch (the masks are built in `kneurons.class_targets`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from kneurons.selection import pick, selected
from kneurons.statistics import (
    band,
    bh_adjust,
    combined_p_value,
    empirical_p_value,
    paired_delta,
    percentile_interval,
    t_p_value,
)
from kneurons.summary.format import class_header, fmt_delta, fmt_p, fmt_signed, md_table, pct
from kneurons.vocab import ALL_CLASSES, RANDOM, TARGET_ORDER, order_of

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
VECTOR_COLUMNS = ("true_prob", "correct", "base_true_prob", "base_correct")
GROUP = ["layer_type", "factor", "retention"]  # the cells in which methods meet random
# metric -> per-sequence columns (changed, unchanged)
METRICS = {"prob": ("true_prob", "base_true_prob"), "acc": ("correct", "base_correct")}
FEW_TEST_SEQUENCES = 5  # a class with fewer test sequences is flagged in the summary


def format_factor(value: float | str) -> str:
    """0 -> "0", 2.0 -> "2", 0.5 -> "0.5": the {factor} wildcard as written in paths."""
    return f"{float(value):g}"


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


def _matrix(evals: pd.DataFrame, column: str) -> np.ndarray:
    values = [np.asarray(v, dtype=np.float64) for v in evals[column]]
    if not values:
        return np.zeros((0, 0))
    if len({len(v) for v in values}) != 1:
        raise ValueError(f"{column}: rows cover different numbers of test sequences")
    return np.vstack(values)


def _class_index(y_true, classes: Sequence[str]) -> dict[int, np.ndarray]:
    y = np.asarray(y_true, dtype=np.int64)
    return {e: np.flatnonzero(y == e) for e in range(len(classes)) if (y == e).any()}


def _check(evals: pd.DataFrame, y_true) -> None:
    missing = [c for c in (*CLASS_KEY_COLUMNS, *VECTOR_COLUMNS) if c not in evals.columns]
    if missing:
        raise ValueError(f"class-specific evaluations lack columns {missing}")
    n = len(np.asarray(y_true))
    lengths = {len(v) for column in VECTOR_COLUMNS for v in evals[column]}
    if lengths and lengths != {n}:
        raise ValueError(
            f"class-specific evaluations hold {sorted(lengths)} sequences, the test set {n}: "
            "they were computed on another test set"
        )


def effects_table(evals: pd.DataFrame, y_true, classes: Sequence[str]) -> pd.DataFrame:
    """One row per (evaluation row, evaluated class e): e's accuracy and mean true-class
    probability with and without the change, their changes (`delta_acc`, `delta_prob`), and
    the changes corrected by the mean change of the random rows of the same (layer type,
    factor, retention) (`corrected_delta_*`; NaN without random rows)."""
    _check(evals, y_true)
    index = _class_index(y_true, classes)
    rows = []
    base = evals.reset_index(drop=True)
    values = {name: (_matrix(base, a), _matrix(base, b)) for name, (a, b) in METRICS.items()}
    for i, row in base.iterrows():
        key = {c: row[c] for c in CLASS_KEY_COLUMNS}
        for e, idx in index.items():
            out = {**key, "evaluated_label": e, "evaluated_class": str(classes[e])}
            out["n_evaluated"] = len(idx)
            for name, (changed, unchanged) in values.items():
                out[f"base_{name}"] = float(unchanged[i, idx].mean())
                out[name] = float(changed[i, idx].mean())
                out[f"delta_{name}"] = out[name] - out[f"base_{name}"]
            rows.append(out)
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    is_random = table["method_family"] == RANDOM
    for name in METRICS:
        mean_random = table[is_random].groupby([*GROUP, "evaluated_label"])[f"delta_{name}"].mean()
        keys = pd.MultiIndex.from_frame(table[[*GROUP, "evaluated_label"]])
        table[f"corrected_delta_{name}"] = (
            table[f"delta_{name}"].to_numpy() - mean_random.reindex(keys).to_numpy()
        )
    table["seed"] = table["seed"].astype("Int64")
    return table


def _specificity(per_class: dict[int, np.ndarray], c: int) -> np.ndarray:
    """Δ_c minus the mean Δ_e of the other classes; arrays (..., ) per class."""
    others = [v for e, v in per_class.items() if e != c]
    return per_class[c] - np.mean(others, axis=0)


def specificity_table(
    evals: pd.DataFrame,
    y_true,
    classes: Sequence[str],
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    shared: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per (evaluation row, selected class c): the specificity of the change for c
    (`specificity_prob`, `specificity_acc`) with its bootstrap interval; for scored methods the
    random band of the same cell for the same class (`random_*`), the specificity minus the
    random mean (`corrected_*`, with a paired bootstrap interval), the t, bootstrap and combined
    p-values against random in the direction of the factor, and q-values (BH over every scored
    row). Random rows appear once per class (their units are the same for every class). `shared`
    (`shared_units`) adds the refinement counts. Needs two classes with test sequences."""
    _check(evals, y_true)
    index = _class_index(y_true, classes)
    if len(index) < 2:
        return pd.DataFrame()
    rng = np.random.default_rng(seed)
    counts = {
        e: rng.multinomial(len(idx), np.full(len(idx), 1.0 / len(idx)), size=n_boot)
        for e, idx in index.items()
    }
    base = evals.reset_index(drop=True)
    observed, boot = {}, {}  # metric -> class -> (rows,) / (rows, n_boot)
    for name, (a, b) in METRICS.items():
        delta = _matrix(base, a) - _matrix(base, b)
        observed[name] = {e: delta[:, idx].mean(1) for e, idx in index.items()}
        boot[name] = {e: delta[:, idx] @ counts[e].T / len(idx) for e, idx in index.items()}

    rows = []
    for _, group in base.groupby(GROUP, sort=True):
        random_rows = group.index[group["method_family"] == RANDOM].to_numpy()
        for i, row in group.iterrows():
            is_random = row["method_family"] == RANDOM
            targets = list(index) if is_random else [int(row["label"])]
            for c in targets:
                if c not in index:
                    continue
                out = {k: row[k] for k in CLASS_KEY_COLUMNS}
                out["label"], out["selected_class"] = c, str(classes[c])
                out["n_class"] = len(index[c])
                alternative = alternative_of_factor(row["factor"])
                for name in METRICS:
                    spec_obs = _specificity(observed[name], c)
                    spec_boot = _specificity(boot[name], c)
                    out[f"delta_{name}_class"] = float(observed[name][c][i])
                    out[f"delta_{name}_others"] = float(
                        np.mean([v[i] for e, v in observed[name].items() if e != c])
                    )
                    out[f"specificity_{name}"] = float(spec_obs[i])
                    low, high = percentile_interval(spec_boot[i], level)
                    out[f"specificity_{name}_ci_low"] = float(low)
                    out[f"specificity_{name}_ci_high"] = float(high)
                    null = spec_obs[random_rows]
                    stats = band(null, level)
                    for k in ("mean", "std", "band_low", "band_high", "n"):
                        out[f"random_{name}_{k}"] = stats[k] if not is_random else np.nan
                    if is_random or alternative is None or len(null) == 0:
                        for k in ("corrected", "corrected_ci_low", "corrected_ci_high"):
                            out[f"{k}_{name}"] = np.nan
                        out[f"p_t_{name}"] = out[f"p_boot_{name}"] = np.nan
                        out[f"p_empirical_{name}"] = out[f"p_{name}"] = np.nan
                        continue
                    delta = paired_delta(
                        spec_boot[i],
                        spec_boot[random_rows],
                        float(spec_obs[i] - null.mean()),
                        level,
                        alternative,
                    )
                    out[f"corrected_{name}"] = delta["delta"]
                    out[f"corrected_ci_low_{name}"] = delta["delta_ci_low"]
                    out[f"corrected_ci_high_{name}"] = delta["delta_ci_high"]
                    out[f"p_t_{name}"] = t_p_value(float(spec_obs[i]), null, alternative)
                    out[f"p_boot_{name}"] = delta["p_boot"]
                    out[f"p_empirical_{name}"] = empirical_p_value(
                        float(spec_obs[i]), null, alternative
                    )[0]
                    out[f"p_{name}"] = combined_p_value(out[f"p_t_{name}"], delta["p_boot"])
                rows.append(out)
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    for name in METRICS:
        table[f"q_{name}"] = bh_adjust(table[f"p_{name}"].to_numpy())
        lower = table[f"corrected_ci_high_{name}"] < 0
        upper = table[f"corrected_ci_low_{name}"] > 0
        direction = np.where(table["factor"] > 1, upper, lower)
        table[f"specific_{name}"] = (table[f"q_{name}"] <= 0.05) & direction
    # the unchanged model's accuracy and its interval: at chance there is no knowledge to find
    base_correct = _matrix(base.iloc[:1], "base_correct")[0]
    n = len(base_correct)
    resampled = base_correct @ rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot).T / n
    table["base_accuracy"] = float(base_correct.mean())
    table["base_accuracy_ci_low"] = float(percentile_interval(resampled, level)[0])
    table["chance"] = 1.0 / len(classes)
    table["seed"] = table["seed"].astype("Int64")
    table["selected_class"] = table["selected_class"].astype("string")
    if shared is not None and not shared.empty:
        table = table.merge(shared, on=["method", "layer_type", "retention", "label"], how="left")
    return table


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


def specificity_section(
    table: pd.DataFrame | None, model: str, level: float = 0.95, heading: int = 2
) -> str:
    """The summary section: per operation and retention, each method's specificity per class
    (random-corrected, with its interval and q-value), the random band, and a sentence per
    (method, layer type) saying whether the class's own neurons act on that class alone.
    Empty without a table."""
    if table is None or table.empty:
        return ""
    h = "#" * heading
    scored = table[table["method_family"] != RANDOM]
    lines = [
        f"{h} {model}: class-specific knowledge neurons — suppress or amplify each class's own "
        "units",
        "",
        "For every class c, the top units of one layer type ranked by class c's own scores are "
        "multiplied by a factor (×0 suppresses them, ×2 amplifies them; all other units run "
        "normally) and every test class is evaluated. **Specificity** = change of class c's mean "
        "true-class probability minus the mean change of the other classes (suppressing: "
        "negative when the units hold c's knowledge; amplifying: positive). Random units of the "
        "same size give the band; cells show the specificity minus the random mean "
        f"[{level:.0%} paired bootstrap interval], with q (BH over all cells; ✓ = q ≤ 0.05 and "
        "the interval excludes 0 in the expected direction). All rows: "
        "class_specificity.parquet; per evaluated class: class_effects.parquet.",
        "",
    ]
    if scored.empty:
        lines.append(
            "Only random selections were evaluated (no scored method): nothing to compare."
        )
        return "\n".join(lines)
    chance = model_at_chance(table)
    if chance:
        lines += [
            "**The unchanged model is at chance** (test accuracy "
            f"{table['base_accuracy'].iloc[0]:.3f}, interval down to "
            f"{table['base_accuracy_ci_low'].iloc[0]:.3f}; chance {table['chance'].iloc[0]:.3f}): "
            "it holds no class knowledge for any unit to carry, so nothing below is a finding, "
            "whatever its q-value.",
            "",
        ]
    if table.loc[table["method_family"] == RANDOM].empty:
        lines += [
            "**No random baseline** (add `random` to scoring.methods): the specificities below "
            "cannot be told from what any units of the same size would do; no p-values.",
            "",
        ]
    few = table.loc[table["n_class"] < FEW_TEST_SEQUENCES, "selected_class"].unique()
    if len(few):
        names = ", ".join(class_header(c) for c in sorted(few))
        lines += [
            f"**Few test sequences** for {names} (< {FEW_TEST_SEQUENCES}): their specificity "
            "rests on too few sequences to be read as a finding.",
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
    verdicts = []
    for (factor, retention), cell in scored.groupby(["factor", "retention"], sort=True):
        operation = operation_of(factor)
        classes = sorted(cell["selected_class"].unique(), key=str)
        lines += [f"{h}# {operation} (×{format_factor(factor)}), top {pct(retention)} of each "
                  "class's units", ""]  # fmt: skip
        header = ["method", "layer type", *(class_header(c) for c in classes)]
        body = []
        for method in sorted(cell["method"].unique()):
            for layer_type in order_of(cell["layer_type"].unique(), TARGET_ORDER):
                sub = cell[(cell["method"] == method) & (cell["layer_type"] == layer_type)]
                cells = []
                for name in classes:
                    r = sub[sub["selected_class"] == name]
                    if r.empty:
                        cells.append("—")
                        continue
                    r = r.iloc[0]
                    text = fmt_delta(
                        r["corrected_prob"], r["corrected_ci_low_prob"], r["corrected_ci_high_prob"]
                    )
                    if np.isnan(r["corrected_prob"]):
                        text = fmt_signed(r["specificity_prob"])
                    mark = " ✓" if bool(r["specific_prob"]) else ""
                    cells.append(f"{text}, q {fmt_p(r['q_prob'])}{mark}")
                body.append([method, layer_type, *cells])
                verdict = _verdict(sub, operation, factor, retention, method, layer_type)
                if chance and verdict:
                    verdict += " Not a finding: the model is at chance."
                verdicts.append(verdict)
        lines += [md_table(header, body, ["l", "l", *["r"] * len(classes)]), ""]
        randoms = table[
            (table["method_family"] == RANDOM)
            & (table["factor"] == factor)
            & (table["retention"] == retention)
        ]
        if not randoms.empty:
            spread = randoms.groupby("layer_type")["specificity_prob"].agg(["mean", "std", "count"])
            words = "; ".join(
                f"{lt} {fmt_signed(s['mean'])} ± {s['std']:.3f}"
                for lt, s in spread.reindex(order_of(spread.index, TARGET_ORDER)).iterrows()
            )
            n_seeds = randoms["method"].nunique()
            lines += [
                f"Random units ({n_seeds} seeds, every class): specificity {words} "
                "(mean ± std over seeds and classes).",
                "",
            ]
    lines += ["In words:", ""] + [f"- {v}" for v in verdicts if v] + [""]
    if "n_shared" in table.columns:
        shared = scored.dropna(subset=["n_shared"])
        if not shared.empty:
            agg = shared.groupby(["method", "layer_type", "retention"])[
                ["n_selected_units", "n_shared"]
            ].mean()
            parts = [
                f"{m} {lt} top {pct(r)}: {v['n_shared']:.0f} of {v['n_selected_units']:.0f}"
                for (m, lt, r), v in agg.iterrows()
            ]
            lines += [
                "Shared units (in the top set of most classes; mean per class): "
                + "; ".join(parts)
                + ". The rest are each class's own.",
                "",
            ]
    return "\n".join(lines).rstrip() + "\n"


def model_at_chance(table: pd.DataFrame) -> bool:
    """Whether the unchanged model's accuracy interval reaches chance (1 / classes), as the
    summary's Findings judge it (`kneurons.summary.findings.at_chance`)."""
    if "base_accuracy_ci_low" not in table.columns or table.empty:
        return False
    return bool(table["base_accuracy_ci_low"].iloc[0] <= table["chance"].iloc[0])


def class_findings(table: pd.DataFrame | None, alpha: float = 0.05) -> list[str]:
    """Findings bullets: per (factor, retention), the (method, layer type) cells whose class
    units act on their own class beyond random, with how many classes; or that none do. None
    when the unchanged model is at chance."""
    if table is None or table.empty or model_at_chance(table):
        return []
    scored = table[table["method_family"] != RANDOM]
    if scored.empty or scored["q_prob"].isna().all():
        return []
    bullets = []
    for (factor, retention), cell in scored.groupby(["factor", "retention"], sort=True):
        what = f"{operation_of(factor)} ×{format_factor(factor)}, top {pct(retention)}"
        hits = []
        for (method, layer_type), sub in cell.groupby(["method", "layer_type"], sort=True):
            k = int(sub["specific_prob"].fillna(False).astype(bool).sum())
            if k:
                spec = sub.loc[sub["specific_prob"].astype(bool), "corrected_prob"]
                hits.append(
                    f"{method} {layer_type} ({k} of {sub['selected_class'].nunique()} classes; "
                    f"specificity − random {fmt_signed(spec.min())} to {fmt_signed(spec.max())})"
                )
        if hits:
            bullets.append(f"{what}: class-specific beyond random for " + "; ".join(hits) + ".")
        else:
            bullets.append(
                f"{what}: no method's class units act on their own class beyond random "
                f"(no cell with q ≤ {alpha:g} and an interval excluding 0)."
            )
    return bullets


def _verdict(sub, operation, factor, retention, method, layer_type) -> str:
    """One sentence: for how many classes the method's class-c units act on c beyond random."""
    if sub.empty:
        return ""
    n = sub["selected_class"].nunique()
    k = int(sub["specific_prob"].fillna(False).astype(bool).sum())
    own = sub["delta_prob_class"]
    what = {
        "suppress": "suppressing",
        "dampen": "dampening",
        "amplify": "amplifying",
        "identity": "leaving",
    }[operation]
    text = (
        f"{method}, {layer_type}, top {pct(retention)} (×{format_factor(factor)}): "
        f"{what} each class's own units changes that class's true-class probability by "
        f"{fmt_signed(own.min())} to {fmt_signed(own.max())}; "
    )
    if sub["q_prob"].isna().all():
        return text + "no random baseline to test it against."
    if k == n:
        return text + f"class-specific beyond random for all {n} classes."
    if k == 0:
        return text + f"**not** class-specific beyond random for any of the {n} classes."
    names = ", ".join(class_header(c) for c in sub.loc[sub["specific_prob"], "selected_class"])
    return text + f"class-specific beyond random for {k} of {n} classes ({names})."


def plot_class_matrix(
    effects: pd.DataFrame, path_png: str | os.PathLike, method: str, layer_type: str
) -> None:
    """Specificity matrices of one method and layer type: a panel per (factor, retention),
    selected class (rows) x evaluated class (columns), the change of the evaluated class's mean
    true-class probability minus the random units' mean change (blue: lowered, red: raised).
    A class-specific selection shows a strong diagonal. Writes a PNG and an SVG beside it."""
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
        1, len(cells), figsize=(0.9 + 0.55 * len(classes) * len(cells) + 1.2 * len(cells), 3.6),
        squeeze=False,
    )  # fmt: skip
    limit = float(np.nanmax(np.abs(sub[column].to_numpy()))) or 1.0
    image = None
    for ax, (factor, retention) in zip(axes[0], cells, strict=True):
        part = sub[(sub["factor"] == factor) & (sub["retention"] == retention)]
        grid = part.pivot_table(
            index="selected_class", columns="evaluated_class", values=column, aggfunc="mean"
        ).reindex(index=classes, columns=classes)
        image = ax.imshow(grid.to_numpy(), cmap="RdBu_r", vmin=-limit, vmax=limit)
        for (r, c), value in np.ndenumerate(grid.to_numpy()):
            if np.isfinite(value):
                ax.text(c, r, f"{value:+.2f}", ha="center", va="center", fontsize=7)
        labels = [class_header(c) for c in classes]
        ax.set_xticks(range(len(classes)), labels, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(len(classes)), labels, fontsize=8)
        ax.set_xlabel("evaluated class", fontsize=8)
        ax.set_title(
            f"{operation_of(factor)} ×{format_factor(factor)}, top {pct(retention)}", fontsize=9
        )
    axes[0, 0].set_ylabel("units of class", fontsize=8)
    corrected = column.startswith("corrected")
    label = "Δ true-class probability" + (" − random mean" if corrected else "")
    fig.colorbar(image, ax=list(axes[0]), shrink=0.8, label=label)
    title = f"{method}, {layer_type}: each class's own units, per evaluated class"
    fig.suptitle(title, fontsize=10)
    save_figure(fig, path_png)


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
