"""The answers in short, at the top of summary.md: one sentence per question, written from the
numbers the Findings already compute (`kneurons.summary.findings`), no new statistic.

- Does any method beat random selections of the same size, where, and how sure (the cells that
  are findings: q ≤ α and Δ's interval excluding 0; the most certain one; the self-check)?
- Ground truth (with residue maps): do the selections' contrast maps pick out the known sites
  above every random seed, and the decoys, which carry no label (`contrast_verdicts`)?
- Class-specific neurons (with the class-specific stage): is any set of a class's own units
  called class-specific (`kneurons.classes.stats`)?
- SAE latents (when latent types are scored): do they beat random where neurons do, how their
  accuracy intervals sit beside the neurons' at the same retention, which SAEs are poor
  (`kneurons.summary.latents`).

Where the run cannot answer (the model at chance, nothing tested, no random baseline), the
sentence says so and why.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from kneurons.classes.report import KIND_WORDS, model_at_chance
from kneurons.format import fmt, fmt_ci, fmt_delta, fmt_p, method_order, pct, target_order
from kneurons.residues.recovery import NULL_SITE_KINDS, contrast_verdicts
from kneurons.summary.baseline import Statistics, is_finding
from kneurons.summary.findings import at_chance, chance_level, self_check_trusted
from kneurons.summary.gallery import variant_words
from kneurons.summary.latents import latent_answer, latent_labels
from kneurons.summary.tables import MIN_TEST_SEQUENCES, unmasked_rows
from kneurons.vocab import RANDOM

HEADING = "## The answers in short"
BEAT = "**Does any method beat random selections of the same size?**"
SITES = "**Do the kept neurons act on the known sites?**"
MOTIFS = "**Are the planted motifs recovered (decoys as control)?**"
CLASSES = "**Are there class-specific neurons?**"


def _list(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _unmasked_words(stats: Statistics) -> str:
    rec = unmasked_rows(stats.table).iloc[0]
    return fmt_ci(rec["accuracy"], rec["accuracy_ci_low"], rec["accuracy_ci_high"])


def _tested(stats: Statistics) -> pd.DataFrame:
    rows = stats.table
    rows = rows[~rows["method_family"].isin([RANDOM, "unmasked"])]
    return rows[rows["q_value"].notna()]


def _where(wins: pd.DataFrame, several_variants: bool, labels: Mapping[str, str]) -> str:
    """Per method (and variant), the targets it wins and at which retention levels."""
    parts = []
    for (mode, scope, direction), by_variant in wins.groupby(["mode", "scope", "direction"]):
        for method in method_order(by_variant["method"].unique()):
            mine = by_variant[by_variant["method"] == method]
            targets = []
            for target in target_order(mine["target"].unique()):
                levels = sorted(mine.loc[mine["target"] == target, "retention"], reverse=True)
                name = labels.get(target, target)
                targets.append(f"{name} ({', '.join(pct(r) for r in levels)})")
            lead = f"{variant_words(mode, scope, direction)}: " if several_variants else ""
            parts.append(f"{lead}{method} for {_list(targets)}")
    return "; ".join(parts)


def _cell_words(row, labels: Mapping[str, str]) -> str:
    what = "kept" if row["direction"] == "keep" else "left after removing them"
    delta = fmt_delta(row["delta"], row["delta_ci_low"], row["delta_ci_high"])
    return (
        f"{row['method']}'s top {pct(row['retention'])} of "
        f"{labels.get(row['target'], row['target'])} "
        f"({variant_words(row['mode'], row['scope'], row['direction'])}): accuracy {what} "
        f"{fmt_ci(row['accuracy'], row['accuracy_ci_low'], row['accuracy_ci_high'])} vs random "
        f"{fmt(row['random_mean'])}, Δ {delta}, "
        f"q = {fmt_p(row['q_value'])}"
    )


def beat_random_sentence(
    stats: Statistics,
    card: dict | None = None,
    alpha: float = 0.05,
    labels: Mapping[str, str] | None = None,
) -> str:
    """Does any method beat random, where, how sure; or why the run cannot tell. `labels`:
    target -> its name (a latent type of poor SAEs says so)."""
    labels = labels or {}
    unmasked = unmasked_rows(stats.table)
    masked = stats.table[~stats.table["method_family"].isin([RANDOM, "unmasked"])]
    if not unmasked.empty and at_chance(stats, card, alpha):
        return (
            f"{BEAT} This run cannot answer: the unmasked model's test accuracy "
            f"{_unmasked_words(stats)} is not shown to exceed chance "
            f"({fmt(chance_level(stats, card))}), so there is no class knowledge for any neuron "
            "to hold."
        )
    if masked.empty:
        return f"{BEAT} This run cannot answer: it has no masked evaluations."
    if stats.random.empty:
        return f"{BEAT} This run cannot answer: it has no random selections to compare with."
    tested = _tested(stats)
    if tested.empty:
        return (
            f"{BEAT} This run cannot answer: no cell could be tested (the tests need at least "
            "two random seeds that differ)."
        )
    wins = tested[[is_finding(r, alpha) for _, r in tested.iterrows()]]
    sign = tested["direction"].map({"remove": -1.0}).fillna(1.0)
    small = ""
    if not unmasked.empty and int(unmasked.iloc[0]["n"]) < MIN_TEST_SEQUENCES:
        small = (
            f" With {int(unmasked.iloc[0]['n'])} test sequences only large differences can show."
        )
    if wins.empty:
        closest = tested.assign(_gain=sign * tested["delta"]).sort_values(
            ["q_value", "_gain"], ascending=[True, False], kind="stable"
        )
        return (
            f"{BEAT} No: in none of the {len(tested)} tested cells (method × target × masking "
            f"variant × retention) does a method beat random at q ≤ {alpha:g} with Δ's "
            f"interval excluding 0. The closest: {_cell_words(closest.iloc[0], labels)}.{small}"
        )
    several = wins[["mode", "scope", "direction"]].drop_duplicates().shape[0] > 1
    ranked = wins.assign(_gain=sign[wins.index] * wins["delta"]).sort_values(
        ["q_value", "_gain"], ascending=[True, False], kind="stable"
    )
    trust = self_check_trusted(stats, alpha)
    check = {
        True: " The seed self-check holds (random seeds tested as methods are not findings).",
        False: " **But the seed self-check failed: these tests are not to be trusted here.**",
        None: "",
    }[trust]
    return (
        f"{BEAT} Yes, in {len(wins)} of {len(tested)} tested cells (q ≤ {alpha:g}, Δ's interval "
        f"excluding 0): {_where(wins, several, labels)}. Most certain: "
        f"{_cell_words(ranked.iloc[0], labels)}.{check}{small}"
    )


def ground_truth_sentence(recovery: pd.DataFrame | None, model_at_chance: bool = False) -> str:
    """Do the selections' contrast maps rank the known sites above every random seed's, and
    the decoys (no label), in how many selections; "" without a recovery table."""
    if recovery is None or recovery.empty:
        return ""
    planted = "motif" in set(recovery["site_kind"])
    lead = MOTIFS if planted else SITES
    verdicts = contrast_verdicts(recovery) if "map_kind" in recovery.columns else pd.DataFrame()
    if verdicts.empty or not (verdicts["verdict"] != "").any():
        return (
            f"{lead} This run cannot tell: no contrast maps (each needs at least two random "
            "seeds of the same layer type and retention); the plain AUROCs are in the ground-"
            "truth section."
        )
    verdicts = verdicts[verdicts["verdict"] != ""]
    sites = verdicts[~verdicts["site_kind"].isin(NULL_SITE_KINDS)]
    decoys = verdicts[verdicts["site_kind"].isin(NULL_SITE_KINDS)]
    what = "the planted motifs" if planted else "the annotated sites"
    said = []
    for method in method_order(sites["method_family"].unique()):
        mine = sites[sites["method_family"] == method]
        above = mine[mine["verdict"] == "above"]
        said.append(f"{len(above)} of {len(mine)} selections of {method}")
    hits = sites[sites["verdict"] == "above"]
    seeds = int(verdicts["n_seeds"].min())
    chance = f"a selection no better than random does so 1 time in {seeds + 1}"
    if hits.empty:
        text = (
            f"{lead} No: no method's contrast map ranks {what} above every random seed's in "
            f"any selection (layer type × retention × map: {_list(said)})."
        )
    else:
        best = hits.sort_values("auroc_mean", ascending=False).iloc[0]
        text = (
            f"{lead} Yes for {_list(method_order(hits['method_family'].unique()))}: the "
            f"contrast maps rank {what} above every random seed's in {_list(said)} (a "
            f"selection is a layer type × retention × map; {chance}); highest: "
            f"{best['method_family']} "
            f"{best['layer_type']} {pct(best['retention'])} ({best['map']} map) "
            f"{fmt(best['auroc_mean'])}."
        )
    if not decoys.empty:
        n_above = int((decoys["verdict"] == "above").sum())
        text += (
            f" Decoys (planted in every class, no label): above every random seed in {n_above} "
            f"of {len(decoys)} selections"
            + (
                ", as expected."
                if n_above <= len(decoys) / (seeds + 1)
                else ", more than chance: part of the motif signal may be the maps' size, not the "
                "motifs."
            )  # fmt: skip
        )
    if model_at_chance:
        text += " (The model is at chance: read this with care.)"
    return text


def class_sentence(classes: pd.DataFrame | None) -> str:
    """Is any set of a class's own units class-specific; "" without the class-specific table."""
    if classes is None or classes.empty:
        return ""
    if model_at_chance(classes):
        return (
            f"{CLASSES} This run cannot answer: the unchanged model is at chance, so no set of "
            "units is called class-specific."
        )
    scored = classes[classes["method_family"] != RANDOM]
    if scored.empty or scored["own_q"].isna().all():
        return f"{CLASSES} This run cannot answer: no set could be tested against random units."
    found = scored[scored["specific"].astype(bool)]
    counts = scored["effect_kind"].value_counts()
    calls = "; ".join(f"{int(counts[k])} {KIND_WORDS[k]}" for k in KIND_WORDS if k in counts)
    if found.empty:
        return (
            f"{CLASSES} No: none of the {len(scored)} sets of a class's own units (method × "
            f"layer type × factor × retention × class) is class-specific; the calls: {calls}."
        )
    cells = []
    for (method, layer_type), sub in found.groupby(["method", "layer_type"], sort=True):
        names = ", ".join(str(c) for c in sorted(sub["selected_class"].unique(), key=str))
        cells.append(f"{method} {layer_type} (classes {names})")
    return (
        f"{CLASSES} Yes for {len(found)} of {len(scored)} sets of a class's own units: "
        f"{'; '.join(cells)}. All calls: {calls}."
    )


def headline_section(
    stats: Statistics,
    card: dict | None = None,
    alpha: float = 0.05,
    recovery: pd.DataFrame | None = None,
    classes: pd.DataFrame | None = None,
    fidelity: pd.DataFrame | None = None,
    flag: Mapping | None = None,
) -> str:
    """## The answers in short: a bullet per question this run asks (see the module).
    `fidelity` (rule sae_fidelity's table) and `flag` (config sae.flag): the poor SAEs, named
    wherever their latents are (`kneurons.summary.latents`)."""
    chance = not unmasked_rows(stats.table).empty and at_chance(stats, card, alpha)
    bullets = [
        beat_random_sentence(stats, card, alpha, latent_labels(fidelity)),
        latent_answer(stats, fidelity, card, alpha, flag),
        ground_truth_sentence(recovery, chance),
        class_sentence(classes),
    ]
    lines = [HEADING, ""] + [f"- {b}" for b in bullets if b]
    lines += ["", "The evidence for each answer follows: the Findings, then the tables."]
    return "\n".join(lines)
