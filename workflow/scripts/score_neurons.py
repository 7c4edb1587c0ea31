"""Snakemake adapter: score every neuron of one module (model, method, layer type, layer)."""

import pandas as pd
import torch

from kneurons.batching import tokenize
from kneurons.io import file_sha256, write_parquet
from kneurons.jobs import run_job, start_job
from kneurons.model import alphabet, load_classifier
from kneurons.scores import pick_examples
from kneurons.scoring import gap_summary, score_neurons, score_table


def main(snakemake):
    params = dict(snakemake.params.scoring)
    log, device = start_job(snakemake, seed=params["seed"])
    method = snakemake.wildcards.method
    layer_type = snakemake.wildcards.layer_type
    layer = int(snakemake.wildcards.layer)
    options = dict(params.get("options") or {})

    model, meta = load_classifier(snakemake.input.checkpoint, device=device)
    examples = pick_examples(
        pd.read_parquet(snakemake.input.train), params["n_examples"], params["seed"]
    )
    tokens = tokenize(alphabet(), examples["sequence"].tolist())
    labels = examples["label"].tolist()
    result = score_neurons(
        method, model, tokens, labels, layer_type, [layer], device, options=options
    )
    module = (layer_type, layer)

    classes = meta.get("classes")
    metadata = {
        "method": method,
        "params": params,
        "layer_type": layer_type,
        "layer": layer,
        "n_examples": len(examples),
        "examples": examples["accession"].tolist(),
        "class_counts": {str(k): v for k, v in result.class_counts.items()},
        "classes": classes,
        "checkpoint_sha256": file_sha256(snakemake.input.checkpoint),
        "seconds": round(result.seconds, 3),
        "threads": torch.get_num_threads(),
        "device": str(device),
        "per_class": bool(params["per_class"]),
        **({"method_info": result.info} if result.info else {}),
    }
    if result.gaps is not None:
        gaps = result.gaps
        metadata["completeness"] = gap_summary(gaps)
        metadata["gaps"] = gaps["gap"].tolist()
        metadata["steps_per_example"] = gaps["steps"].tolist()
        log.info("completeness: %s", metadata["completeness"])
        above = metadata["completeness"].get("n_above_tolerance", 0)
        if above:
            log.warning(
                "%d of %d examples end with a completeness gap above atol + rtol * |F(1) - F(0)| "
                "(atol %g, rtol %g) after up to %d steps: their IG scores are approximate",
                above, len(gaps), options.get("atol"), options.get("rtol"),
                metadata["completeness"]["steps_max"],
            )  # fmt: skip
    table = score_table(result, module, per_class=params["per_class"])
    write_parquet(snakemake.output[0], table, metadata)
    log.info(
        "%s %s layer %d: %d units, %d examples, %.1f s",
        method,
        layer_type,
        layer,
        len(result.scores[module]),
        len(examples),
        result.seconds,
    )


run_job(main, snakemake)  # noqa: F821
