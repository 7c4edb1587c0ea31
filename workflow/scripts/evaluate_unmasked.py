"""Snakemake adapter: evaluate the unmasked model on the test split (the reference row)."""

import pandas as pd

from kneurons.evaluation.masked import evaluation_frame
from kneurons.io import write_parquet
from kneurons.jobs import run_job, start_job
from kneurons.model.batching import tokenize
from kneurons.model.classifier import alphabet, architecture_of, load_classifier
from kneurons.model.predict import predict_logits, prepare_batches
from kneurons.model.resources import pass_tokens
from kneurons.vocab import NONE, UNMASKED


def main(snakemake):
    log, device = start_job(snakemake)
    model, meta = load_classifier(snakemake.input.checkpoint, device=device)
    test = pd.read_parquet(snakemake.input.test)
    tokens = tokenize(alphabet(), test["sequence"].tolist())
    max_tokens = pass_tokens(snakemake.params.max_tokens, device, architecture_of(model.encoder))
    batches = prepare_batches(tokens, model.encoder.padding_idx, max_tokens)
    logits = predict_logits(model, None, device, batches=batches)
    row = {
        "model": snakemake.wildcards.model,
        "method": UNMASKED,
        "method_family": UNMASKED,
        "seed": None,
        "target": NONE,
        "scope": NONE,
        "mode": NONE,
        "direction": NONE,
        "group_ranking": None,
        "retention": 100.0,
        "n_selected": 0,
        "n_kept": 0,
        "n_total": 0,
    }
    frame = evaluation_frame(row, test["label"], logits, meta["classes"])
    write_parquet(snakemake.output[0], frame, {"max_tokens": max_tokens})
    log.info("unmasked accuracy %.4f on %d test sequences", frame["accuracy"][0], len(test))


run_job(main, snakemake)  # noqa: F821
