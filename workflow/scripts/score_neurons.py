"""Snakemake adapter: score every neuron of one layer (model, method, layer), one score file per
layer type.

The layer types of a layer share the job (one start-up, one model load, and the gradient
methods put the modules of a layer in the same batches). A module scored before with the same
checkpoint, examples, settings and code is copied from the store (`kneurons.store`), so adding a
layer type to the config computes only the new one.

The examples are `scoring.n_examples` training sequences stratified by class
(`kneurons.scoring.files.pick_stratified`): every class is scored, equally where the class sizes
allow; `n_examples` below the number of classes stops the job with one line. The metadata records
the count per class (`examples_per_class`, read back by
`kneurons.scoring.files.examples_per_class`).
"""

import time

import pandas as pd
import torch

from kneurons.io import file_sha256, write_parquet
from kneurons.jobs import run_job, start_job
from kneurons.model.batching import tokenize
from kneurons.model.classifier import alphabet
from kneurons.sae import analysis_digest, load_analysis_model
from kneurons.scoring.adaptive import gap_summary
from kneurons.scoring.files import count_per_class, pick_stratified
from kneurons.scoring.methods import score_neurons, score_table
from kneurons.store import Store, files_fingerprint
from kneurons.vocab import SCORE_FILE, parse_path


def main(snakemake):
    started = time.perf_counter()
    params = dict(snakemake.params.scoring)
    log, device = start_job(snakemake, seed=params["seed"])
    wildcards = snakemake.wildcards
    method, layer = wildcards.method, int(wildcards.layer)
    options = dict(params.get("options") or {})
    outputs = {parse_path(SCORE_FILE, out)["layer_type"]: out for out in snakemake.output}
    saes = list(snakemake.input.get("saes", []))
    checkpoint_sha256 = file_sha256(snakemake.input.checkpoint)
    store = Store(
        snakemake.params.store,
        "scores",
        {
            "checkpoint": analysis_digest(snakemake.input.checkpoint, saes),
            "train": file_sha256(snakemake.input.train),
            "code": files_fingerprint(snakemake.input.lib),
            "torch": torch.__version__,
            "device": device.type,
            "method": method,
            "params": params,
        },
        log=log.warning,
    )
    keys = {lt: store.key(lt, layer) for lt in outputs}
    todo = [lt for lt in outputs if not store.fetch_file(keys[lt], ".parquet", outputs[lt])]
    if len(todo) < len(outputs):
        log.info("from the store (scored before): %s", ", ".join(sorted(set(outputs) - set(todo))))
    if not todo:
        return

    model, meta, _ = load_analysis_model(snakemake.input.checkpoint, saes, device)
    examples = pick_stratified(
        pd.read_parquet(snakemake.input.train), params["n_examples"], params["seed"]
    )
    per_class = count_per_class(examples, meta.get("classes"))
    log.info(
        "%d examples, per class: %s",
        len(examples),
        ", ".join(f"{c}: {k}" for c, k in per_class.items()),
    )
    tokens = tokenize(alphabet(), examples["sequence"].tolist())
    labels = examples["label"].tolist()
    setup = time.perf_counter() - started
    result = score_neurons(method, model, tokens, labels, todo, [layer], device, options=options)
    for layer_type in todo:
        module = (layer_type, layer)
        metadata = {
            "method": method,
            "params": params,
            "layer_type": layer_type,
            "layer": layer,
            "n_examples": len(examples),
            "sampling": "stratified",
            "examples_per_class": per_class,
            "examples": examples["accession"].tolist(),
            "class_counts": {str(k): v for k, v in result.class_counts.items()},
            "classes": meta.get("classes"),
            "checkpoint_sha256": checkpoint_sha256,
            "seconds": round(result.seconds, 3),
            "modules_in_job": [f"{lt} layer {layer}" for lt in todo],
            "threads": torch.get_num_threads(),
            "device": str(device),
            "per_class": bool(params["per_class"]),
            "store": store.reference([keys[layer_type]]),
            **({"method_info": result.info} if result.info else {}),
        }
        if result.gaps is not None:
            gaps = result.gaps[result.gaps["layer_type"] == layer_type]
            metadata["completeness"] = gap_summary(gaps)
            metadata["gaps"] = gaps["gap"].tolist()
            metadata["steps_per_example"] = gaps["steps"].tolist()
            log.info("%s layer %d completeness: %s", layer_type, layer, metadata["completeness"])
            above = metadata["completeness"].get("n_above_tolerance", 0)
            if above:
                log.warning(
                    "%s layer %d: %d of %d examples end with a completeness gap above atol + "
                    "rtol * |F(1) - F(0)| (atol %g, rtol %g) after up to %d steps: their IG "
                    "scores are approximate",
                    layer_type, layer, above, len(gaps), options.get("atol"),
                    options.get("rtol"), metadata["completeness"]["steps_max"],
                )  # fmt: skip
        table = score_table(result, module, per_class=params["per_class"])
        write_parquet(outputs[layer_type], table, metadata)
        store.keep_file(keys[layer_type], ".parquet", outputs[layer_type])
    log.info(
        "%s layer %d: %s scored on %d examples in %.1f s (start-up, loading and tokenising %.1f s)",
        method,
        layer,
        ", ".join(todo),
        len(examples),
        result.seconds,
        setup,
    )


run_job(main, snakemake)  # noqa: F821
