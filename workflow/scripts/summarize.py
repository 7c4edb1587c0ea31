"""Snakemake adapter: gather all evaluations of one model into tables, markdown and a plot."""

import json

import pandas as pd

from kneurons.io import atomic_write, read_parquet_metadata, write_parquet
from kneurons.jobs import run_job, start_job
from kneurons.summary import collect, markdown_summary, plot_accuracy_vs_retention

COMPLETENESS_COLUMNS = [
    "model",
    "layer_type",
    "layer",
    "n_examples",
    "gap_mean",
    "gap_mean_abs",
    "gap_max_abs",
    "delta_mean_abs",
]


def completeness_table(model, paths):
    rows = []
    for path in paths:
        meta = read_parquet_metadata(path)
        rows.append(
            {
                "model": model,
                "layer_type": meta["layer_type"],
                "layer": meta["layer"],
                **meta["completeness"],
            }
        )
    return pd.DataFrame(rows, columns=COMPLETENESS_COLUMNS)


def main(snakemake):
    log, _ = start_job(snakemake)
    table = collect(
        [pd.read_parquet(p) for p in [snakemake.input.unmasked, *snakemake.input.evals]]
    )
    completeness = completeness_table(snakemake.wildcards.model, snakemake.input.ig_scores)
    with open(snakemake.input.card) as fh:
        card = json.load(fh)
    with open(snakemake.input.metrics) as fh:
        metrics = json.load(fh)

    write_parquet(snakemake.output.table, table)
    write_parquet(snakemake.output.completeness, completeness)
    text = markdown_summary(table, completeness if len(completeness) else None, card, metrics)
    atomic_write(snakemake.output.markdown, lambda tmp: tmp.write_text(text))
    plot_accuracy_vs_retention(table, snakemake.output.plot)
    log.info("summarised %d evaluations", len(table))


run_job(main, snakemake)  # noqa: F821
