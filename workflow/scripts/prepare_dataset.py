"""Snakemake adapter: cleaned rows (+ MMseqs2 clusters) -> train/val/test parquet + card."""

import pandas as pd

from kneurons.data.homology import clusters_from_files
from kneurons.data.options import options_from_config
from kneurons.data.split import card_markdown, split_dataset
from kneurons.io import (
    atomic_write,
    file_sha256,
    read_parquet_metadata,
    write_json,
    write_parquet,
)
from kneurons.jobs import run_job, start_job


def main(snakemake):
    log, _ = start_job(snakemake)
    options = options_from_config(snakemake.params.data)
    cleaned = pd.read_parquet(snakemake.input.table)
    report = read_parquet_metadata(snakemake.input.table)
    clusters = None
    if options.split_method == "homology":
        clusters, clustering = clusters_from_files(
            cleaned["accession"],
            snakemake.input.clusters,
            snakemake.input.hits,
            snakemake.input.version,
        )
        report["clustering"] = clustering
        log.info("clusters: %s", clustering)
    splits, card = split_dataset(cleaned, report, options, clusters)

    card["input"] = card["source"]["path"]
    card["outputs"] = {}
    for name, frame in splits.items():
        path = snakemake.output[name]
        write_parquet(path, frame)
        card["outputs"][name] = {"path": path, "rows": len(frame), "sha256": file_sha256(path)}
    write_json(snakemake.output.card, card)
    markdown = card_markdown(card)
    atomic_write(snakemake.output.card_md, lambda tmp: tmp.write_text(markdown))
    log.info("kept %s; clusters %s; dropped %s", card["totals"], card["clusters"], card["dropped"])


run_job(main, snakemake)  # noqa: F821 (injected by Snakemake)
