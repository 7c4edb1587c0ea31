"""The summary's "SAE latents beside neurons" (issue 27, kneurons.summary.latents) on synthetic
frames: the SAEs' fidelity with the poor ones named and why, every latent type beside every
neuron type at the same retention with the verdicts the summary already computes, the concept
table, the answer line, the poor SAE named in the Findings; no section without latent types; the
`unit_kind` column of the summary's tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_summary_tables import MODEL, collect, eval_row, with_correct
from test_summary_text import planted_stats

from kneurons.concepts.report import best_units, concepts_block
from kneurons.summary.baseline import add_statistics
from kneurons.summary.findings import findings_section
from kneurons.summary.latents import (
    ANSWER,
    HEADING,
    compare,
    latent_answer,
    latent_labels,
    latent_section,
)
from kneurons.summary.tables import add_unit_kind
from kneurons.summary.text import markdown_summary

FLAG = {"min_variance_explained": 0.7, "max_dead_fraction": 0.5, "max_accuracy_drop": 0.05}
CARD = {"classes": ["1", "2", "3"]}


def latent_stats():
    """Keep 10%, 20 random seeds ~ N(0.4, 0.03) per target; activation keeps 0.9 of key and of
    sae_ffn, 0.41 of ffn_in and of sae_resid (1000 test sequences: intervals about ±0.03)."""
    rng = np.random.default_rng(0)
    rows = [eval_row(MODEL, "unmasked", "none", 100.0, 0.95)]
    for target, accuracy in (("key", 0.9), ("ffn_in", 0.41), ("sae_resid", 0.41),
                             ("sae_ffn", 0.9)):  # fmt: skip
        for i, acc in enumerate(rng.normal(0.4, 0.03, 20)):
            rows.append(eval_row(MODEL, f"random-{i}", target, 10.0, round(float(acc), 3)))
        rows.append(eval_row(MODEL, "activation", target, 10.0, accuracy))
    return add_statistics(collect(with_correct(rows)), n_boot=1000, seed=0)


def fidelity_table():
    """Both residual-stream SAEs poor (low variance explained; layer 1 also loses accuracy),
    one of the two FFN SAEs poor (dead latents)."""
    rows = [
        ("resid", 0, 0.40, 0.10, 0.95, 0.00, -0.01, 0.01, True),
        ("resid", 1, 0.45, 0.10, 0.85, 0.10, 0.07, 0.13, True),
        ("ffn", 0, 0.90, 0.60, 0.95, 0.00, -0.01, 0.01, True),
        ("ffn", 1, 0.92, 0.05, 0.94, 0.01, -0.01, 0.03, False),
    ]
    return pd.DataFrame(
        [
            {"model": MODEL, "site": site, "layer": layer, "layer_type": f"sae_{site}",
             "n_latents": 640, "k": 32, "variance_explained": fve, "dead_fraction": dead,
             "mean_active": 32.0, "accuracy_own": 0.95, "accuracy_spliced": spliced,
             "accuracy_zero": 0.30, "accuracy_drop": drop, "accuracy_drop_low": low,
             "accuracy_drop_high": high, "n_test": 1000, "poor": poor}
            for site, layer, fve, dead, spliced, drop, low, high, poor in rows
        ]
    )  # fmt: skip


def best_table():
    """The best neuron and latent of two concepts, the latent of a poor SAE; one concept
    flagged."""
    concepts = pd.DataFrame({"concept": ["motif:AAA", "decoy:KKK"], "site_kind": ["motif", "decoy"],
                             "motif": ["AAA", "KKK"], "label": ["1", ""],
                             "n_val_residues": [40, 3], "n_test_residues": [50, 2]})  # fmt: skip
    units = pd.DataFrame(
        {
            "concept": ["motif:AAA"] * 3 + ["decoy:KKK"] * 3,
            "kind": ["neuron", "neuron", "latent"] * 2,
            "layer_type": ["key", "key", "sae_resid"] * 2,
            "layer": [0, 1, 1] * 2,
            "unit": [3, 4, 7] * 2,
            "threshold": [0.3, 0.5, 0.15] * 2,
            "val_f1": [0.4, 0.6, 0.9, 0.1, 0.2, 0.3],
            "test_precision": [0.5, 0.55, 0.8, 0.1, 0.1, 0.1],
            "test_recall": [0.3, 0.6, 0.9, 0.1, 0.1, 0.1],
            "test_f1": [0.45, 0.52, 0.85, 0.1, 0.1, 0.1],
        }
    )
    return best_units(units, concepts, n_test_residues=1000).assign(model=MODEL)


@pytest.fixture(scope="module")
def stats():
    return latent_stats()


def line_of(text: str, start: str) -> str:
    return next(line for line in text.splitlines() if line.startswith(start))


def test_poor_saes_are_named_with_why_and_label_their_latents():
    fidelity = fidelity_table()
    labels = latent_labels(fidelity)
    # most resid SAEs poor: the dictionary; one of two FFN SAEs: that layer
    assert labels == {"sae_resid": "sae_resid (poor SAE)",
                      "sae_ffn": "sae_ffn (poor SAE at layer 0)"}  # fmt: skip
    assert latent_labels(fidelity.assign(poor=False)) == {}


def test_the_section_sets_latents_beside_neurons_with_the_summarys_verdicts(stats):
    text = latent_section(stats, fidelity_table(), FLAG, best_table(), None)
    assert text.startswith(HEADING)
    # fidelity: how many, which are poor and why (with the drop's interval), the link
    assert "4 SAEs, one per site and layer, on 1000 test sequences." in text
    assert (
        "Flagged poor (3 of 4 SAEs): resid layer 0 (explains 40% of the variance); resid layer "
        "1 (explains 45% of the variance, accuracy drops by +0.100 [+0.070, +0.130]); ffn "
        "layer 0 (60% dead latents)." in text
    )
    assert "[sae_fidelity.md](sae_fidelity.md)" in text
    resid = line_of(text, "| sae_resid | 2 | 2 |")
    assert "0.400–0.450" in resid and "0.850–0.950" in resid and "(layer 1)" in resid
    assert line_of(text, "| sae_ffn | 2 | 1 |")
    # matched retention: each unit type's row with the verdict of the summary's own test
    rows = {target: stats.table[(stats.table["target"] == target)
                                & (stats.table["method"] == "activation")].iloc[0]
            for target in ("key", "ffn_in", "sae_resid", "sae_ffn")}  # fmt: skip
    key = line_of(text, "| 10% | key | neuron |")
    assert "32 of 320" in key and "0.900 [" in key and "beats random (q " in key
    resid = line_of(text, "| 10% | sae_resid (poor SAE) | latent |")
    assert "not told apart from random" in resid
    ffn = line_of(text, "| 10% | sae_ffn (poor SAE at layer 0) | latent |")
    assert "beats random" in ffn
    band = stats.random[stats.random["target"] == "sae_ffn"].iloc[0]
    assert f"{band['mean']:.3f} ± {band['std']:.3f}" in ffn
    assert compare(rows["sae_ffn"], rows["ffn_in"]) == "better"
    assert compare(rows["sae_resid"], rows["key"]) == "worse"
    assert compare(rows["sae_ffn"], rows["key"]) == "indistinguishable"
    sentence = line_of(text, "**activation**, at the same retention")
    assert (
        "the latents of the poor sae_resid SAEs (a property of that dictionary, not of the "
        "residual stream) hold it worse than key neurons (10%), and are indistinguishable from "
        "ffn_in neurons (10%)" in sentence
    )
    assert (
        "sae_ffn latents (poor SAE at layer 0) hold the task better than ffn_in neurons (10%), "
        "and are indistinguishable from key neurons (10%)" in sentence
    )
    # concepts: best neuron vs best latent, units passing, the poor SAE, the flagged concept
    motif = line_of(text, "| `motif:AAA` |")
    assert "0.520 (key 1:4)" in motif and "0.850 (sae_resid 1:7, poor SAE)" in motif
    assert "| 1 of 2 | 1 of 1 |" in motif
    assert line_of(text, "| `decoy:KKK` (flagged: too few residues) |")
    assert "[concepts.md](concepts.md)" in text
    assert "not made in this run" in text  # profiles off


def test_the_answer_line_counts_verdicts_and_names_the_poor_saes(stats):
    said = latent_answer(stats, fidelity_table(), CARD, flag=FLAG)
    assert said.startswith(ANSWER)
    assert (
        "sae_resid (poor SAE) in 0 of 1, sae_ffn (poor SAE at layer 0) in 1 of 1, the neuron "
        "types in 1 of 2 tested cells beat random" in said
    )
    assert "lies above in 1, below in 1 and overlaps (indistinguishable) in 2 of 4" in said
    assert "Most SAEs of sae_resid are poor" in said and "Flagged poor (3 of 4 SAEs)" in said
    assert latent_answer(planted_stats(), None, CARD) == ""  # no latent type: no line


def test_the_page_and_the_findings_name_the_poor_sae(stats):
    md = markdown_summary(stats, card=CARD, n_boot=1000, sae_fidelity=fidelity_table(),
                          sae_flag=FLAG, concepts=best_table())  # fmt: skip
    answers = md[: md.index("## Findings")]
    assert ANSWER in answers
    findings = md[md.index("## Findings") : md.index("## Unmasked model")]
    assert "**No method can be told apart from random** for ffn_in and sae_resid (poor SAE)" in (
        findings
    )
    assert "sae_ffn (poor SAE at layer 0) at 10%" in findings
    # after the accuracy tables
    assert md.index("## Test accuracy when keeping") < md.index(HEADING)
    plain = findings_section(stats, CARD, n_boot=1000)
    assert "sae_resid (poor SAE)" not in plain  # the names come from the fidelity table


def test_without_latent_types_the_summary_has_no_section():
    stats = planted_stats()
    md = markdown_summary(stats, card=CARD, n_boot=1000)
    assert HEADING not in md and ANSWER not in md and "SAE" not in md
    assert md == markdown_summary(stats, card=CARD, n_boot=1000, sae_fidelity=None,
                                  sae_flag=FLAG, concepts=None)  # fmt: skip
    assert latent_section(stats) == "" and concepts_block(None) == ""


def test_the_summary_tables_carry_the_unit_kind(stats):
    table = add_unit_kind(stats.table)
    kinds = table.groupby("target")["unit_kind"].first()
    assert kinds["key"] == "neuron" and kinds["ffn_in"] == "neuron"
    assert kinds["sae_resid"] == "latent" and kinds["sae_ffn"] == "latent"
    assert table.loc[table["method_family"] == "unmasked", "unit_kind"].isna().all()
    assert set(add_unit_kind(stats.random)["unit_kind"]) == {"neuron", "latent"}
    pools = pd.DataFrame({"target": ["qkv", "all"], "layer_type": ["key", "sae_ffn"]})
    groups = add_unit_kind(pools)
    assert list(groups["unit_kind"]) == ["neuron", "latent"]  # the units' layer type counts
    assert list(add_unit_kind(pd.DataFrame({"target": ["qkv", "all"]}))["unit_kind"]) == [
        "neuron", "neuron"]  # fmt: skip
    assert "unit_kind" not in add_unit_kind(pd.DataFrame({"x": [1]})).columns
