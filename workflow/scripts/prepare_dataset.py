"""Snakemake adapter: UniProt TSV -> train/val/test parquet + dataset card."""

from kneurons.data import options_from_config, prepare_dataset, read_uniprot_tsv
from kneurons.io import write_json, write_parquet
from kneurons.jobs import run_job, start_job


def main(snakemake):
    log, _ = start_job(snakemake)
    options = options_from_config(snakemake.params.data)
    table = read_uniprot_tsv(snakemake.input[0])
    splits, card = prepare_dataset(table, options)
    card["input"] = str(snakemake.input[0])
    for name, frame in splits.items():
        write_parquet(snakemake.output[name], frame)
    write_json(snakemake.output.card, card)
    log.info("kept %s; dropped %s", card["totals"], card["dropped"])


run_job(main, snakemake)  # noqa: F821 (injected by Snakemake)
