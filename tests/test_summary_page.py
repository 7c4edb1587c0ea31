"""The page a scientist opens (issue 26, part 4): the answers in short first, one sentence per
question (kneurons.summary.headline); the figures embedded by relative path after the section
they illustrate (kneurons.summary.gallery), every one a file the summarize job writes or reads;
the cropped sequences counted; no table too wide for 1400 px."""

from __future__ import annotations

import re

import pandas as pd
import pytest
from test_summary_tables import MODEL, collect, eval_row, with_correct
from test_summary_text import one_cell_stats, planted_stats, recovery_table

from kneurons.summary.baseline import add_statistics
from kneurons.summary.gallery import caption, figure_markdown, pick
from kneurons.summary.headline import (
    HEADING,
    beat_random_sentence,
    class_sentence,
    ground_truth_sentence,
)
from kneurons.summary.html import markdown_to_html
from kneurons.summary.text import (
    caution_notes,
    cropped_sentence,
    dataset_markdown,
    markdown_summary,
)

CARD = {
    "classes": ["1", "2", "3"],
    "counts": {"test": {"1": 4, "2": 4, "3": 4}},
    "totals": {"train": 36, "val": 12, "test": 12},
    "cropped": 3,
    "options": {"max_length": 100, "crop": "n_terminal"},
}

FIGURES = [
    {"kind": "accuracy", "mode": "zero", "scope": "layer_type", "direction": "keep",
     "src": "figures/accuracy_zero_layer_type_keep.png"},
    {"kind": "per_class", "mode": "zero", "scope": "layer_type", "direction": "keep",
     "src": "figures/per_class_zero_layer_type_keep.png"},
    {"kind": "stability", "src": "figures/stability.png"},
    {"kind": "site_recovery", "src": "figures/site_recovery.png"},
]  # fmt: skip


# --- the answers in short ----------------------------------------------------------------------


def test_the_answers_come_first_and_say_where_a_method_beats_random():
    md = markdown_summary(planted_stats(), card={"classes": ["1", "2", "3"]}, n_boot=1000)
    headings = [line for line in md.splitlines() if line.startswith("## ")]
    assert headings[:2] == [HEADING, "## Findings"]
    answers = md[md.index(HEADING) : md.index("## Findings")]
    beat = next(line for line in answers.splitlines() if "beat random" in line)
    # from the Findings' own numbers: 2 of the 3 tested cells are findings, where, how sure
    assert "Yes, in 2 of 3 tested cells" in beat
    assert "integrated_gradients for key (10%) and value (10%)" in beat
    assert "Most certain: integrated_gradients's top 10% of value" in beat and "q = " in beat


def test_the_answer_says_no_or_that_the_run_cannot_tell():
    none = one_cell_stats(1, "key", 0.4, 0.03, 0.40)
    said = beat_random_sentence(none, {"classes": ["1", "2"]})
    assert "No: in none of the 1 tested cells" in said and "The closest: activation" in said
    rows = [eval_row(MODEL, "unmasked", "none", 100.0, 0.34)]
    rows += [eval_row(MODEL, "activation", "key", 10.0, 0.33)]
    at_chance = add_statistics(collect(with_correct(rows)), n_boot=200, seed=0)
    card = {"classes": ["1", "2", "3"], "counts": {"test": {"1": 400, "2": 4, "3": 596}}}
    said = beat_random_sentence(at_chance, card)
    assert "This run cannot answer" in said and "not shown to exceed chance (0.596)" in said


def test_the_ground_truth_answer_counts_motifs_and_decoys():
    said = ground_truth_sentence(recovery_table(contrast=True))
    assert said.startswith("**Are the planted motifs recovered (decoys as control)?** Yes for")
    assert "above every random seed's in 2 of 2 selections of activation" in said
    assert "Decoys (planted in every class, no label): above every random seed in 0 of 1" in said
    # plain maps only: no contrast, so no verdict
    assert "cannot tell" in ground_truth_sentence(recovery_table())
    assert ground_truth_sentence(None) == ""


def test_the_class_answer_counts_the_specific_sets():
    base = {"method_family": "activation", "method": "activation", "layer_type": "key",
            "own_q": 0.01, "model_at_chance": False}  # fmt: skip
    table = pd.DataFrame(
        [
            {**base, "selected_class": "1", "specific": True, "effect_kind": "specific"},
            {**base, "selected_class": "2", "specific": False, "effect_kind": "none"},
        ]
    )
    said = class_sentence(table)
    assert "Yes for 1 of 2 sets" in said and "activation key (classes 1)" in said
    none = table.assign(specific=False, effect_kind="none")
    assert "No: none of the 2 sets" in class_sentence(none)
    assert "cannot answer" in class_sentence(table.assign(model_at_chance=True))
    assert class_sentence(None) == ""


# --- figures -----------------------------------------------------------------------------------


def test_figures_are_embedded_by_relative_path_after_their_section():
    md = markdown_summary(planted_stats(), card=CARD, n_boot=1000, figures=FIGURES[:3])
    for figure in FIGURES[:3]:
        src = figure["src"]
        assert f"[![{caption(figure)}]({src})]({src})" in md  # an image linking to its file
    # the accuracy figure follows its variant's tables; stability has no section here, so it
    # closes the page under "Other figures"
    assert md.index("## Test accuracy when keeping") < md.index(FIGURES[0]["src"])
    assert md.index(FIGURES[0]["src"]) < md.index("## Other figures") < md.index("stability.png")
    page = markdown_to_html(md, "m")
    for figure in FIGURES[:3]:
        assert f'<img alt="{caption(figure)}" src="{figure["src"]}"' in page
        assert f'<a href="{figure["src"]}">' in page
    assert "max-height" in page and "white-space:nowrap" in page
    assert "figures/site_recovery.png" not in md  # only the figures given


def test_pick_and_captions():
    assert [f["kind"] for f in pick(FIGURES, "variant", ("zero", "layer_type", "keep"))] == [
        "accuracy",
        "per_class",
    ]
    assert pick(FIGURES, "variant", ("mean", "layer_type", "keep")) == []
    assert "keeping only the top r% of each layer type's neurons, the rest zeroed" in caption(
        FIGURES[0]
    )
    text = figure_markdown(FIGURES[2:3])
    assert text.startswith("[![") and "Figure:" in text and "(figures/stability.png)" in text
    assert figure_markdown([]) == ""


# --- cropped sequences -------------------------------------------------------------------------


def test_the_cropped_sequences_are_counted():
    said = cropped_sentence(CARD, cropped_test=1)
    assert said == (
        "**Cropped sequences**: 3 of the 60 kept sequences were longer than 100 residues "
        "(data.max_length) and cut to their first (N-terminal) 100, 1 of them in the test set; "
        "the model, its scores and its residue maps never see the rest."
    )
    assert said in dataset_markdown(CARD, cropped_test=1)
    stats = planted_stats()
    assert said in caution_notes(stats, CARD, cropped_test=1)  # a limit of the findings
    assert not any("Cropped" in n for n in caution_notes(stats, {**CARD, "cropped": 0}))
    assert "0 of the 60 kept sequences were" in dataset_markdown({**CARD, "cropped": 0})
    assert cropped_sentence({"classes": ["1"]}) == ""


# --- the page in the workflow ------------------------------------------------------------------


@pytest.mark.integration
def test_the_tiny_summary_page_links_only_files_that_exist(tiny_run):
    """Every image of summary.html is a file under the summary's folder (the summarize job
    writes or reads it), linked by a relative path; summary.md links the same files; the
    answers open the page; the cropped sequences are counted."""
    assert tiny_run.run.returncode == 0, tiny_run.run.stderr[-3000:]
    folder = tiny_run.workdir / "results/tiny/summary/tiny"
    page = (folder / "summary.html").read_text()
    sources = re.findall(r'<img alt="[^"]*" src="([^"]+)"', page)
    assert len(sources) >= 5 and all(s.startswith("figures/") for s in sources)
    for src in sources:
        assert (folder / src).stat().st_size > 0, src
    md = (folder / "summary.md").read_text()
    assert all(f"]({src})" in md for src in sources)
    assert "class_specificity_activation_key.png" in " ".join(sources)  # another rule's figure
    assert md.splitlines()[2] == HEADING and md.index(HEADING) < md.index("## Findings")
    assert "**Cropped sequences**" in md
    assert "The answers in short" in (folder / "findings.rst").read_text()
