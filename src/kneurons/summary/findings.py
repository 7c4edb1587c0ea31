"""The Findings section that opens summary.md, summary.html and the report: what the run found,
in plain sentences generated from its own numbers, then what it cannot tell.

A cell (target, masking variant, retention) is a finding for a method when the method differs
from random selections of the same size in the direction a knowledge-neuron method should
(`keep`: more accuracy kept; `remove`: more lost; one-sided), with the Benjamini-Hochberg
q-value of its test (`kneurons.statistics.random_test`) at or below α (`evaluation.alpha`, 0.05
by default) and the interval of Δ excluding 0 (`kneurons.summary.baseline.is_finding`). Before
any of it, the self-check: every random seed tested as a method against the others
(`kneurons.summary.baseline.self_check`); where more than α of those null tests come out as
findings, the section opens by saying the tests are not to be trusted for this run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from kneurons.classes.report import class_findings
from kneurons.format import fmt, fmt_ci, fmt_delta, fmt_p, isnan, method_order, pct, target_order
from kneurons.statistics import above_chance_p_value
from kneurons.summary.baseline import Statistics, is_finding
from kneurons.summary.tables import per_class, unmasked_rows, variant_rows, variants
from kneurons.vocab import RANDOM

__all__ = ["cell_verdict", "findings_section", "is_finding", "has_claims", "markdown_to_rst"]


def chance_level(stats: Statistics, card: dict | None) -> float | None:
    """Chance accuracy: the test set's majority-class rate (what always answering its most
    frequent class scores); from the card's test counts without it, 1 / classes as a last
    resort."""
    if stats.chance is not None:
        return stats.chance
    counts = ((card or {}).get("counts") or {}).get("test") or {}
    total = sum(int(n) for n in counts.values())
    if total:
        return max(int(n) for n in counts.values()) / total
    unmasked = unmasked_rows(stats.table)
    classes = list((card or {}).get("classes") or [])
    if not classes and not unmasked.empty:
        classes = list(per_class(unmasked.iloc[0]))
    return 1.0 / len(classes) if classes else None


def at_chance(stats: Statistics, card: dict | None, alpha: float = 0.05) -> bool:
    """Is the unmasked model not shown to beat chance: its accuracy interval reaches down to
    chance, or the exact one-sided binomial test of its accuracy against chance (the
    majority-class rate) has p > α (`kneurons.statistics.above_chance_p_value`)?"""
    unmasked = unmasked_rows(stats.table)
    chance = chance_level(stats, card)
    if unmasked.empty or chance is None:
        return False
    rec = unmasked.iloc[0]
    low = rec["accuracy_ci_low"] if not isnan(rec["accuracy_ci_low"]) else rec["accuracy"]
    p = above_chance_p_value(float(rec["accuracy"]), int(rec["n"]), chance)
    return bool(low <= chance or p > alpha)


def self_check_counts(stats: Statistics, alpha: float) -> tuple[int, int, int]:
    """(null tests, raw p ≤ α, findings after the correction) of the seed self-check."""
    check = stats.self_check
    if check is None or check.empty:
        return 0, 0, 0
    tested = check[check["p_test"].notna()]
    raw = int((tested["p_test"] <= alpha).sum())
    found = int(sum(is_finding(r, alpha) for _, r in tested.iterrows()))
    return len(tested), raw, found


def self_check_trusted(stats: Statistics, alpha: float) -> bool | None:
    """Whether the tests hold on this run's own nulls (None: not run): no more than α of the
    seed-as-method tests are findings after the correction, and the raw rejections (p ≤ α)
    no more than a calibrated test gives in 99% of runs (the 0.99 quantile of Binomial(n, α):
    with few null tests one or two rejections are chance, not a broken test)."""
    from scipy import stats as scipy_stats

    n, raw, found = self_check_counts(stats, alpha)
    if not n:
        return None
    return found <= alpha * n and raw <= scipy_stats.binom.ppf(0.99, n, alpha)


def self_check_sentence(stats: Statistics, alpha: float) -> str:
    """One sentence on the self-check, for the limits."""
    n, raw, found = self_check_counts(stats, alpha)
    if not n:
        return ""
    text = (
        f"**Self-check**: each random seed, tested as if it were a method against the other "
        f"seeds of its cell (the same one-sided test and BH correction over these {n} null "
        f"tests), gave {found} findings ({raw} with a raw p ≤ {alpha:g}; a calibrated test "
        f"expects about {alpha * n:.1f} or fewer)"
    )
    if self_check_trusted(stats, alpha):
        return text + ": the tests hold on this run's own nulls."
    return text + ": more than a calibrated test gives, so the tests are not to be trusted here."


def best_per_cell(stats: Statistics, variant: Sequence[str]) -> pd.DataFrame:
    """Per (target, retention) of one variant, the method row with the largest Δ in the expected
    direction (ties: the smaller q)."""
    rows = variant_rows(stats.table, variant)
    rows = rows[(rows["method_family"] != RANDOM) & rows["delta"].notna()]
    if rows.empty:
        return rows
    sign = -1.0 if variant[2] == "remove" else 1.0
    ranked = rows.assign(_gain=sign * rows["delta"]).sort_values(
        ["_gain", "q_value"], ascending=[False, True], kind="stable"
    )
    best = ranked.groupby(["target", "retention"], sort=False).head(1)
    return best.drop(columns="_gain")


def cell_verdict(row, alpha: float) -> str:
    """A tested cell's verdict in words: "beats random" (`is_finding`), "not told apart from
    random", or "untested" (no q-value)."""
    if isnan(row["q_value"]):
        return "untested"
    return "beats random" if is_finding(row, alpha) else "not told apart from random"


def _cell_sentence(row, alpha: float) -> str:
    verdict = cell_verdict(row, alpha)
    return (
        f"{pct(row['retention'])}: {row['method']} "
        f"{fmt_ci(row['accuracy'], row['accuracy_ci_low'], row['accuracy_ci_high'])} vs random "
        f"{fmt(row['random_mean'])} ± {fmt(row['random_std'])}, "
        f"Δ {fmt_delta(row['delta'], row['delta_ci_low'], row['delta_ci_high'])}, "
        f"q = {fmt_p(row['q_value'])}, one-sided ({verdict})"
    )


def _list(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _insensitive_targets(
    stats: Statistics, variant: Sequence[str], margin: float
) -> dict[str, float]:
    """Targets (keep direction) whose random selections are equivalent to the unmasked model at
    every retention level (`kneurons.summary.baseline.equivalence`: TOST within ±`margin`):
    target -> the lowest retention level tested."""
    if variant[2] != "keep" or stats.random.empty or "equivalent" not in stats.random:
        return {}
    band = stats.random
    for col, value in zip(("mode", "scope", "direction"), variant, strict=True):
        band = band[band[col] == value]
    out = {}
    for target in target_order(band["target"].unique()):
        rows = band[band["target"] == target]
        if len(rows) and rows["equivalent"].astype(bool).all():
            out[target] = float(rows["retention"].min())
    return out


def variant_findings(
    stats: Statistics,
    variant: Sequence[str],
    alpha: float,
    margin: float = 0.02,
    labels: Mapping[str, str] | None = None,
) -> list[str]:
    """Bullets of one variant: per method the cells it wins, per target the best method at
    every retention level with Δ [CI] and q, and the targets where nothing beats random.
    `labels`: target -> its name in the bullets (a latent type of poor SAEs says so,
    `kneurons.summary.latents.latent_labels`)."""
    labels = labels or {}
    best = best_per_cell(stats, variant)
    if best.empty:
        return []
    rows = variant_rows(stats.table, variant)
    methods = method_order(rows.loc[rows["method_family"] != RANDOM, "method"].unique())
    wins = rows[rows["method_family"] != RANDOM]
    wins = wins[[is_finding(r, alpha) for _, r in wins.iterrows()]] if len(wins) else wins
    verb = "removes more accuracy than" if variant[2] == "remove" else "keeps more accuracy than"
    bullets = []
    for method in methods:
        mine = wins[wins["method"] == method]
        if mine.empty:
            continue
        parts = []
        for target in target_order(mine["target"].unique()):
            cells = mine[mine["target"] == target].sort_values("retention", ascending=False)
            levels = [
                f"{pct(r)} (q {fmt_p(q)})"
                for r, q in zip(cells["retention"], cells["q_value"], strict=True)
            ]
            parts.append(f"{labels.get(target, target)} at {_list(levels)}")
        bullets.append(f"**{method}** {verb} random selections for {'; '.join(parts)}.")
    insensitive = _insensitive_targets(stats, variant, margin)
    for target, lowest in insensitive.items():
        rec = unmasked_rows(stats.table).iloc[0]
        name = labels.get(target, target)
        bullets.append(
            f"**Masking {name} cannot tell methods apart**: random selections keeping as "
            f"little as {pct(lowest)} of the {target} units are equivalent to the unmasked "
            f"model ({fmt_ci(rec['accuracy'], rec['accuracy_ci_low'], rec['accuracy_ci_high'])}"
            f") within ±{margin:g} accuracy at every retention level (two one-sided tests at "
            f"α = {alpha:g}): the task does not need the other {target} units, so keeping the "
            "right ones has nothing to show."
        )
    tested = set(rows.loc[rows["q_value"].notna(), "target"])
    silent = [t for t in target_order(tested) if t not in set(wins["target"])]
    if silent:
        bullets.append(
            f"**No method can be told apart from random** for "
            f"{_list([labels.get(t, t) for t in silent])}: at every "
            "retention level the best method's q-value is above "
            f"{alpha:g} or its Δ interval includes 0."
        )
    for target in target_order(best["target"].unique()):
        cells = best[best["target"] == target].sort_values("retention", ascending=False)
        sentences = "; ".join(_cell_sentence(r, alpha) for _, r in cells.iterrows())
        name = labels.get(target, target)
        bullets.append(f"{name} — best method per retention level: {sentences}.")
    return bullets


def limits(
    stats: Statistics,
    n_boot: int | None,
    alpha: float,
    completeness: pd.DataFrame | None,
    stability: pd.DataFrame | None,
    notes: Sequence[str] = (),
) -> list[str]:
    """What the run cannot tell: the p-value floors its seeds and resamples allow, the
    multiple-testing family, covered cells, IG completeness, stability, and the `notes` of
    the caution checks (tiny test set, small classes)."""
    out = list(notes)
    seeds = stats.random["n_seeds"] if not stats.random.empty else pd.Series(dtype=int)
    if not seeds.empty:
        n = int(seeds.min())
        out.append(
            f"**The test against random** (one-sided: keep — the method keeps more accuracy "
            "than random selections of the same size; remove — it loses more): Δ = method − "
            "mean of the random seeds, against the spread of the seeds and the test set's "
            "sampling noise together (seeds and test sequences resampled jointly, within "
            "classes and by homology cluster where the split has clusters). A method that "
            "ties or trails k random seeds cannot get a p-value below (k + 1) / (seeds + 1); "
            f"with {n} seeds a tie with one seed gives at least {fmt_p(2 / (n + 1))}. "
            "benchmarks/calibration.py shows its false-positive rate at or below α on "
            "simulated nulls (floors, ties, small test sets)."
        )
    tested = int(stats.table["p_test"].notna().sum() + stats.auc["p_test"].notna().sum())
    if tested:
        out.append(
            f"**Multiple testing**: q-values are Benjamini-Hochberg adjusted over one family, "
            f"all {tested} tests of this summary (every method x target x variant x retention "
            f"cell and every AUC). A finding here means q ≤ α = {alpha:g} (false discovery "
            "rate) and a Δ interval excluding 0. The class-specific tests are a family of "
            "their own (their section)."
        )
    check = self_check_sentence(stats, alpha)
    if check:
        out.append(check)
    masked = stats.table[
        (stats.table["method_family"] != RANDOM) & stats.table["random_mean"].notna()
    ]
    if not masked.empty and not stats.random.empty:
        band = stats.random.set_index(["target", "mode", "scope", "direction", "retention"])
        covered = 0
        for _, row in masked.iterrows():
            key = (row["target"], row["mode"], row["scope"], row["direction"], row["retention"])
            low, high = band.loc[key, "band_low"], band.loc[key, "band_high"]
            covered += bool(low <= row["accuracy"] <= high)
        if covered == len(masked):
            out.append(
                "**The random band covers every method**: in every cell each method's accuracy "
                "lies inside the central band of the random seeds, so this run cannot tell the "
                "methods from a random choice of neurons."
            )
    if completeness is not None and not completeness.empty:
        if "n_above_tolerance" in completeness.columns:
            above = int(completeness["n_above_tolerance"].fillna(0).sum())
            total = int(completeness["n_examples"].sum())
            if above:
                out.append(
                    f"**IG integrals above tolerance**: {above} of {total} (example, module) "
                    "integrals still miss completeness by more than atol + rtol x |F(1) − "
                    "F(0)| after the most steps allowed; their attributions, and so IG's "
                    "ranking, are approximate (section Integrated-gradients completeness)."
                )
    if stability is not None and not stability.empty:
        out.append(stability_sentence(stability))
    out.append(
        "**Scope**: neurons are scored on training sequences of one fine-tuned model and "
        "evaluated on its held-out test set; the intervals cover the test sequences and the "
        "random draws, not another fine-tuning, another scoring sample or another dataset "
        "(the stability section measures the first two where the run has them)."
    )
    return out


def scoring_sample_note(per_class: dict[str, int] | None) -> str:
    """One bullet: how many training sequences per class the units were ranked on (the score
    files' `examples_per_class`); a class without any has no per-class ranking."""
    if not per_class:
        return ""
    total = sum(per_class.values())
    counts = ", ".join(f"{c}: {k}" for c, k in per_class.items())
    text = (
        f"**Scoring sample**: units were ranked on {total} training sequences, stratified by "
        f"class ({counts})"
    )
    missing = [c for c, k in per_class.items() if k == 0]
    if missing:
        return text + (
            f"; {', '.join(missing)} had no training sequence to score, so no per-class ranking."
        )
    return text + "; a ranking rests on these sequences, not on the whole training set."


def stability_sentence(stability: pd.DataFrame) -> str:
    """One sentence: per method, the split-half Jaccard at the lowest retention level, by layer
    type, beside what unrelated selections would share."""
    halves = stability[stability["comparison"] == "split_half"]
    if halves.empty:
        return ""
    r_min = halves["retention"].min()
    parts = []
    for method, rows in halves[halves["retention"] == r_min].groupby("method", sort=True):
        cells = [
            f"{row.layer_type} {fmt(row.jaccard, 2)}"
            for row in rows.itertuples(index=False)
            if not isnan(row.jaccard)
        ]
        chance = rows["jaccard_chance"].mean()
        parts.append(f"{method}: {', '.join(cells)} (unrelated selections: {fmt(chance, 3)})")
    return (
        f"**Stability**: the top {pct(r_min)} chosen from two halves of the scoring examples "
        f"overlap (Jaccard) {'; '.join(parts)}. A selection that changes with the examples is "
        "a property of the sample as much as of the model."
    )


def findings_section(
    stats: Statistics,
    card: dict | None = None,
    level: float = 0.95,
    n_boot: int | None = None,
    completeness: pd.DataFrame | None = None,
    stability: pd.DataFrame | None = None,
    notes: Sequence[str] = (),
    classes: pd.DataFrame | None = None,
    alpha: float = 0.05,
    margin: float = 0.02,
    labels: Mapping[str, str] | None = None,
) -> str:
    """## Findings: the answer first (see the module docstring), then what the run cannot tell;
    `classes` (`kneurons.classes.stats.specificity_table`) adds the class-specific findings.
    `alpha`: the significance level of every finding; `margin`: the equivalence margin
    (accuracy); `labels`: target -> its name in the bullets (`variant_findings`)."""
    parts = ["## Findings", ""]
    if self_check_trusted(stats, alpha) is False:
        n, raw, found = self_check_counts(stats, alpha)
        parts += [
            "**Read this first: the tests against random are not to be trusted for this run.** "
            f"Random seeds tested as if they were methods gave {found} findings and {raw} raw "
            f"p ≤ {alpha:g} in {n} null tests, more than the α = {alpha:g} a calibrated test "
            "allows; the findings below may be false. Add random seeds "
            "(scoring.random_seeds) or test sequences before reading them.",
            "",
        ]
    masked = stats.table[stats.table["method_family"] != RANDOM]
    masked = masked[masked["method_family"] != "unmasked"]
    unmasked = unmasked_rows(stats.table)
    if at_chance(stats, card, alpha):
        rec = unmasked.iloc[0]
        chance = chance_level(stats, card)
        parts += [
            "**No knowledge-neuron claim is possible from this run.** The unmasked model's test "
            f"accuracy {fmt_ci(rec['accuracy'], rec['accuracy_ci_low'], rec['accuracy_ci_high'])}"
            f" is not shown to exceed chance ({fmt(chance)}, the test set's majority-class rate;"
            f" one-sided exact binomial p = "
            f"{fmt_p(above_chance_p_value(float(rec['accuracy']), int(rec['n']), chance))}):"
            " the model has learned nothing measurable "
            "about the classes, so there is no knowledge for any neuron to hold, and every "
            "masking result below measures noise. Train longer or on more data, or start from "
            "pretrained weights, before reading the tables.",
            "",
        ]
    elif masked.empty:
        parts += ["No masked evaluations: nothing to compare.", ""]
    elif stats.random.empty:
        parts += [
            "**No random baseline**: without random selections of the same size no cell can "
            "be tested; add `random` to scoring.methods.",
            "",
        ]
    else:
        found = False
        for variant in variants(stats.table):
            bullets = variant_findings(stats, variant, alpha, margin, labels)
            if not bullets:
                continue
            found = found or any(
                is_finding(r, alpha) for _, r in best_per_cell(stats, variant).iterrows()
            )
            parts += [f"**{' / '.join(variant)}** (mode / scope / direction):", ""]
            parts += [f"- {b}" for b in bullets] + [""]
        tested = stats.table["q_value"].notna().any()
        if not tested:
            parts.insert(
                2,
                "**No cell could be tested**: the tests need at least two random seeds that "
                "differ, and each evaluation's per-sequence results (column `correct`).\n",
            )
        elif not found:
            parts.insert(
                2,
                "**No method beats random selections anywhere in this run**: no cell has a "
                f"q-value at or below {alpha:g} with a Δ interval excluding 0.\n",
            )
    class_bullets = class_findings(classes, alpha)
    if class_bullets and not at_chance(stats, card, alpha):
        parts += ["**Class-specific** (each class's own top units suppressed or amplified):", ""]
        parts += [f"- {b}" for b in class_bullets] + [""]
    cannot = [x for x in limits(stats, n_boot, alpha, completeness, stability, notes) if x]
    parts += ["### What this run cannot tell", "", *(f"- {x}" for x in cannot)]
    return "\n".join(parts).rstrip()


def markdown_to_rst(text: str) -> str:
    """The findings' markdown (headings, bullets, bold) as reStructuredText for the report's
    front page: headings underlined, everything else is valid in both."""
    out = []
    for line in text.splitlines():
        if line.startswith("### "):
            title = line[4:]
            out += [title, "~" * len(title)]
        elif line.startswith("## "):
            title = line[3:]
            out += [title, "-" * len(title)]
        else:
            out.append(line.replace("`", "``"))
    return "\n".join(out) + "\n"


def has_claims(stats: Statistics, alpha: float = 0.05) -> bool:
    """Is any cell a finding (for tests and callers that need a yes/no)?"""
    return any(
        is_finding(r, alpha)
        for v in variants(stats.table)
        for _, r in best_per_cell(stats, v).iterrows()
    )
