"""Snakemake adapter: UniProt REST query -> TSV.gz + uniprot_manifest.json."""

from kneurons.data.uniprot import download, request_from_config
from kneurons.io import write_json
from kneurons.jobs import run_job, start_job


def main(snakemake):
    log, _ = start_job(snakemake)
    request = request_from_config(snakemake.params.uniprot, classes=snakemake.params.classes)
    log.info("UniProt query %r (per-class cap %s)", request.query, request.per_class_cap)
    manifest = download(request, snakemake.output.tsv)
    write_json(snakemake.output.manifest, manifest)
    log.info(
        "%d rows, release %s, sha256 %s", manifest["rows"], manifest["release"], manifest["sha256"]
    )


run_job(main, snakemake)  # noqa: F821 (injected by Snakemake)
