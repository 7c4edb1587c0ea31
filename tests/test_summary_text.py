"""Tests for the markdown pages (kneurons.summary.text, .sections) and their HTML."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from test_summary_selection import unit_selections
from test_summary_tables import (
    CLASSES,
    MODEL,
    collect,
    eval_row,
    eval_rows,
    summary_stats,
    with_correct,
)

from kneurons.summary.baseline import add_statistics
from kneurons.summary.findings import findings_section, markdown_to_rst
from kneurons.summary.groundtruth import ground_truth_section
from kneurons.summary.html import markdown_to_html
from kneurons.summary.overlap import enrichment_tables
from kneurons.summary.sections import published_figures
from kneurons.summary.text import (
    caution_notes,
    dataset_markdown,
    finetuning_markdown,
    markdown_summary,
)


@pytest.fixture
def table() -> pd.DataFrame:
    return collect(eval_rows())


@pytest.fixture
def stats():
    return summary_stats()


@pytest.fixture
def completeness() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "model": [MODEL] * 4,
            "layer_type": ["key", "key", "query", "query"],
            "layer": [0, 1, 0, 1],
            "n_examples": [16] * 4,
            "gap_mean": [0.001, -0.002, 0.0005, 0.0],
            "gap_mean_abs": [0.002, 0.004, 0.001, 0.003],
            "gap_max_abs": [0.01, 0.03, 0.005, 0.02],
            "delta_mean_abs": [0.2, 0.4, 0.1, 0.3],
        }
    )


def test_markdown_summary_cells(table):
    md = markdown_summary(table)
    assert md.startswith("# ")
    assert "0.913" in md and "0.901" in md
    assert md.count("### Key projections (`key`)") == 1  # headings in words
    assert md.count("### Query projections (`query`)") == 1
    # canonical order: query, key, value, ...
    assert md.index("### Query projections") < md.index("### Key projections")
    assert "## Test accuracy when keeping only the top r% of each layer type's neurons" in md
    assert "zero / layer_type / keep" in md
    assert "| method | 50% | 10% |" in md
    assert "| activation | 0.412 | 0.350 |" in md  # no per-sequence vectors: no CI
    assert "| integrated_gradients | 0.500 | 0.450 |" in md
    assert (
        "| random (3 seeds) | 0.300 ± 0.100 [0.205, 0.395] | 0.100 ± 0.000 [0.100, 0.100] |" in md
    )
    assert "| p empirical: activation | 0.250 | 0.250 |" in md
    assert "| Δ: activation | +0.112 | +0.250 |" in md  # key: 0.412 − 0.300, 0.350 − 0.100
    # no per-sequence vectors: the test set's noise is unknown, so no p, no q and no claim
    assert "| q (p): activation | — (—) | — (—) |" in md
    assert "**No cell could be tested**" in md
    assert md.count("| neurons kept | 160 | 32 |") == 2
    assert "3 seeds" in md
    assert "| target | method | AUC | Δ vs random | q | p empirical |" in md
    assert "| key | activation | 0.381 | +0.181 | — | 0.250 |" in md  # mean of the two levels
    assert "| target | method | EC 1 | EC 2 | EC 3 |" in md  # per class at the lowest level
    assert "completeness" not in md.lower()
    assert "published" not in md  # no qkv / zero / keep rows


def test_markdown_summary_with_confidence_intervals(stats):
    md = markdown_summary(stats)
    row = next(line for line in md.splitlines() if line.startswith("| activation | 0.412 ["))
    low, high = (float(x) for x in row.split("[")[1].split("]")[0].split(","))
    assert low < 0.412 < high and high - low == pytest.approx(0.061, abs=0.01)
    assert "bootstrap 95% CI" in md


def test_published_figures_ship_with_the_package():
    pub = published_figures()
    assert pub["unmasked"] == 0.913
    assert pub["retention"] == [50.0, 25.0, 10.0, 1.0]
    assert list(pub["accuracy"]) == ["random", "activation", "integrated_gradients"]
    assert pub["accuracy"]["random"] == [0.180, 0.088, 0.187, 0.187]
    assert "2312.10770" in pub["citation"]


def test_markdown_summary_places_published_figures():
    rows = [eval_row(MODEL, "unmasked", "none", 100.0, 0.8)]
    for method, accs in {
        "activation": (0.5, 0.4, 0.3, 0.2),
        "integrated_gradients": (0.6, 0.5, 0.4, 0.3),
        "random-0": (0.2, 0.2, 0.2, 0.2),
        "random-1": (0.3, 0.3, 0.3, 0.3),
    }.items():
        for r, acc in zip((50.0, 25.0, 10.0, 1.0), accs, strict=True):
            rows.append(
                eval_row(MODEL, method, "qkv", r, acc).assign(
                    scope="qkv", mode="zero", direction="keep", group_ranking="raw"
                )
            )
    md = markdown_summary(collect(rows))
    assert "Beside the published figures (Nori et al. 2023)" in md
    assert "| published: random | 0.913 | 0.180 | 0.088 | 0.187 | 0.187 |" in md
    assert "| published: integrated_gradients | 0.913 | 0.355 | 0.312 | 0.289 | 0.297 |" in md
    assert "| this run: activation | 0.800 | 0.500 | 0.400 | 0.300 | 0.200 |" in md
    assert "| this run: random | 0.800 | 0.250 ± 0.071 |" in md
    assert "cross-type ranking: raw" in md
    html = markdown_to_html(md, "t")
    assert "<table>" in html and "<h2>Beside the published figures" in html
    assert "<strong>published</strong>" in html


def test_markdown_summary_optional_sections(table, completeness):
    card = {
        "classes": list(CLASSES),
        "totals": {"train": 700, "val": 100, "test": 200},
        "counts": {
            "train": {"1": 300, "2": 200, "3": 200},
            "val": {"1": 40, "2": 30, "3": 30},
            "test": {"1": 80, "2": 60, "3": 60},
        },
    }
    metrics = {
        "val": {"accuracy": 0.925, "macro_f1": 0.918},
        "test": {"accuracy": 0.913, "macro_f1": 0.901},
    }
    md = markdown_summary(table, completeness=completeness, card=card, metrics=metrics)
    assert "completeness" in md.lower()
    # key: mean |gap| over layers 0.003, max 0.03, mean |F(1)-F(0)| 0.3
    assert "| esm2_t6_8M | key | 2 | 16 | 0.003 | 0.03 | 0.3 |" in md
    assert "| esm2_t6_8M | query | 2 | 16 | 0.002 | 0.02 | 0.2 |" in md
    assert md.index("| esm2_t6_8M | query |") < md.index("| esm2_t6_8M | key |")
    assert "| train | 300 | 200 | 200 | 700 |" in md
    assert "| test | 80 | 60 | 60 | 200 |" in md
    assert "| val | 0.925 | 0.918 |" in md
    assert "| test | 0.913 | 0.901 |" in md
    # totals alone still give a table
    md = markdown_summary(table, card={"totals": {"train": 7, "test": 2}})
    assert "| train | 7 |" in md


def test_markdown_summary_no_random_single_retention(table):
    sub = table[
        (table["method_family"] == "unmasked")
        | ((table["method_family"] != "random") & (table["retention"] == 50.0))
    ]
    md = markdown_summary(sub)
    assert "| method | 50% |" in md
    assert "| random" not in md
    assert "seeds" not in md
    assert "| neurons kept | 160 |" in md
    assert "Area under" not in md  # one retention level: no AUC


def test_markdown_reports_key_enrichment(stats):
    _, by_type = enrichment_tables(unit_selections(), [5.0], rankings=["zscore"], model=MODEL)
    md = markdown_summary(stats, by_type=by_type)
    assert "Are key projections enriched?" in md
    assert "| activation | zscore | 5% | 3.00 | " in md
    assert "### Enrichment by layer type, query, key and value ranked together (`qkv`)" in md
    with pytest.raises(ValueError, match="by_type holds rows of model"):
        markdown_summary(stats, by_type=by_type.assign(model="other"))


def test_dataset_and_finetuning_pages():
    card = {"totals": {"train": 7}, "dropped": {"too_short": 2, "no_ec": 0, "too_long": 0}}
    md = dataset_markdown(card)
    assert "| train | 7 |" in md and "| too_short | 2 |" in md
    assert "| no_ec |" not in md and "No rows dropped by: no_ec, too_long." in md
    card = {"classes": ["0", "1", "3.4"], "counts": {"test": {"1": 2}}, "totals": {"test": 2}}
    assert "| split | non-enzyme | EC 1 | EC 3.4 | total |" in dataset_markdown(card)
    history = pd.DataFrame(
        {"epoch": [1, 2], "loss": [0.51234, 0.25], "residues_per_second": [10.0, 11.0]}
    )
    metrics = {"test": {"accuracy": 0.5, "macro_f1": 0.4, "per_class": {"1": {"n": 3}}}}
    md = finetuning_markdown(metrics, history)
    assert "| test | 0.500 | 0.400 |" in md
    assert "| EC 1 | 3 | — | — |" in md
    assert "| epoch | loss | residues/s |" in md  # human headers
    assert "| 1 | 0.5123 | 10 |" in md and "| 2 | 0.2500 | 11 |" in md  # losses: fixed digits


def test_finetuning_page_has_one_format_per_kind_of_number():
    history = pd.DataFrame(
        {
            "epoch": [1, 2],
            "train_loss": [1.3652, 0.0622],
            "val_loss": [1.03, 0.14504],
            "val_accuracy": [0.5, 0.975],
            "val_macro_f1": [0.47899, 0.89],
            "seconds": [36.94, 111.0],
            "residues_per_second": [2321.4, 772.0],
            "best": [False, True],
        }
    )
    per_class = {"1": {"n": 30, "accuracy": 1.0, "f1": 0.9830508}}
    metrics = {
        "val": {"accuracy": 0.975, "macro_f1": 0.9751},
        "test": {"accuracy": 0.58333, "macro_f1": 0.5, "per_class": per_class},
    }
    md = finetuning_markdown(metrics, history)
    header = "| epoch | train loss | val loss | val accuracy | val macro-F1 | time (s) |"
    assert header + " residues/s | kept |" in md
    assert "| 1 | 1.3652 | 1.0300 | 0.500 | 0.479 | 36.9 | 2321 |  |" in md
    assert "| 2 | 0.0622 | 0.1450 | 0.975 | 0.890 | 111.0 | 772 | ✓ |" in md
    assert "| test | 0.583 | 0.500 |" in md and "| EC 1 | 30 | 1.000 | 0.983 |" in md
    assert "True" not in md and "False" not in md and "e+0" not in md and "%" not in md
    # every accuracy and F1 on the page has three decimals, every loss four
    table_cells = [
        c.strip() for line in md.splitlines() if line.startswith("| ") for c in line.split("|")
    ]
    decimals = {len(c.split(".")[1]) for c in table_cells if re.fullmatch(r"\d+\.\d+", c)}
    assert decimals == {1, 3, 4}  # times, scores, losses
    assert "kept: the epoch whose weights the model keeps" in md


def test_markdown_to_html_page():
    md = "# A <title>\n\n_note_ with **bold**, `code` and a_b.\n\n| a | b |\n| :--- | ---: |\n"
    md += "| x \\| y | <b>1</b> |\n"
    page = markdown_to_html(md, "m & n")
    assert page.startswith("<!DOCTYPE html>")
    assert "<title>m &amp; n</title>" in page and "border-collapse" in page
    assert "<h1>A &lt;title&gt;</h1>" in page
    assert "<em>note</em>" in page and "<strong>bold</strong>" in page
    assert "<code>code</code>" in page and "a_b" in page
    assert '<td style="text-align: left;">x | y</td>' in page
    assert '<th style="text-align: right;">b</th>' in page
    assert "&lt;b&gt;1&lt;/b&gt;" in page  # text, not markup: HTML in it is escaped
    assert page.rstrip().endswith("</body></html>")


# --- ground truth (site recovery) -------------------------------------------------------------

# auroc_mean[method][site kind, map] at keep 10% of key
RECOVERY = {
    "activation": {("motif", "activation"): 0.93, ("motif", "ig"): 0.97, ("decoy", "ig"): 0.52},
    "random-0": {("motif", "activation"): 0.55, ("motif", "ig"): 0.60, ("decoy", "ig"): 0.50},
    "random-1": {("motif", "activation"): 0.45, ("motif", "ig"): 0.70, ("decoy", "ig"): 0.48},
}
# the same for the contrast maps (each minus the random mean map; a seed minus the other's)
CONTRAST = {
    "activation": {("motif", "activation"): 0.80, ("motif", "ig"): 0.90, ("decoy", "ig"): 0.49},
    "random-0": {("motif", "activation"): 0.50, ("motif", "ig"): 0.55, ("decoy", "ig"): 0.52},
    "random-1": {("motif", "activation"): 0.45, ("motif", "ig"): 0.40, ("decoy", "ig"): 0.47},
}


def recovery_table(model: str = MODEL, contrast: bool = False) -> pd.DataFrame:
    """Rows of site_recovery.parquet; without `contrast`, a table of before contrast maps (no
    map_kind column)."""
    rows = []
    kinds = [("plain", RECOVERY)] + ([("contrast", CONTRAST)] if contrast else [])
    for map_kind, table in kinds:
        for method, cells in table.items():
            family, _, seed = method.partition("-")
            for (kind, value), auroc in cells.items():
                rows.append({"model": model, "method": method, "method_family": family,
                             "seed": int(seed) if seed else None, "layer_type": "key",
                             "retention": 10.0, "site_kind": kind, "map": value,
                             "map_kind": map_kind, "auroc_mean": auroc, "auroc_pooled": auroc,
                             "n_sequences": 4, "n_site_residues": 20,
                             "scale_ratio": 30.0 if (map_kind, method, value) == (
                                 "contrast", "activation", "ig") else 1.0})  # fmt: skip
    table = pd.DataFrame(rows)
    table["seed"] = table["seed"].astype("Int64")
    return table if contrast else table.drop(columns=["map_kind", "scale_ratio"])


def table_under(md: str, heading: str) -> list[str]:
    """The pipe-table lines of the `### heading` block of `md`."""
    block = md.split(f"### {heading}\n", 1)[1].split("\n### ", 1)[0]
    return [line for line in block.splitlines() if line.startswith("|")]


def row_of(lines: list[str], start: str) -> str:
    return next(line for line in lines if line.startswith(start))


def test_ground_truth_section_puts_accuracy_beside_site_auroc(stats):
    md = ground_truth_section(stats, recovery_table())
    assert md.startswith("## Ground truth: do the kept neurons act on the known sites?")
    # one narrow table per site kind and map (6 columns at most: nothing wraps)
    headings = [line for line in md.splitlines() if line.startswith("### ")]
    assert headings == [
        "### Planted motifs, activation maps",
        "### Planted motifs, integrated-gradients maps",
        "### Decoys (planted in every class, no label), integrated-gradients maps",
    ]
    motif = table_under(md, "Planted motifs, activation maps")
    assert motif[0] == "| layer type | kept | method | accuracy kept [CI] | AUROC |"
    # activation keeps 0.350 of key at 10% (with its bootstrap CI); random seeds all hold 0.1
    row = row_of(motif, "| key | 10% | activation |")
    assert "| 0.350 [" in row and row.endswith("| 0.930 |")
    assert row_of(table_under(md, "Planted motifs, integrated-gradients maps"),
                  "| key | 10% | activation |").endswith("| 0.970 |")  # fmt: skip
    decoy = table_under(md, "Decoys (planted in every class, no label), integrated-gradients maps")
    assert row_of(decoy, "| key | 10% | activation |").endswith("| 0.520 |")
    rand = row_of(motif, "| key | 10% | random")
    assert "random (maps: 2 seeds; accuracy: 3 seeds)" in rand
    assert "| 0.100 ± 0.000 [0.100, 0.100] |" in rand
    # random AUROC: mean ± std [min, max] over the seeds
    assert rand.endswith("| 0.500 ± 0.071 [0.450, 0.550] |")
    assert row_of(decoy, "| key | 10% | random").endswith("| 0.490 ± 0.014 [0.480, 0.500] |")
    assert max(len(line.split("|")) - 2 for line in md.splitlines() if line.startswith("|")) <= 6
    assert "## Ground truth" in markdown_summary(stats, recovery=recovery_table())
    with pytest.raises(ValueError, match="recovery holds rows of model"):
        markdown_summary(stats, recovery=recovery_table("other"))
    assert ground_truth_section(stats, recovery_table().iloc[:0]) == ""
    assert ground_truth_section(stats, None) == ""


def test_ground_truth_section_sets_contrast_auroc_beside_plain_with_random_spread(stats):
    md = ground_truth_section(stats, recovery_table(contrast=True))
    motif = table_under(md, "Planted motifs, activation maps")
    assert motif[0] == (
        "| layer type | kept | method | accuracy kept [CI] | AUROC | contrast AUROC |"
    )
    assert row_of(motif, "| key | 10% | activation |").endswith("| 0.930 | 0.800 |")
    motif_ig = table_under(md, "Planted motifs, integrated-gradients maps")
    assert row_of(motif_ig, "| key | 10% | activation |").endswith("| 0.970 | 0.900 |")
    decoy = table_under(md, "Decoys (planted in every class, no label), integrated-gradients maps")
    assert row_of(decoy, "| key | 10% | activation |").endswith("| 0.520 | 0.490 |")
    assert row_of(motif, "| key | 10% | random").endswith(
        "| 0.500 ± 0.071 [0.450, 0.550] | 0.475 ± 0.035 [0.450, 0.500] |"
    )
    assert row_of(motif_ig, "| key | 10% | random").endswith(
        "| 0.650 ± 0.071 [0.600, 0.700] | 0.475 ± 0.106 [0.400, 0.550] |"
    )
    assert row_of(decoy, "| key | 10% | random").endswith(
        "| 0.490 ± 0.014 [0.480, 0.500] | 0.495 ± 0.035 [0.470, 0.520] |"
    )
    # in words, per layer type and retention, before the tables: above the seeds' spread or
    # not; decoys near 0.5
    said = next(line for line in md.splitlines() if line.startswith("- key 10%: "))
    assert md.index(said) < md.index("### Planted motifs")
    assert said == (
        "- key 10%: motif (activation map): activation 0.800, above all 2 random seeds "
        "(max 0.500). motif (ig map): activation 0.900, above all 2 random seeds (max 0.550, "
        "map 30× the random mean's size). decoy (ig map; expected near 0.5): activation 0.490, "
        "within the 2 random seeds' range [0.470, 0.520] (map 30× the random mean's size)."
    )
    assert "their contrast AUROC should stay near 0.5" in md
    assert "No contrast AUROC" not in md
    # one random seed: no contrast rows (recovery_table makes none), and the section says why
    table = recovery_table(contrast=True)
    table = table[(table["method"] != "random-1") & (table["map_kind"] == "plain")]
    one_seed = ground_truth_section(stats, table)
    assert "| key | 10% | random (maps: 1 seed; accuracy: 3 seeds) |" in one_seed
    assert "contrast AUROC" not in table_under(one_seed, "Planted motifs, activation maps")[0]
    assert (
        "No contrast AUROC for key 10% (1 random seed): a contrast needs at least 2 random "
        "seeds of the same layer type and retention." in one_seed
    )


def test_findings_flag_a_model_at_chance_and_small_test_sets():
    card = {"classes": ["1", "2", "3"], "counts": {"test": {"1": 400, "2": 4, "3": 596}}}
    good = summary_stats()
    text = markdown_summary(good, card={"classes": ["1", "2", "3"]})
    assert text.index("## Findings") < text.index("## Unmasked model")
    assert "No knowledge-neuron claim" not in text  # 0.913 on 1000 sequences
    assert "Tiny test set" not in text and "few test sequences" not in text
    flagged = caution_notes(good, card)
    assert len(flagged) == 1 and "2 (4)" in flagged[0]
    rows = [eval_row(MODEL, "unmasked", "none", 100.0, 0.34)]
    rows += [eval_row(MODEL, "activation", "key", 10.0, 0.33)]
    at_chance = add_statistics(collect(with_correct(rows)), n_boot=200, seed=0)
    text = markdown_summary(at_chance, card=card)
    findings = text[text.index("## Findings") : text.index("## Unmasked model")]
    assert "No knowledge-neuron claim is possible" in findings
    # chance is the test set's majority-class rate (596 of 1000), not 1 / 3
    assert "is not shown to exceed chance (0.596" in findings and "2 (4)" in findings


def planted_stats(n_seeds: int = 20):
    """IG far above 20 random seeds for key and value at 10%; nothing special for ffn_in."""
    rng = np.random.default_rng(0)
    rows = [eval_row(MODEL, "unmasked", "none", 100.0, 0.95)]
    for target, ig in (("key", 0.9), ("value", 0.85), ("ffn_in", 0.41)):
        for i, acc in enumerate(rng.normal(0.4, 0.03, n_seeds)):
            rows.append(eval_row(MODEL, f"random-{i}", target, 10.0, round(float(acc), 3)))
        rows.append(eval_row(MODEL, "integrated_gradients", target, 10.0, ig))
    return add_statistics(collect(with_correct(rows)), n_boot=1000, seed=0)


def test_findings_state_the_answer_from_the_numbers():
    stats = planted_stats()
    text = markdown_summary(stats, card={"classes": ["1", "2", "3"]}, n_boot=1000)
    findings = text[text.index("## Findings") : text.index("## Unmasked model")]
    assert findings.index("## Findings") == 0
    assert (
        "**integrated_gradients** keeps more accuracy than random selections for key at 10% "
        "(q 6.7e-14); value at 10% (q 3.5e-14)." in findings
    )
    assert "**No method can be told apart from random** for ffn_in" in findings
    # the per-cell sentence: accuracy [CI] vs random mean ± std, Δ [CI], q
    key = next(line for line in findings.splitlines() if line.startswith("- key — best"))
    assert "10%: integrated_gradients 0.900 [" in key and "(beats random)" in key
    assert "Δ +0.5" in key and "q = " in key
    ffn = next(line for line in findings.splitlines() if line.startswith("- ffn_in — best"))
    assert "(not told apart from random)" in ffn
    # what the run cannot tell: the test, one-sided, what a tie costs, the family, self-check
    assert "one-sided" in findings
    assert "with 20 seeds a tie with one seed gives at least 0.095" in findings
    assert "all 6 tests of this summary" in findings  # 3 cells + 3 AUC rows
    assert "**Self-check**" in findings and "60 null tests" in findings
    assert "Read this first" not in findings
    assert "random band covers every method" not in findings


def one_cell_stats(seed: int, target: str, mean: float, std: float, method_accuracy: float):
    """10 random seeds ~ N(mean, std) and activation at `method_accuracy`, keep 10%."""
    rng = np.random.default_rng(seed)
    rows = [eval_row(MODEL, "unmasked", "none", 100.0, 0.95)]
    for i, acc in enumerate(rng.normal(mean, std, 10)):
        rows.append(eval_row(MODEL, f"random-{i}", target, 10.0, round(float(acc), 3)))
    rows.append(eval_row(MODEL, "activation", target, 10.0, method_accuracy))
    return add_statistics(collect(with_correct(rows)), n_boot=200, seed=0)


def test_findings_say_when_nothing_can_be_claimed():
    stats = one_cell_stats(1, "key", 0.4, 0.03, 0.40)
    findings = findings_section(stats, {"classes": ["1", "2"]})
    assert "**No method beats random selections anywhere in this run**" in findings
    assert "**The random band covers every method**" in findings
    rst = markdown_to_rst(findings)
    assert rst.startswith("Findings\n--------\n")
    assert "What this run cannot tell\n~~~~~~~~~~~~~~~~~~~~~~~~~\n" in rst


def test_findings_name_a_layer_type_whose_masking_changes_nothing():
    stats = one_cell_stats(2, "ffn_in", 0.95, 0.004, 0.95)
    findings = findings_section(stats, {"classes": ["1", "2"]})
    assert "**Masking ffn_in cannot tell methods apart**: random selections keeping as " in (
        findings
    )
    assert "within ±0.02 accuracy at every retention level (two one-sided tests" in findings


def test_a_failed_self_check_opens_the_findings():
    """Where the seeds, tested as methods, give more findings than α allows, the Findings say
    first that the tests are not to be trusted for this run."""
    stats = planted_stats()
    check = stats.self_check.copy()
    broken = check["direction"] == "keep"
    check.loc[broken, ["p_test", "q_value"]] = 0.001
    check.loc[broken, "delta_ci_low"] = 0.01
    stats.self_check = check
    findings = findings_section(stats, {"classes": ["1", "2", "3"]})
    assert findings.splitlines()[2].startswith(
        "**Read this first: the tests against random are not to be trusted for this run.**"
    )
    assert "gave 60 findings and 60 raw p ≤ 0.05 in 60 null tests" in findings


def test_no_equivalence_claim_where_random_selections_lose_accuracy():
    stats = one_cell_stats(2, "ffn_in", 0.90, 0.004, 0.90)  # unmasked 0.95: 0.05 lost
    findings = findings_section(stats, {"classes": ["1", "2"]})
    assert "cannot tell methods apart" not in findings
    assert not stats.random["equivalent"].any()


def test_a_small_test_set_must_beat_chance_by_an_exact_test():
    """7 of 12 right with 3 balanced classes: the stratified interval may clear 1/3, but the
    exact binomial test does not (p 0.066): no claim."""
    rows = [eval_row(MODEL, "unmasked", "none", 100.0, 7 / 12).assign(n=12)]
    rows[0]["correct"] = [[True] * 7 + [False] * 5]
    rows.append(eval_row(MODEL, "activation", "key", 10.0, 0.5).assign(n=12))
    rows[1]["correct"] = [[True] * 6 + [False] * 6]
    card = {"classes": ["1", "2", "3"], "counts": {"test": {"1": 4, "2": 4, "3": 4}}}
    stats = add_statistics(collect(rows), n_boot=200, seed=0)
    findings = findings_section(stats, card)
    assert "No knowledge-neuron claim is possible" in findings
    assert "binomial p = 0.066" in findings


def test_the_scoring_sample_is_named_per_class():
    from kneurons.summary.findings import scoring_sample_note

    note = scoring_sample_note({"1": 8, "2": 8, "3": 0})
    assert note.startswith("**Scoring sample**: units were ranked on 16 training sequences")
    assert "(1: 8, 2: 8, 3: 0)" in note and "3 had no training sequence to score" in note
    assert scoring_sample_note({}) == ""
    stats = planted_stats()
    text = markdown_summary(stats, notes=[scoring_sample_note({"1": 4, "2": 4})])
    assert "ranked on 8 training sequences, stratified by class (1: 4, 2: 4)" in text
