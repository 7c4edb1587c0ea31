"""Snakemake adapter: the Findings of one replicate group across its models
(kneurons.summary.replicates), as a table and a markdown section.

Params: models (the group's models, in order; the inputs `masked` and `auc` follow it), alpha
(the significance level of a finding)."""

import pandas as pd

from kneurons.io import atomic_write, write_parquet
from kneurons.jobs import run_job, start_job
from kneurons.summary.replicates import replicate_findings, replicate_markdown


def main(snakemake):
    log, _ = start_job(snakemake)
    models = list(snakemake.params.models)
    alpha = float(snakemake.params.alpha)
    summaries = {
        model: (pd.read_parquet(masked), pd.read_parquet(auc))
        for model, masked, auc in zip(
            models, snakemake.input.masked, snakemake.input.auc, strict=True
        )
    }
    table = replicate_findings(summaries, alpha)
    group = snakemake.wildcards.group
    write_parquet(snakemake.output.table, table, {"group": group, "models": models, "alpha": alpha})
    stability = pd.read_parquet(snakemake.input.stability)
    text = replicate_markdown(table, group, alpha, stability)
    atomic_write(snakemake.output.markdown, lambda tmp: tmp.write_text(text))
    held = table[table["n_findings"] > 0]
    log.info(
        "%d replicates, %d cells: %d a finding in some replicate, %d in all",
        len(models),
        len(table),
        len(held),
        int((held["n_findings"] == len(models)).sum()),
    )


run_job(main, snakemake)  # noqa: F821
