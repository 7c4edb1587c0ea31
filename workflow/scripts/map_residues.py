"""Snakemake adapter: residue maps of one selection (model, method, layer type, retention)."""

import pandas as pd

from kneurons.io import write_parquet
from kneurons.jobs import run_job, start_job
from kneurons.masking import all_class_rows, keep_masks, select_top
from kneurons.model import alphabet, load_classifier, units_of
from kneurons.residues import plot_residue_maps, residue_maps
from kneurons.scoring import pick_examples


def main(snakemake):
    params = snakemake.params.residues
    log, device = start_job(snakemake, seed=params["seed"])
    wildcards = snakemake.wildcards
    model, _ = load_classifier(snakemake.input.checkpoint)  # CPU: one sequence at a time
    scores = pd.concat([pd.read_parquet(p) for p in snakemake.input.scores], ignore_index=True)
    scores = all_class_rows(scores)  # per-class rows, if any, do not take part in selection
    selection = select_top(scores, float(wildcards.retention))
    masks = keep_masks(selection, units_of(model.encoder, wildcards.layer_type))
    sites = pd.read_csv(snakemake.input.sites, sep="\t")
    test = pd.read_parquet(snakemake.input.test)
    if len(sites):  # map sequences that have sites first: they are what the recovery measures
        test = test[test["accession"].isin(set(sites["accession"]))]
    examples = pick_examples(test, params["n_sequences"], params["seed"])
    maps = residue_maps(model, alphabet(), examples, wildcards.layer_type, masks,
                        steps=params["steps"], method=params["quadrature"])  # fmt: skip
    maps.insert(0, "retention", float(wildcards.retention))
    maps.insert(0, "layer_type", wildcards.layer_type)
    maps.insert(0, "method", wildcards.method)
    write_parquet(snakemake.output.maps, maps)
    shown = examples["accession"].head(params["n_plotted"]).tolist()
    plot_residue_maps(maps, sites, shown, snakemake.output.plot)
    log.info("mapped %d sequences (%d residues)", len(examples), len(maps))


run_job(main, snakemake)  # noqa: F821
