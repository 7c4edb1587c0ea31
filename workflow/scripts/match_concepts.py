"""Snakemake adapter: every unit of every scored layer type and layer (neurons; SAE latents where
SAE files are given) matched with every concept of the sites table (one model): units.parquet,
best.parquet and the page concepts.md."""

import pandas as pd

from kneurons.concepts.matching import match_concepts, unit_kind, usable_examples
from kneurons.concepts.report import best_units, concepts_markdown, kept_units
from kneurons.errors import ModelError
from kneurons.io import atomic_write, write_parquet
from kneurons.jobs import run_job, start_job
from kneurons.model.classifier import alphabet
from kneurons.sae import load_analysis_model
from kneurons.sae.splice import attached_sites
from kneurons.scoring.files import pick_examples


def scanned_modules(model, layer_types, attached):
    """(layer type, layer) of every module scanned: every layer of a neuron type, the layers
    with an SAE (`attached`, from attach_saes) of a latent type."""
    modules = []
    for layer_type in layer_types:
        if unit_kind(layer_type) == "neuron":
            modules += [(layer_type, layer) for layer in range(model.num_layers)]
            continue
        layers = sorted(layer for lt, layer in attached if lt == layer_type)
        if not layers:
            raise ModelError(
                f"scoring.layer_types: {layer_type} names SAE latents, but no SAE of that "
                "type was given to rule match_concepts (input saes)"
            )
        modules += [(layer_type, layer) for layer in layers]
    return modules


def main(snakemake):
    params = snakemake.params.concepts
    log, device = start_job(snakemake, seed=params["seed"])
    model_name = snakemake.wildcards.model
    saes = list(snakemake.input.get("saes", []))
    model, _, digest = load_analysis_model(snakemake.input.checkpoint, saes, device)
    attached = {(f"sae_{site.site}", site.layer) for site in attached_sites(model)}
    modules = scanned_modules(model, params["layer_types"], attached)
    sites = pd.read_csv(snakemake.input.sites, sep="\t")
    splits = {}
    for split in ("val", "test"):
        frame = usable_examples(pd.read_parquet(snakemake.input[split]), params["crop"])
        splits[split] = pick_examples(frame, params["n_sequences"], params["seed"])
    matching = match_concepts(model, alphabet(), splits["val"], splits["test"], sites, modules,
                              params["thresholds"], log=log)  # fmt: skip
    best = best_units(matching.units, matching.concepts, matching.n_test_residues,
                      params["f1_pass"], params["min_residues"])  # fmt: skip
    metadata = {
        "model": model_name,
        "model_digest": digest,
        "params": dict(params),
        "modules": [list(m) for m in modules],
        "n_val_sequences": matching.n_val_sequences,
        "n_test_sequences": matching.n_test_sequences,
        "n_val_residues": matching.n_val_residues,
        "n_test_residues": matching.n_test_residues,
        "thresholds": list(params["thresholds"]),
    }
    units = kept_units(matching.units, params["n_units"])
    for name, frame in (("units", units), ("best", best)):
        frame = frame.reset_index(drop=True)
        frame.insert(0, "model", model_name)
        write_parquet(snakemake.output[name], frame, metadata)
    text = concepts_markdown(best, model_name, metadata)
    atomic_write(snakemake.output.markdown, lambda t: t.write_text(text))
    log.info(
        "%d concepts x %d units (%d modules) over %d val / %d test residues; %d rows kept",
        len(matching.concepts), len(matching.units) // max(len(matching.concepts), 1),
        len(modules), matching.n_val_residues, matching.n_test_residues, len(units),
    )  # fmt: skip


run_job(main, snakemake)  # noqa: F821
