"""Snakemake adapter: gather all evaluations of one model into tables, statistics, markdown,
HTML pages for the Snakemake report, and figures.

Params: bootstrap (n, seed, level), alpha and equivalence_margin (of every test), retention
(the evaluated levels), group_ranking (of the group scopes), figures (figure id -> kind and
options, with its `png` path: drawn here), linked_figures (the same for the other rules'
figures, `input.figures`). summary.md and summary.html show both by their path relative to the
page. The test set (`input.test`, in the evaluations' order) gives the classes and homology
clusters the resamples keep together, and the count of cropped test sequences. With latent types
scored: `input.sae_fidelity` (the SAEs' fidelity, flagged by `params.sae_flag`) and, with
concepts, `input.concepts` (the best unit per concept) feed "SAE latents beside neurons". Every
table with a layer type or target gets its `unit_kind`."""

import json
import os

import pandas as pd

from kneurons.data.split import read_test_strata
from kneurons.io import atomic_write, write_parquet
from kneurons.jobs import run_job, start_job
from kneurons.scoring.files import completeness_table, examples_per_class
from kneurons.selection.ranking import read_selections
from kneurons.selection.stability import read_method_scores, split_half_stability
from kneurons.summary.baseline import add_statistics
from kneurons.summary.findings import findings_section, markdown_to_rst, scoring_sample_note
from kneurons.summary.headline import HEADING, headline_section
from kneurons.summary.html import markdown_to_html
from kneurons.summary.latents import latent_labels
from kneurons.summary.overlap import class_overlap, enrichment_tables
from kneurons.summary.plots import (
    plot_accuracy_vs_retention,
    plot_per_class_accuracy,
    plot_selection_heatmap,
    plot_stability,
    plot_type_enrichment,
)
from kneurons.summary.tables import add_unit_kind, collect
from kneurons.summary.text import (
    caution_notes,
    dataset_markdown,
    finetuning_markdown,
    markdown_summary,
)


def write_text(path, text):
    atomic_write(path, lambda tmp: tmp.write_text(text))


def page_figures(snakemake):
    """The figures the page shows (`kneurons.summary.gallery`): those drawn here and the other
    rules' (its inputs), each with its path relative to summary.html."""
    page = os.path.dirname(snakemake.output.html)
    specs = [*snakemake.params.figures.values(), *snakemake.params.linked_figures.values()]
    return [{**spec, "src": os.path.relpath(spec["png"], page)} for spec in specs]


def main(snakemake):
    log, _ = start_job(snakemake)
    model = snakemake.wildcards.model
    boot = snakemake.params.bootstrap
    level = boot["level"]
    table = collect(
        [pd.read_parquet(p) for p in [snakemake.input.unmasked, *snakemake.input.evals]]
    )
    alpha, margin = snakemake.params.alpha, snakemake.params.equivalence_margin
    strata, clusters = read_test_strata(snakemake.input.test)
    stats = add_statistics(
        table,
        n_boot=boot["n"],
        seed=boot["seed"],
        level=level,
        strata=strata,
        clusters=clusters,
        alpha=alpha,
        margin=margin,
    )
    log.info("statistics for %d evaluations (%d bootstrap resamples)", len(table), boot["n"])

    with open(snakemake.input.card) as fh:
        card = json.load(fh)
    with open(snakemake.input.metrics) as fh:
        metrics = json.load(fh)
    history = pd.read_csv(snakemake.input.history, sep="\t")
    completeness = completeness_table(model, snakemake.input.scores)
    retentions = sorted({float(r) for r in snakemake.params.retention}, reverse=True)
    stability = pd.concat(
        [
            split_half_stability(frame, retentions, model, method)
            for method, frame in sorted(read_method_scores(snakemake.input.scores).items())
        ]
        or [split_half_stability(pd.DataFrame(columns=["layer_type"]), [], model, "")],
        ignore_index=True,
    )

    selections = read_selections(snakemake.input.selections)
    group_ranking = snakemake.params.group_ranking
    rankings = list(dict.fromkeys([group_ranking, "zscore", "raw"]))
    by_layer, by_type = enrichment_tables(selections, retentions, rankings=rankings, model=model)
    overlap = class_overlap(selections, retentions, card["classes"], model=model)

    for name, frame in (
        ("table", stats.table),
        ("random", stats.random),
        ("auc", stats.auc),
        ("enrichment", by_layer),
        ("type_enrichment", by_type),
        ("class_overlap", overlap),
        ("completeness", completeness),
        ("stability", stability),
        ("self_check", stats.self_check),
    ):
        write_parquet(getattr(snakemake.output, name), add_unit_kind(frame))

    cropped_test = int(pd.read_parquet(snakemake.input.test, columns=["cropped"])["cropped"].sum())
    notes = caution_notes(stats, card, cropped_test)
    scored = [p for p in snakemake.input.scores if examples_per_class(p)]
    notes.append(scoring_sample_note(examples_per_class(scored[0]) if scored else None))
    recovery = (
        pd.read_parquet(snakemake.input.recovery) if "recovery" in snakemake.input.keys() else None
    )
    classes = (
        pd.read_parquet(snakemake.input.classes) if "classes" in snakemake.input.keys() else None
    )
    profiles = (
        pd.read_parquet(snakemake.input.profiles) if "profiles" in snakemake.input.keys() else None
    )
    completeness = completeness if len(completeness) else None
    inputs = snakemake.input.keys()
    fidelity = pd.read_parquet(snakemake.input.sae_fidelity) if "sae_fidelity" in inputs else None
    concepts = pd.read_parquet(snakemake.input.concepts) if "concepts" in inputs else None
    sae_flag = snakemake.params.sae_flag
    text = markdown_summary(
        stats,
        completeness,
        card,
        metrics,
        by_type=by_type,
        overlap=overlap,
        level=level,
        recovery=recovery,
        stability=stability,
        n_boot=boot["n"],
        classes=classes,
        profiles=profiles,
        alpha=alpha,
        margin=margin,
        notes=notes,
        figures=page_figures(snakemake),
        cropped_test=cropped_test,
        sae_fidelity=fidelity,
        sae_flag=sae_flag,
        concepts=concepts,
    )
    write_text(snakemake.output.markdown, text)
    findings = findings_section(
        stats,
        card,
        level,
        boot["n"],
        completeness,
        stability,
        notes,
        classes=classes,
        alpha=alpha,
        margin=margin,
        labels=latent_labels(fidelity),
    )
    findings = findings.replace("## Findings", f"## Findings: {model}", 1)
    answers = headline_section(stats, card, alpha, recovery, classes, fidelity, sae_flag)
    answers = answers.replace(HEADING, f"{HEADING}: {model}", 1)
    write_text(snakemake.output.findings, markdown_to_rst(f"{answers}\n\n{findings}"))
    write_text(snakemake.output.html, markdown_to_html(text, f"{model}: knowledge neurons"))
    write_text(snakemake.output.dataset, markdown_to_html(dataset_markdown(card), "dataset"))
    write_text(
        snakemake.output.finetuning,
        markdown_to_html(finetuning_markdown(metrics, history), f"{model}: fine-tuning"),
    )

    for fid, spec in snakemake.params.figures.items():
        kind, png = spec["kind"], spec["png"]
        variant = (spec.get("mode"), spec.get("scope"), spec.get("direction"))
        if kind == "accuracy":
            plot_accuracy_vs_retention(stats, png, variant=variant, level=level)
        elif kind == "per_class":
            plot_per_class_accuracy(stats.table, png, variant=variant)
        elif kind == "heatmap":
            plot_selection_heatmap(by_layer, png, spec["method"], spec["scope"], group_ranking)
        elif kind == "enrichment":
            plot_type_enrichment(by_type, png)
        elif kind == "stability":
            plot_stability(stability, png)
        else:
            raise ValueError(f"figure {fid}: unknown kind {kind!r}")
    log.info("summarised %d evaluations, %d figures", len(table), len(snakemake.params.figures))


run_job(main, snakemake)  # noqa: F821
