"""Snakemake adapter: the profiles of every method's top units of every layer type (one model,
one forward pass): windows, composition, per-unit table, markdown and a logo per selection."""

import os

import pandas as pd

from kneurons.io import atomic_write, write_parquet
from kneurons.jobs import run_job, start_job
from kneurons.model.classifier import alphabet
from kneurons.profiles.figures import plot_logos
from kneurons.profiles.report import profiles_markdown
from kneurons.profiles.scan import profile_neurons, top_units
from kneurons.sae import load_analysis_model
from kneurons.scoring.files import pick_examples
from kneurons.vocab import SELECTION_FILE, parse_path


def logo_name(method: str, layer_type: str) -> str:
    """The file name of a selection's logo (rules/inputs/profiles.smk, `profile_logos`)."""
    return f"logo_{method}_{layer_type}.png"


def main(snakemake):
    params = snakemake.params.profiles
    log, device = start_job(snakemake, seed=params["seed"])
    model_name = snakemake.wildcards.model
    model, _, _ = load_analysis_model(
        snakemake.input.checkpoint, list(snakemake.input.get("saes", [])), device
    )
    # the top n units of each (method, layer type): all-class ranking over all layers of the type
    units = pd.concat(
        [
            top_units(
                pd.read_parquet(path), parse_path(SELECTION_FILE, path)["method"], params["n_units"]
            )
            for path in snakemake.input.selections
        ],
        ignore_index=True,
    )
    sites = pd.read_csv(snakemake.input.sites, sep="\t")
    test = pd.read_parquet(snakemake.input.test)
    examples = pick_examples(test, params["n_sequences"], params["seed"])
    profiles = profile_neurons(model, alphabet(), examples, units, sites, params["top_k"],
                               params["half_width"], seed=params["seed"])  # fmt: skip
    metadata = {
        "model": model_name,
        "params": dict(params),
        "n_sequences": profiles.n_sequences,
        "n_residues": profiles.n_residues,
        "expected": profiles.expected,
    }
    for name in ("windows", "composition", "table"):
        frame = getattr(profiles, name)
        frame.insert(0, "model", model_name)
        write_parquet(getattr(snakemake.output, name), frame, metadata)
    text = profiles_markdown(profiles, model_name)
    atomic_write(snakemake.output.markdown, lambda t: t.write_text(text))
    table = profiles.table
    selections = {}  # logo file name -> (method, layer type), from the selections profiled
    for path in snakemake.input.selections:
        names = parse_path(SELECTION_FILE, path)
        selections[logo_name(names["method"], names["target"])] = (names["method"], names["target"])
    for path in snakemake.output.logos:
        method, layer_type = selections[os.path.basename(path)]
        rows = table[(table["method"] == method) & (table["layer_type"] == layer_type)]
        title = f"{model_name}: {method}, {layer_type} (top units' most active windows)"
        plot_logos(profiles.windows, rows.sort_values("rank").head(params["n_plotted"]),
                   params["half_width"], path, title=title)  # fmt: skip
    log.info(
        "profiled %d units over %d sequences (%d residues): %d windows",
        len(table), profiles.n_sequences, profiles.n_residues, len(profiles.windows),
    )  # fmt: skip


run_job(main, snakemake)  # noqa: F821
