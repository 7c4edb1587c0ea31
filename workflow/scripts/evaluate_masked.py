"""Snakemake adapter: evaluate one masked model (or the unmasked reference) on the test split.

Wildcards {mode}/{scope}/{method}/{layer_type}/{direction}{retention} name one evaluation; the
test set is tokenised and bucketed once, the model loaded once, the mask applied with hooks.
"""

import pandas as pd
import torch

from kneurons.batching import tokenize
from kneurons.evaluate import evaluation_record, predict_logits, prepare_batches
from kneurons.io import write_parquet
from kneurons.jobs import run_job, start_job
from kneurons.masking import GROUPS, ablated, all_class_rows, select, unit_masks
from kneurons.model import alphabet, load_classifier


def read_means(paths):
    frame = pd.concat([pd.read_parquet(p) for p in paths], ignore_index=True)
    return {
        (lt, int(layer)): torch.tensor(rows.sort_values("neuron")["mean"].to_numpy())
        for (lt, layer), rows in frame.groupby(["layer_type", "layer"])
    }


def main(snakemake):
    log, device = start_job(snakemake)
    wildcards = snakemake.wildcards
    model, meta = load_classifier(snakemake.input.checkpoint, device=device)
    classes = meta["classes"]
    test = pd.read_parquet(snakemake.input.test)
    tokens = tokenize(alphabet(), test["sequence"].tolist())
    max_tokens = snakemake.config["evaluation"].get("max_tokens", 16384)
    batches = prepare_batches(tokens, model.encoder.padding_idx, max_tokens)

    row = {"model": wildcards.model}
    if "method" not in wildcards.keys():  # the unmasked reference
        logits = predict_logits(model, None, device, batches=batches)
        row.update(
            method="unmasked",
            method_family="unmasked",
            seed=None,
            layer_type="none",
            scope="none",
            mode="none",
            direction="none",
            group_ranking=None,
            retention=100.0,
            n_selected=0,
            n_kept=0,
            n_total=0,
        )
    else:
        scores = pd.concat(
            [all_class_rows(pd.read_parquet(path)) for path in snakemake.input.scores],
            ignore_index=True,
        )
        retention = float(wildcards.retention)
        ranking = snakemake.params.group_ranking
        selection = select(scores, retention, wildcards.scope, ranking or "zscore")
        masks = unit_masks(selection, wildcards.direction)
        means = read_means(snakemake.input.means) if wildcards.mode == "mean" else None
        with ablated(model, masks, means):
            logits = predict_logits(model, None, device, batches=batches)
        method = wildcards.method
        family, _, seed = method.partition("-")
        n_selected = int(selection["selected"].sum())
        row.update(
            method=method,
            method_family=family,
            seed=int(seed) if seed else None,
            layer_type=wildcards.layer_type,
            scope=wildcards.scope,
            mode=wildcards.mode,
            direction=wildcards.direction,
            group_ranking=ranking if wildcards.scope in GROUPS else None,
            retention=retention,
            n_selected=n_selected,
            n_kept=n_selected if wildcards.direction == "keep" else len(selection) - n_selected,
            n_total=int(len(selection)),
        )
    row.update(evaluation_record(test["label"], logits, classes))
    frame = pd.DataFrame([row])
    frame["seed"] = frame["seed"].astype("Int64")
    frame["group_ranking"] = frame["group_ranking"].astype("string")
    write_parquet(snakemake.output[0], frame)
    log.info("%s", {k: v for k, v in row.items() if k not in ("correct", "predicted")})


run_job(main, snakemake)  # noqa: F821
