"""Snakemake adapter: make sure a pretrained model's weights are in the torch hub cache.

Runs at the start of the DAG (no inputs), so an offline machine stops within seconds with one
line instead of after the whole data stage.
"""

from kneurons.io import file_sha256, write_json
from kneurons.jobs import run_job, start_job
from kneurons.model.checkpoints import download_pretrained


def main(snakemake):
    log, _ = start_job(snakemake)
    name = snakemake.params.name
    path = download_pretrained(name)
    write_json(snakemake.output[0], {"name": name, "path": str(path), "sha256": file_sha256(path)})
    log.info("%s: %s", name, path)


run_job(main, snakemake)  # noqa: F821
