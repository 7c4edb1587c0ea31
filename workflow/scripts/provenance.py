"""Snakemake adapter: the provenance record of one result directory."""

from pathlib import Path

import kneurons
from kneurons.io import write_json
from kneurons.jobs import run_job, start_job
from kneurons.provenance import provenance


def main(snakemake):
    log, _ = start_job(snakemake)
    record = provenance(
        snakemake.params.config,
        Path(kneurons.__file__).resolve().parents[2],  # the checkout the library runs from
        snakemake.input.inputs,
        snakemake.input.outputs,
        device=snakemake.params.job["device"],
    )
    write_json(snakemake.output[0], record)
    log.info("provenance of %d outputs written to %s", len(record["outputs"]), snakemake.output[0])


run_job(main, snakemake)  # noqa: F821
