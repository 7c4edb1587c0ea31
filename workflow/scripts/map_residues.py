"""Snakemake adapter: the residue maps of one layer type (model, layer type), every mapped method
and retention level: one map file and one plot per (method, retention).

One job per layer type, like the score files of a layer: one start-up and model load for all the
selections, one forward pass per batch of sequences for all their activation maps, and their IG
integrals in one engine run, identical masks computed once (`residue_maps_of_selections`). Each
(method, retention) map is also kept in the store (`kneurons.store`, kind "residues") under its
method, retention and selected units, with the checkpoint, the sequences, the settings and the
code: a rerun for a new method or retention level computes only the new maps.
"""

import time

import pandas as pd
import torch

from kneurons.evaluation.masking import unit_masks
from kneurons.io import file_sha256, write_parquet
from kneurons.jobs import run_job, start_job
from kneurons.model.classifier import alphabet
from kneurons.residues.maps import (
    completeness_summary,
    plot_residue_maps,
    residue_maps_of_selections,
    selection_fingerprint,
)
from kneurons.sae import analysis_digest, load_analysis_model
from kneurons.scoring.files import pick_examples
from kneurons.scoring.quadrature import AccuracyPolicy
from kneurons.selection.ranking import pick, selected
from kneurons.store import Store, files_fingerprint
from kneurons.vocab import RESIDUE_FILE, RESIDUE_PLOT, SELECTION_FILE, parse_path


def main(snakemake):
    started = time.perf_counter()
    params = snakemake.params.residues
    log, _ = start_job(snakemake, seed=params["seed"])
    layer_type = snakemake.wildcards.layer_type
    saes = list(snakemake.input.get("saes", []))
    plots = {_target(RESIDUE_PLOT, path): path for path in snakemake.output.plots}
    # (method, retention) -> (map file, plot)
    targets = {_target(RESIDUE_FILE, path): (path, plots[_target(RESIDUE_FILE, path)])
               for path in snakemake.output.maps}  # fmt: skip
    selection_files = {
        parse_path(SELECTION_FILE, path)["method"]: path for path in snakemake.input.selections
    }
    store = Store(
        snakemake.params.store,
        "residues",
        {
            "checkpoint": analysis_digest(snakemake.input.checkpoint, saes),
            "test": file_sha256(snakemake.input.test),
            "sites": file_sha256(snakemake.input.sites),
            "code": files_fingerprint(snakemake.input.lib),
            "torch": torch.__version__,
            "device": "cpu",  # the maps run on the CPU (below)
            "params": params,
            "layer_type": layer_type,
        },
        log=log.warning,
    )
    # the top r% of the layer type's units over all its layers (scope layer_type, all classes)
    todo, keys = {}, {}
    for method, retention in targets:
        units = pick(pd.read_parquet(selection_files[method]))
        masks = unit_masks(units.assign(selected=selected(units, float(retention))))
        keys[method, retention] = store.key(method, retention, selection_fingerprint(masks))
        out, plot = targets[method, retention]
        key = keys[method, retention]
        if not (store.fetch_file(key, ".parquet", out) and store.fetch_file(key, ".png", plot)):
            todo[method, retention] = masks
    if len(todo) < len(targets):
        log.info(
            "from the store (mapped before): %s",
            ", ".join(f"{m} keep {r}%" for m, r in targets if (m, r) not in todo),
        )
    if not todo:
        return

    model, _, _ = load_analysis_model(snakemake.input.checkpoint, saes)  # CPU
    sites = pd.read_csv(snakemake.input.sites, sep="\t")
    test = pd.read_parquet(snakemake.input.test)
    if len(sites):  # map sequences that have sites first: they are what the recovery measures
        test = test[test["accession"].isin(set(sites["accession"]))]
    examples = pick_examples(test, params["n_sequences"], params["seed"])
    accuracy = AccuracyPolicy.from_config(params)  # the scores' policy object
    # not adaptive: one pass, still judged against the tolerance
    policy = {"rtol": accuracy.rtol, "atol": accuracy.atol, "max_steps": accuracy.node_limit}
    setup = time.perf_counter() - started
    computing = time.perf_counter()
    names = {f"{method} keep {retention}%": (method, retention) for method, retention in todo}
    mapped = residue_maps_of_selections(
        model, alphabet(), examples, {name: todo[target] for name, target in names.items()},
        steps=accuracy.steps, quadrature=accuracy.quadrature, **policy,
    )  # fmt: skip
    computing = time.perf_counter() - computing
    shown = examples["accession"].head(params["n_plotted"]).tolist()
    for name, (method, retention) in names.items():
        maps, completeness = mapped[name]
        maps.insert(0, "retention", float(retention))
        maps.insert(0, "layer_type", layer_type)
        maps.insert(0, "method", method)
        summary = completeness_summary(completeness)
        out, plot = targets[method, retention]
        key = keys[method, retention]
        metadata = {"completeness": summary, **policy, "store": store.reference([key])}
        write_parquet(out, maps, metadata=metadata)
        log.info("%s: IG map completeness: %s", name, summary)
        if summary["n_above_tolerance"]:
            log.warning(
                "%s: %d of %d IG map integrals (sequence x module) end with a completeness gap "
                "above atol + rtol |F(1) - F(0)| (atol %g, rtol %g) after up to %d nodes: that "
                "part of the map is approximate", name, summary["n_above_tolerance"],
                summary["n_integrals"], policy["atol"], policy["rtol"], policy["max_steps"],
            )  # fmt: skip
        title = f"{method}, {layer_type}: top {retention}% of the neurons kept (all layers)"
        plot_residue_maps(maps, sites, shown, plot, title=title)
        store.keep_file(key, ".parquet", out)
        store.keep_file(key, ".png", plot)
    log.info(
        "%s: %d selections mapped (%d from the store) on %d sequences (%d residues each map) in "
        "%.1f s; start-up, loading and picking %.1f s",
        layer_type, len(todo), len(targets) - len(todo), len(examples),
        len(mapped[next(iter(names))][0]), computing, setup,
    )  # fmt: skip


def _target(pattern: str, path: str) -> tuple[str, str]:
    """(method, retention) of an output path: the job reads its targets from its outputs."""
    names = parse_path(pattern, path)
    return names["method"], names["retention"]


run_job(main, snakemake)  # noqa: F821
