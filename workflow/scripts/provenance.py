"""Snakemake adapter: the provenance record of one result directory."""

from kneurons.io import write_json
from kneurons.jobs import run_job, start_job
from kneurons.provenance import provenance


def main(snakemake):
    log, _ = start_job(snakemake)
    record = provenance(
        snakemake.params.config,
        snakemake.params.workflow_dir,
        snakemake.input.inputs,
        snakemake.input.outputs,
    )
    write_json(snakemake.output[0], record)
    log.info("provenance of %d outputs written to %s", len(record["outputs"]), snakemake.output[0])


run_job(main, snakemake)  # noqa: F821
