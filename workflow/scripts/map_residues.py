"""Snakemake adapter: residue maps of one selection (model, method, layer type, retention)."""

import pandas as pd

from kneurons.evaluation.masking import unit_masks
from kneurons.io import write_parquet
from kneurons.jobs import run_job, start_job
from kneurons.model.classifier import alphabet
from kneurons.residues.maps import completeness_summary, plot_residue_maps, residue_maps
from kneurons.sae import load_analysis_model
from kneurons.scoring.files import pick_examples
from kneurons.scoring.quadrature import AccuracyPolicy
from kneurons.selection.ranking import pick, selected


def main(snakemake):
    params = snakemake.params.residues
    log, device = start_job(snakemake, seed=params["seed"])
    wildcards = snakemake.wildcards
    model, _, _ = load_analysis_model(
        snakemake.input.checkpoint, list(snakemake.input.get("saes", []))
    )  # CPU
    # the top r% of the layer type's units over all its layers (scope layer_type, all classes)
    units = pick(pd.read_parquet(snakemake.input.selection))
    selection = units.assign(selected=selected(units, float(wildcards.retention)))
    masks = unit_masks(selection)  # (layer type, layer) -> 1 at the selected units
    sites = pd.read_csv(snakemake.input.sites, sep="\t")
    test = pd.read_parquet(snakemake.input.test)
    if len(sites):  # map sequences that have sites first: they are what the recovery measures
        test = test[test["accession"].isin(set(sites["accession"]))]
    examples = pick_examples(test, params["n_sequences"], params["seed"])
    accuracy = AccuracyPolicy.from_config(params)  # the scores' policy object
    # not adaptive: one pass, still judged against the tolerance
    policy = {"rtol": accuracy.rtol, "atol": accuracy.atol, "max_steps": accuracy.node_limit}
    maps, completeness = residue_maps(model, alphabet(), examples, masks, steps=accuracy.steps,
                                      quadrature=accuracy.quadrature, **policy)  # fmt: skip
    maps.insert(0, "retention", float(wildcards.retention))
    maps.insert(0, "layer_type", wildcards.layer_type)
    maps.insert(0, "method", wildcards.method)
    summary = completeness_summary(completeness)
    write_parquet(snakemake.output.maps, maps, metadata={"completeness": summary, **policy})
    log.info("IG map completeness: %s", summary)
    if summary["n_above_tolerance"]:
        log.warning(
            "%d of %d IG map integrals (sequence x module) end with a completeness gap above "
            "atol + rtol |F(1) - F(0)| (atol %g, rtol %g) after up to %d nodes: that part of "
            "the map is approximate", summary["n_above_tolerance"], summary["n_integrals"],
            policy["atol"], policy["rtol"], policy["max_steps"],
        )  # fmt: skip
    shown = examples["accession"].head(params["n_plotted"]).tolist()
    title = (
        f"{wildcards.method}, {wildcards.layer_type}: top {wildcards.retention}% of the neurons "
        "kept (all layers)"
    )
    plot_residue_maps(maps, sites, shown, snakemake.output.plot, title=title)
    log.info("mapped %d sequences (%d residues)", len(examples), len(maps))


run_job(main, snakemake)  # noqa: F821
