"""Snakemake adapter: write the planted-motif data set as a UniProt TSV plus its site table."""

from kneurons.data.synthetic import SyntheticOptions, generate
from kneurons.io import atomic_write
from kneurons.jobs import run_job, start_job


def main(snakemake):
    options = SyntheticOptions.from_config(snakemake.params.synthetic)
    log, _ = start_job(snakemake, seed=options.seed)
    table, sites = generate(options)
    atomic_write(snakemake.output.table, lambda t: table.to_csv(t, sep="\t", index=False))
    atomic_write(snakemake.output.sites, lambda t: sites.to_csv(t, sep="\t", index=False))
    log.info("%d sequences, %d planted sites", len(table), len(sites))


run_job(main, snakemake)  # noqa: F821
