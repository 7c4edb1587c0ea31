"""SAE latents beside neurons in the summary (issue 27): how well each SAE stands in for its site
(rule sae_fidelity's table), the keep-r% accuracy of every latent type beside every neuron type
at the same retention, the best neuron beside the best latent per concept (rule match_concepts),
and where the top latents' profiles are; one answer line for the answers in short. (The
`unit_kind` column of the summary's tables: `kneurons.summary.tables.add_unit_kind`.)

Nothing here is a new test: each row carries the verdict the summary already computes against
random selections of the same size (`kneurons.summary.baseline`, `findings.cell_verdict`); latents
and neurons are set side by side by their accuracy intervals only ("indistinguishable" where they
overlap). An SAE flagged poor (config `sae.flag`) is named wherever its latents' results are read:
its latent type's rows say "(poor SAE ...)", and where most SAEs of a latent type are poor, what
its latents do is worded as a property of that dictionary, not of the site.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from kneurons.concepts.report import concepts_block
from kneurons.format import (
    MISSING_CELL,
    fmt,
    fmt_ci,
    fmt_delta,
    fmt_p,
    isnan,
    md_table,
    method_order,
    pct,
    target_order,
)
from kneurons.summary.baseline import Statistics, is_finding
from kneurons.summary.findings import at_chance, cell_verdict
from kneurons.summary.tables import masked_rows, of_variant, variant_rows, variants
from kneurons.vocab import LATENT_TYPES, RANDOM, unit_kind

HEADING = "## SAE latents beside neurons"
ANSWER = "**Do SAE latents hold the task better than neurons at the same retention?**"
# The pages the section links, beside summary.md in summary/{model}/.
FIDELITY_PAGE, CONCEPTS_PAGE, PROFILES_PAGE = "sae_fidelity.md", "concepts.md", "neuron_profiles.md"
SITE_WORDS = {"sae_resid": "the residual stream", "sae_ffn": "the FFN hidden layer"}
BETTER, WORSE, SAME = "better", "worse", "indistinguishable"


def latent_targets(stats: Statistics) -> list[str]:
    """The latent types among the masked evaluations' targets."""
    targets = set(masked_rows(stats.table)["target"])
    return [t for t in target_order(targets) if t in LATENT_TYPES]


# --- poor SAEs ----------------------------------------------------------------------------------


def poor_reasons(row, flag: Mapping | None) -> list[str]:
    """Why an SAE (a fidelity row) is flagged: the thresholds of `flag` (config `sae.flag`) it
    misses, in words; without `flag`, its three numbers."""
    drop = fmt_delta(row["accuracy_drop"], row["accuracy_drop_low"], row["accuracy_drop_high"])
    words = {
        "variance": f"explains {row['variance_explained']:.0%} of the variance",
        "dead": f"{row['dead_fraction']:.0%} dead latents",
        "drop": f"accuracy drops by {drop}",
    }
    if not flag:
        return list(words.values())
    missed = {
        "variance": row["variance_explained"] < flag["min_variance_explained"],
        "dead": row["dead_fraction"] > flag["max_dead_fraction"],
        "drop": row["accuracy_drop"] > flag["max_accuracy_drop"],
    }
    return [words[key] for key, miss in missed.items() if miss]


def _layers(rows: pd.DataFrame) -> str:
    layers = [str(int(x)) for x in sorted(rows["layer"])]
    if len(layers) == 1:
        return f"layer {layers[0]}"
    return f"layers {', '.join(layers[:-1])} and {layers[-1]}"


def _poor(fidelity: pd.DataFrame | None, layer_type: str) -> tuple[pd.DataFrame, int]:
    """(the poor SAEs of a latent type, its number of SAEs)."""
    if fidelity is None or fidelity.empty:
        return pd.DataFrame(columns=["layer"]), 0
    own = fidelity[fidelity["layer_type"] == layer_type]
    return own[own["poor"].astype(bool)], len(own)


def poor_saes(fidelity: pd.DataFrame | None) -> set[tuple[str, int]]:
    """The (latent type, layer) of every SAE flagged poor."""
    if fidelity is None or fidelity.empty:
        return set()
    poor = fidelity[fidelity["poor"].astype(bool)]
    pairs = zip(poor["layer_type"], poor["layer"], strict=True)
    return {(str(layer_type), int(layer)) for layer_type, layer in pairs}


def mostly_poor(fidelity: pd.DataFrame | None, layer_type: str) -> bool:
    """Are more than half of a latent type's SAEs flagged poor?"""
    poor, n = _poor(fidelity, layer_type)
    return bool(n) and len(poor) > n / 2


def latent_labels(fidelity: pd.DataFrame | None) -> dict[str, str]:
    """Latent type -> its name wherever its results are read: "sae_resid (poor SAE)" when most
    of its SAEs are poor, "sae_resid (poor SAE at layer 1)" when some are; absent when none."""
    labels = {}
    for layer_type in LATENT_TYPES:
        poor, _ = _poor(fidelity, layer_type)
        if poor.empty:
            continue
        where = "" if mostly_poor(fidelity, layer_type) else f" at {_layers(poor)}"
        labels[layer_type] = f"{layer_type} (poor SAE{where})"
    return labels


def _latent_words(fidelity: pd.DataFrame | None, layer_type: str) -> str:
    """The latents of a type as the subject of a sentence: a property of the dictionary when
    most of its SAEs are poor."""
    if mostly_poor(fidelity, layer_type):
        site = SITE_WORDS.get(layer_type, layer_type)
        return (
            f"the latents of the poor {layer_type} SAEs (a property of that dictionary, not of "
            f"{site})"
        )
    poor, _ = _poor(fidelity, layer_type)
    return f"{layer_type} latents" + (f" (poor SAE at {_layers(poor)})" if len(poor) else "")


def poor_sentence(fidelity: pd.DataFrame | None, flag: Mapping | None = None) -> str:
    """The SAEs flagged poor and why, in one sentence; "" without a fidelity table."""
    if fidelity is None or fidelity.empty:
        return ""
    poor = fidelity[fidelity["poor"].astype(bool)]
    if poor.empty:
        return f"No SAE is flagged poor (of {len(fidelity)})."
    named = [
        f"{r['site']} layer {int(r['layer'])} ({', '.join(poor_reasons(r, flag))})"
        for _, r in poor.iterrows()
    ]
    return f"Flagged poor ({len(poor)} of {len(fidelity)} SAEs): {'; '.join(named)}."


# --- the section --------------------------------------------------------------------------------


def fidelity_block(fidelity: pd.DataFrame | None, flag: Mapping | None = None) -> str:
    """How well the SAEs stand in for their sites: the poor ones named with why, and per site
    the range of each number over its layers."""
    if fidelity is None or fidelity.empty:
        return ""
    thresholds = (
        f" (config sae.flag: variance explained below {flag['min_variance_explained']:.0%}, "
        f"more than {flag['max_dead_fraction']:.0%} dead latents or an accuracy drop above "
        f"{fmt(flag['max_accuracy_drop'])})"
        if flag
        else ""
    )
    rows = []
    for layer_type in target_order(fidelity["layer_type"].unique()):
        own = fidelity[fidelity["layer_type"] == layer_type]
        worst = own.loc[own["accuracy_drop"].idxmax()]

        def span(column, own=own, digits=3):
            low, high = own[column].min(), own[column].max()
            return fmt(low, digits) if low == high else f"{fmt(low, digits)}–{fmt(high, digits)}"

        drop = fmt_delta(worst["accuracy_drop"], worst["accuracy_drop_low"],
                         worst["accuracy_drop_high"])  # fmt: skip
        rows.append([layer_type, str(len(own)), str(int(own["poor"].astype(bool).sum())),
                     span("variance_explained"), span("dead_fraction"), span("accuracy_spliced"),
                     span("accuracy_zero"), f"{drop} (layer {int(worst['layer'])})"])  # fmt: skip
    own_accuracy = fmt(fidelity["accuracy_own"].iloc[0])
    return "\n".join(
        [
            "### How well the SAEs stand in for their sites",
            "",
            f"{len(fidelity)} SAEs, one per site and layer, on {int(fidelity['n_test'].iloc[0])} "
            f"test sequences. {poor_sentence(fidelity, flag)} A poor SAE's latents are still "
            "scored and masked (the error term keeps the model exact), but what they do describes "
            f"its dictionary, not the site{thresholds}.",
            "",
            f"The model's own test accuracy is {own_accuracy}; spliced: with the site replaced by "
            "the SAE's reconstruction (error term dropped); zero: with the site zeroed; drop: own "
            "− spliced with its paired bootstrap interval. Ranges over the layers; every SAE, "
            f"layer by layer: [{FIDELITY_PAGE}]({FIDELITY_PAGE}).",
            "",
            md_table(
                [
                    "latent type",
                    "SAEs",
                    "poor",
                    "variance explained",
                    "dead",
                    "spliced",
                    "zero",
                    "largest drop [CI]",
                ],
                rows,
                ["l", "r", "r", "r", "r", "r", "r", "r"],
            ),
        ]
    )


def compare(latent, neuron) -> str:
    """Latent row against neuron row by their accuracy intervals: better (the latents' interval
    above the neurons'), worse (below) or indistinguishable (they overlap); "" without
    intervals. A reading of two intervals, not a test."""
    bounds = [latent["accuracy_ci_low"], latent["accuracy_ci_high"]]
    bounds += [neuron["accuracy_ci_low"], neuron["accuracy_ci_high"]]
    if any(isnan(x) for x in bounds):
        return ""
    if bounds[0] > bounds[3]:
        return BETTER
    if bounds[1] < bounds[2]:
        return WORSE
    return SAME


def comparisons(stats: Statistics, variant) -> pd.DataFrame:
    """Per method, retention, latent type and neuron type of one keep variant: `verdict` of
    `compare` (columns method, retention, latent, neuron, verdict)."""
    rows = variant_rows(stats.table, variant)
    rows = rows[rows["method_family"] != RANDOM]
    records = []
    for (method, retention), cell in rows.groupby(["method", "retention"], sort=False):
        by_target = cell.set_index("target")
        targets = target_order(by_target.index)
        for latent in (t for t in targets if t in LATENT_TYPES):
            for neuron in (t for t in targets if t not in LATENT_TYPES):
                verdict = compare(by_target.loc[latent], by_target.loc[neuron])
                records.append([method, retention, latent, neuron, verdict])
    return pd.DataFrame(records, columns=["method", "retention", "latent", "neuron", "verdict"])


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _levels(retentions) -> str:
    return ", ".join(pct(r) for r in sorted(set(retentions), reverse=True))


def method_sentence(pairs: pd.DataFrame, method: str, fidelity: pd.DataFrame | None) -> str:
    """One sentence: per latent type, the neuron types its latents hold the task better than,
    worse than, or indistinguishably from, at which retention levels."""
    mine = pairs[(pairs["method"] == method) & (pairs["verdict"] != "")]
    if mine.empty:
        return f"**{method}**: no accuracy intervals to compare."
    clauses = []
    for latent in target_order(mine["latent"].unique()):
        own = mine[mine["latent"] == latent]
        said = []
        for verdict, words in ((BETTER, "hold the task better than"),
                               (WORSE, "hold it worse than"),
                               (SAME, "are indistinguishable from")):  # fmt: skip
            hits = own[own["verdict"] == verdict]
            if hits.empty:
                continue
            which = [
                f"{neuron} neurons ({_levels(hits.loc[hits['neuron'] == neuron, 'retention'])})"
                for neuron in target_order(hits["neuron"].unique())
            ]
            said.append(f"{words} {_and(which)}")
        clauses.append(f"{_latent_words(fidelity, latent)} {', and '.join(said)}")
    return f"**{method}**, at the same retention (accuracy intervals): {'; '.join(clauses)}."


def _row_cells(row, band, label: str, alpha: float) -> list[str]:
    if band is None:
        random = MISSING_CELL
    else:
        random = (f"{fmt(band['mean'])} ± {fmt(band['std'])} "
                  f"[{fmt(band['band_low'])}, {fmt(band['band_high'])}]")  # fmt: skip
    verdict = cell_verdict(row, alpha)
    if not isnan(row["q_value"]):
        verdict += f" (q {fmt_p(row['q_value'])})"
    return [
        label,
        unit_kind(row["target"]),
        f"{int(row['n_kept'])} of {int(row['n_total'])}",
        fmt_ci(row["accuracy"], row["accuracy_ci_low"], row["accuracy_ci_high"]),
        random,
        fmt_delta(row["delta"], row["delta_ci_low"], row["delta_ci_high"]),
        verdict,
    ]


def comparison_block(
    stats: Statistics, fidelity: pd.DataFrame | None, alpha: float = 0.05, level: float = 0.95
) -> str:
    """Per keep variant with latent targets, per method and retention, every neuron type and
    latent type's accuracy side by side with its interval, the random band and the verdict the
    summary already gives the cell; a sentence per method comparing the intervals."""
    labels = latent_labels(fidelity)
    keep = [v for v in variants(stats.table) if v[2] == "keep"]
    keep = [v for v in keep if set(variant_rows(stats.table, v)["target"]) & set(LATENT_TYPES)]
    if not keep:
        return ""
    parts = [
        "### Latents and neurons at the same retention",
        "",
        f"Keep the top r% of each unit type, mask the rest: test accuracy [bootstrap {level:.0%} "
        "CI], the random selections of the same size (mean ± std [central band]), Δ = method − "
        "random mean [CI] and the verdict of the one-sided test against random with its "
        "q-value (the same tests, in the same Benjamini-Hochberg family, as the tables above). "
        "Latents and neurons are compared by their accuracy intervals only: a latent type holds "
        "the task better (worse) than a neuron type where its interval lies wholly above "
        "(below) the neurons'; where they overlap the two are indistinguishable. The same r% "
        "is a different number of units per type (kept column).",
        "",
    ]
    header = ["units", "kind", "kept", "accuracy [CI]", "random", "Δ vs random", "verdict"]
    for variant in keep:
        rows = variant_rows(stats.table, variant)
        rows = rows[rows["method_family"] != RANDOM]
        band = of_variant(stats.random, variant)
        band = band.set_index(["target", "retention"]) if not band.empty else None
        if len(keep) > 1:
            parts += [f"**{' / '.join(variant)}** (mode / scope / direction):", ""]
        pairs = comparisons(stats, variant)
        for method in method_order(rows["method"].unique()):
            table = []
            mine = rows[rows["method"] == method]
            for retention in sorted(mine["retention"].unique(), reverse=True):
                cell = mine[mine["retention"] == retention].set_index("target")
                for target in target_order(cell.index):
                    rec = cell.loc[target].copy()
                    rec["target"] = target
                    key = (target, retention)
                    b = band.loc[key] if band is not None and key in band.index else None
                    table.append(
                        [pct(retention),
                         *_row_cells(rec, b, labels.get(target, target), alpha)]
                    )  # fmt: skip
            parts += [
                f"#### {method}",
                "",
                md_table(
                    ["retention", *header], table, ["r", "l", "l", "r", "r", "r", "r", "l"]
                ),  # fmt: skip
                "",
                method_sentence(pairs, method, fidelity),
                "",
            ]
    return "\n".join(parts).rstrip()


def profiles_sentence(profiles: pd.DataFrame | None) -> str:
    """Where the top latents' profiles are (the profiles page covers every scored type)."""
    if profiles is None or profiles.empty:
        return (
            "The top latents' profiles (their most active windows) are not made in this run "
            "(profiles.enabled)."
        )
    latent = [t for t in target_order(profiles["layer_type"].unique()) if t in LATENT_TYPES]
    if not latent:
        return f"[{PROFILES_PAGE}]({PROFILES_PAGE}) profiles no latent type in this run."
    return (
        f"What the top latents respond to ({', '.join(latent)}: their most active windows, "
        f"residue composition and site overlap, beside the neurons'): [{PROFILES_PAGE}]"
        f"({PROFILES_PAGE}) and the section on what the top neurons respond to."
    )


def latent_section(
    stats: Statistics,
    fidelity: pd.DataFrame | None = None,
    flag: Mapping | None = None,
    concepts: pd.DataFrame | None = None,
    profiles: pd.DataFrame | None = None,
    alpha: float = 0.05,
    level: float = 0.95,
) -> str:
    """## SAE latents beside neurons, or "" when no latent type is scored (no fidelity table
    and no latent target)."""
    if not latent_targets(stats) and (fidelity is None or fidelity.empty):
        return ""
    blocks = [
        HEADING,
        "",
        "SAE latents are units like neurons: the same scores, selections, masks and tests. "
        "Whether they hold the task better than neurons is read at the same retention; whether "
        "an SAE is good enough for its latents to speak for its site, from its fidelity.",
    ]
    for block in (
        fidelity_block(fidelity, flag),
        comparison_block(stats, fidelity, alpha, level),
        concepts_block(concepts, poor_saes(fidelity), CONCEPTS_PAGE),
        "### What the top latents respond to\n\n" + profiles_sentence(profiles),
    ):
        if block:
            blocks += ["", block]
    return "\n".join(blocks)


# --- the answer in short ------------------------------------------------------------------------


def latent_answer(
    stats: Statistics,
    fidelity: pd.DataFrame | None = None,
    card: dict | None = None,
    alpha: float = 0.05,
    flag: Mapping | None = None,
) -> str:
    """Do latents hold the task better than neurons: their cells against random (the
    calibrated test's verdicts, latents beside neurons), their intervals beside the neurons' at
    the same retention, and the poor SAEs; "" when no latent type is scored."""
    latents = latent_targets(stats)
    if not latents:
        return ""
    poor = poor_sentence(fidelity, flag)
    poor = f" {poor}" if poor else ""
    if at_chance(stats, card, alpha):
        return (
            f"{ANSWER} This run cannot answer: the unmasked model is not shown to exceed "
            f"chance, so neither latents nor neurons have class knowledge to hold.{poor}"
        )
    rows = masked_rows(stats.table)
    tested = rows[(rows["method_family"] != RANDOM) & rows["q_value"].notna()]
    if tested.empty:
        return f"{ANSWER} This run cannot answer: no cell could be tested against random.{poor}"
    wins = [is_finding(r, alpha) for _, r in tested.iterrows()]
    tested = tested.assign(_win=wins)
    counts = []
    for latent in latents:
        own = tested[tested["target"] == latent]
        name = latent_labels(fidelity).get(latent, latent)
        counts.append(f"{name} in {int(own['_win'].sum())} of {len(own)}")
    neurons = tested[~tested["target"].isin(list(LATENT_TYPES))]
    counts.append(f"the neuron types in {int(neurons['_win'].sum())} of {len(neurons)}")
    keep = [v for v in variants(stats.table) if v[2] == "keep"]
    pairs = pd.concat([comparisons(stats, v) for v in keep] or [pd.DataFrame()])
    pairs = pairs[pairs["verdict"] != ""] if len(pairs) else pairs
    text = (
        f"{ANSWER} Against random selections of the same size (q ≤ {alpha:g}, Δ's interval "
        f"excluding 0): {', '.join(counts)} tested cells beat random."
    )
    if len(pairs):
        n = pairs["verdict"].value_counts()
        text += (
            f" Beside the neurons at the same retention (keep), the latents' accuracy interval "
            f"lies above in {int(n.get(BETTER, 0))}, below in {int(n.get(WORSE, 0))} and "
            f"overlaps (indistinguishable) in {int(n.get(SAME, 0))} of {len(pairs)} "
            "comparisons (method × retention × latent type × neuron type; intervals, not a "
            "test)."
        )
    dictionary = [t for t in latents if mostly_poor(fidelity, t)]
    if dictionary:
        text += (
            f" Most SAEs of {', '.join(dictionary)} are poor: their latents' results describe "
            "those dictionaries, not the sites."
        )
    return text + poor
