"""Snakemake adapter: the selections of models that differ only in their fine-tuning seed,
compared pairwise (kneurons.selection.stability), as a table and a figure.

Params: groups (lists of replicate model names), retention (the evaluated levels)."""

import pandas as pd

from kneurons.io import write_parquet
from kneurons.jobs import run_job, start_job
from kneurons.selection.stability import cross_model_stability, read_method_scores
from kneurons.summary.plots import plot_stability


def main(snakemake):
    log, _ = start_job(snakemake)
    retentions = sorted({float(r) for r in snakemake.params.retention}, reverse=True)
    frames = []
    for group in snakemake.params.groups:
        by_model = {model: read_method_scores(snakemake.input[model]) for model in group}
        methods = sorted(set.intersection(*(set(scores) for scores in by_model.values())))
        for method in methods:
            frames.append(
                cross_model_stability(
                    {model: by_model[model][method] for model in group}, retentions, method
                )
            )
        log.info("replicates %s: %d methods compared", ", ".join(group), len(methods))
    table = pd.concat(frames, ignore_index=True)
    write_parquet(snakemake.output.table, table)
    plot_stability(table, snakemake.output.figure, comparison="finetune_seed")


run_job(main, snakemake)  # noqa: F821
