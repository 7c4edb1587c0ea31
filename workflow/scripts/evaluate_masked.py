"""Snakemake adapter: evaluate one masked model (or the unmasked reference) on the test split."""

import json

import pandas as pd

from kneurons.batching import tokenize
from kneurons.evaluate import classification_metrics, predict_logits
from kneurons.io import write_parquet
from kneurons.jobs import run_job, start_job
from kneurons.masking import keep_masks, select_top, silenced
from kneurons.model import alphabet, load_classifier, units_of


def main(snakemake):
    log, device = start_job(snakemake)
    wildcards = snakemake.wildcards
    model, meta = load_classifier(snakemake.input.checkpoint, device=device)
    classes = meta["classes"]
    test = pd.read_parquet(snakemake.input.test)
    tokens = tokenize(alphabet(), test["sequence"].tolist())
    max_tokens = snakemake.config["evaluation"].get("max_tokens", 16384)

    row = {"model": wildcards.model}
    if "method" not in wildcards.keys():  # the unmasked reference
        logits = predict_logits(model, tokens, device, max_tokens)
        row.update(
            method="unmasked",
            method_family="unmasked",
            seed=None,
            layer_type="none",
            retention=100.0,
            n_kept=0,
            n_total=0,
        )
    else:
        scores = pd.concat(
            [pd.read_parquet(path) for path in snakemake.input.scores], ignore_index=True
        )
        retention = float(wildcards.retention)
        selection = select_top(scores, retention)
        masks = keep_masks(selection, units_of(model.encoder, wildcards.layer_type))
        with silenced(model, wildcards.layer_type, masks):
            logits = predict_logits(model, tokens, device, max_tokens)
        method = wildcards.method
        family, _, seed = method.partition("-")
        row.update(
            method=method,
            method_family=family,
            seed=int(seed) if seed else None,
            layer_type=wildcards.layer_type,
            retention=retention,
            n_kept=int(selection["keep"].sum()),
            n_total=int(len(selection)),
        )
    metrics = classification_metrics(test["label"], logits.argmax(1).numpy(), classes)
    row.update(
        n=metrics["n"],
        accuracy=metrics["accuracy"],
        macro_f1=metrics["macro_f1"],
        per_class_accuracy=json.dumps({c: v["accuracy"] for c, v in metrics["per_class"].items()}),
    )
    frame = pd.DataFrame([row])
    frame["seed"] = frame["seed"].astype("Int64")
    write_parquet(snakemake.output[0], frame)
    log.info("%s", row)


run_job(main, snakemake)  # noqa: F821
