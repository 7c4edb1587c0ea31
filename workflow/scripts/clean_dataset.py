"""Snakemake adapter: UniProt TSV (+ optional non-enzyme TSV) -> cleaned.parquet + FASTA.

The cleaning report (drop counts, classes, source) travels in the parquet's metadata to
prepare_dataset, which writes it into the dataset card.
"""

import json

from kneurons.data.clean import clean_dataset
from kneurons.data.homology import fasta_text
from kneurons.data.options import options_from_config
from kneurons.data.tsv import read_uniprot_tsv
from kneurons.errors import DataError
from kneurons.io import atomic_write, file_sha256, origin_of, write_parquet
from kneurons.jobs import run_job, start_job


def source_of(snakemake) -> dict:
    path = str(snakemake.input.table)
    source = {"type": "file", "path": path, "sha256": file_sha256(path)}
    if "manifest" in snakemake.input.keys():
        with open(snakemake.input.manifest) as fh:
            manifest = json.load(fh)
        source = {"type": "uniprot", "path": path, **manifest}
    if "non_enzymes" in snakemake.input.keys():
        other = str(snakemake.input.non_enzymes)
        source["non_enzymes"] = {"path": other, "sha256": file_sha256(other)}
    return source


def main(snakemake):
    try:
        clean(snakemake)
    except DataError as err:  # name the user's file, not the copy it is read through
        message = str(err)
        for key in ("table", "non_enzymes"):
            if key in snakemake.input.keys():
                staged = str(snakemake.input[key])
                message = message.replace(staged, origin_of(staged))
        raise DataError(message) from None


def clean(snakemake):
    log, _ = start_job(snakemake)
    options = options_from_config(snakemake.params.data)
    # With length_mismatch: error the reader stops at the first cut row, naming its line.
    table = read_uniprot_tsv(snakemake.input.table, length_mismatch=options.length_mismatch)
    non_enzymes = None
    if "non_enzymes" in snakemake.input.keys():
        non_enzymes = read_uniprot_tsv(
            snakemake.input.non_enzymes,
            require_ec=False,
            length_mismatch=options.length_mismatch,
        )
    cleaned, report = clean_dataset(table, options, non_enzymes)
    report = {"source": source_of(snakemake), **report}
    fasta = fasta_text(cleaned.set_index("accession")["sequence"])
    atomic_write(snakemake.output.fasta, lambda tmp: tmp.write_text(fasta))
    write_parquet(snakemake.output.table, cleaned, report)
    log.info(
        "%d of %d rows kept; dropped %s",
        report["n_kept"],
        report["n_input_rows"],
        report["dropped"],
    )


run_job(main, snakemake)  # noqa: F821 (injected by Snakemake)
