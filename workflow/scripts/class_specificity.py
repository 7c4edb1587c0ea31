"""Snakemake adapter: the class-specific targets of one model summarised (`kneurons.classes`):
per evaluated class, per selected class with the random band and tests, the markdown section and
one specificity-matrix figure per (method, layer type)."""

import pandas as pd

from kneurons.classes import (
    class_names,
    effects_table,
    plot_class_matrix,
    read_class_evals,
    shared_units,
    specificity_section,
    specificity_table,
)
from kneurons.io import atomic_write, write_parquet
from kneurons.jobs import run_job, start_job
from kneurons.selection import read_selections


def main(snakemake):
    log, _ = start_job(snakemake)
    model = snakemake.wildcards.model
    params = snakemake.params
    classes = class_names(snakemake.input.card)
    y_true = pd.read_parquet(snakemake.input.test, columns=["label"])["label"].to_numpy()
    evals = read_class_evals(snakemake.input.evals)
    rankings = {}
    if snakemake.input.selections:
        selections = read_selections(snakemake.input.selections)
        for (method, layer_type), rows in selections.groupby(["method", "target"]):
            rankings[(method, layer_type)] = rows
    shared = shared_units(rankings, params.retention, params.shared_fraction)
    boot = params.bootstrap
    effects = effects_table(evals, y_true, classes)
    specificity = specificity_table(
        evals, y_true, classes, boot["n"], boot["seed"], boot["level"], shared=shared
    )
    if specificity.empty:
        log.warning("fewer than two classes have test sequences: no specificity to measure")
    write_parquet(snakemake.output.effects, effects)
    write_parquet(snakemake.output.table, specificity)
    text = specificity_section(specificity, model, level=boot["level"], heading=1)
    atomic_write(snakemake.output.markdown, lambda t: t.write_text(text or "No rows.\n"))
    for (method, layer_type), png in zip(params.figures, snakemake.output.figures, strict=True):
        plot_class_matrix(effects, png, method, layer_type)
    n_specific = int(specificity["specific_prob"].sum()) if len(specificity) else 0
    log.info(
        "%d class-specific evaluations, %d specificity rows (%d specific beyond random)",
        len(evals), len(specificity), n_specific,
    )  # fmt: skip


run_job(main, snakemake)  # noqa: F821
