"""Snakemake adapter: how well each residue map picks out planted motifs or annotated sites."""

import pandas as pd

from kneurons.io import atomic_write, read_parquet_metadata, write_parquet
from kneurons.jobs import run_job, start_job
from kneurons.residues.figures import plot_site_recovery
from kneurons.residues.recovery import completeness_note, recovery_markdown, recovery_table


def main(snakemake):
    log, _ = start_job(snakemake)
    sites = pd.read_csv(snakemake.input.sites, sep="\t")
    maps = [pd.read_parquet(p) for p in snakemake.input.maps]
    # contrast maps compare where each map looks (scaled) or raw values (README, "Residue maps")
    table = recovery_table(maps, sites, contrast_scale=snakemake.params.contrast == "scaled")
    table.insert(0, "model", snakemake.wildcards.model)
    write_parquet(snakemake.output.table, table)
    text = recovery_markdown(table, snakemake.wildcards.model)
    metadata = [read_parquet_metadata(p) for p in snakemake.input.maps]
    text = text.rstrip("\n") + "\n\n" + "\n".join(completeness_note(maps, metadata))
    atomic_write(snakemake.output.markdown, lambda t: t.write_text(text))
    plot_site_recovery(table, snakemake.output.plot)
    n_contrast = int((table["map_kind"] == "contrast").sum()) if len(table) else 0
    log.info("%d recovery rows, %d of them of contrast maps", len(table), n_contrast)


run_job(main, snakemake)  # noqa: F821
