"""Snakemake adapter: annotated active and binding sites of a UniProt TSV, as a site table."""

import pandas as pd

from kneurons.data.sites import sites_from_uniprot
from kneurons.io import atomic_write
from kneurons.jobs import run_job, start_job


def main(snakemake):
    log, _ = start_job(snakemake)
    table = pd.read_csv(snakemake.input.table, sep="\t", dtype=str, keep_default_na=False)
    sites = sites_from_uniprot(table)
    atomic_write(snakemake.output[0], lambda t: sites.to_csv(t, sep="\t", index=False))
    log.info("%d annotated sites on %d entries", len(sites), sites["accession"].nunique())


run_job(main, snakemake)  # noqa: F821
