"""Snakemake adapter: every unit's mean activation over training residues (for mean ablation).

The examples are a plain seeded sample of `evaluation.mean_ablation.n_examples` training
sequences (`kneurons.scoring.files.pick_examples`), not the class-stratified sample the scores use:
the mean that replaces a unit is its mean over the training distribution (classes in their training
proportions), and no class needs a value of its own. The metadata records the count per class
(`examples_per_class`).
"""

import numpy as np
import pandas as pd

from kneurons.evaluation.masking import mean_activations
from kneurons.io import file_sha256, write_parquet
from kneurons.jobs import run_job, start_job
from kneurons.model.batching import tokenize
from kneurons.model.classifier import alphabet, architecture_of
from kneurons.model.resources import pass_tokens
from kneurons.sae import load_analysis_model
from kneurons.scoring.files import count_per_class, pick_examples


def main(snakemake):
    options = dict(snakemake.params.options)
    log, device = start_job(snakemake, seed=options["seed"])
    layer_type = snakemake.wildcards.layer_type
    model, meta, digest = load_analysis_model(
        snakemake.input.checkpoint, list(snakemake.input.get("saes", [])), device
    )
    examples = pick_examples(
        pd.read_parquet(snakemake.input.train), options["n_examples"], options["seed"]
    )
    tokens = tokenize(alphabet(), examples["sequence"].tolist())
    max_tokens = pass_tokens(snakemake.params.max_tokens, device, architecture_of(model.encoder))
    means = mean_activations(model, tokens, [layer_type], device, max_tokens)
    frame = pd.concat(
        [
            pd.DataFrame(
                {
                    "layer": np.full(len(values), layer, dtype=np.int64),
                    "layer_type": layer_type,
                    "neuron": np.arange(len(values), dtype=np.int64),
                    "mean": values,
                }
            )
            for (_, layer), values in sorted(means.items())
        ],
        ignore_index=True,
    )
    metadata = {
        "layer_type": layer_type,
        "options": options,
        "n_examples": len(examples),
        "sampling": "random",
        "examples_per_class": count_per_class(examples, meta.get("classes")),
        "n_residues": int(examples["sequence"].str.len().sum()),
        "checkpoint_sha256": file_sha256(snakemake.input.checkpoint),
        "model_digest": digest,
        "max_tokens": max_tokens,
    }
    write_parquet(snakemake.output[0], frame, metadata)
    log.info("mean activations of %d %s units, %d examples", len(frame), layer_type, len(examples))


run_job(main, snakemake)  # noqa: F821
