"""Snakemake adapter: score every neuron of one module (model, method, layer type, layer)."""

import pandas as pd

from kneurons.batching import tokenize
from kneurons.io import write_parquet
from kneurons.jobs import run_job, start_job
from kneurons.model import alphabet, file_sha256, load_classifier
from kneurons.scoring import (
    activation_scores,
    gap_summary,
    integrated_gradients_scores,
    pick_examples,
    score_frame,
)


def main(snakemake):
    params = dict(snakemake.params.scoring)
    log, device = start_job(snakemake, seed=params["seed"])
    method = snakemake.wildcards.method
    layer_type = snakemake.wildcards.layer_type
    layer = int(snakemake.wildcards.layer)

    model, _ = load_classifier(snakemake.input.checkpoint, device=device)
    examples = pick_examples(
        pd.read_parquet(snakemake.input.train), params["n_examples"], params["seed"]
    )
    tokens = tokenize(alphabet(), examples["sequence"].tolist())
    metadata = {
        "method": method,
        "params": params,
        "layer_type": layer_type,
        "layer": layer,
        "n_examples": len(examples),
        "examples": examples["accession"].tolist(),
        "checkpoint_sha256": file_sha256(snakemake.input.checkpoint),
    }
    if method == "activation":
        scores = activation_scores(model, tokens, [layer_type], device, layers=[layer])
        scores = scores[(layer_type, layer)]
    elif method == "integrated_gradients":
        result = integrated_gradients_scores(
            model,
            tokens,
            examples["label"].tolist(),
            layer_type,
            [layer],
            steps=params["steps"],
            method=params["quadrature"],
            device=device,
        )
        scores = result.scores[layer]
        metadata["completeness"] = gap_summary(result.gaps)
        metadata["gaps"] = result.gaps["gap"].tolist()
        log.info("IG completeness: %s", metadata["completeness"])
    else:
        raise ValueError(f"score_neurons cannot compute method {method!r}")
    write_parquet(snakemake.output[0], score_frame(scores, layer_type, layer), metadata)
    log.info("wrote %d scores to %s", len(scores), snakemake.output[0])


run_job(main, snakemake)  # noqa: F821
