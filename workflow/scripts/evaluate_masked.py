"""Snakemake adapter: evaluate one masked model on the test split.

Wildcards {mode}/{scope}/{method}/{target}/{direction}{retention} name one evaluation; the
selected units come from the selection file of (scope, method, target), the mask is applied
with hooks; the test set is tokenised and bucketed once.
"""

import pandas as pd
import torch

from kneurons.batching import tokenize
from kneurons.evaluate import evaluation_frame, predict_logits, prepare_batches
from kneurons.io import write_parquet
from kneurons.jobs import run_job, start_job
from kneurons.masking import ablated, unit_masks
from kneurons.model import alphabet, load_classifier
from kneurons.selection import pick, selected
from kneurons.vocab import is_group, parse_method


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
    test = pd.read_parquet(snakemake.input.test)
    tokens = tokenize(alphabet(), test["sequence"].tolist())
    batches = prepare_batches(tokens, model.encoder.padding_idx, snakemake.params.max_tokens)

    ranking = snakemake.params.group_ranking
    units = pick(pd.read_parquet(snakemake.input.selection), group_ranking=ranking)
    retention = float(wildcards.retention)
    selection = units.assign(selected=selected(units, retention))
    masks = unit_masks(selection, wildcards.direction)
    means = read_means(snakemake.input.means) if wildcards.mode == "mean" else None
    with ablated(model, masks, means):
        logits = predict_logits(model, None, device, batches=batches)
    family, seed = parse_method(wildcards.method)
    n_selected = int(selection["selected"].sum())
    row = {
        "model": wildcards.model,
        "method": wildcards.method,
        "method_family": family,
        "seed": seed,
        "target": wildcards.target,
        "scope": wildcards.scope,
        "mode": wildcards.mode,
        "direction": wildcards.direction,
        "group_ranking": ranking if is_group(wildcards.scope) else None,
        "retention": retention,
        "n_selected": n_selected,
        "n_kept": n_selected if wildcards.direction == "keep" else len(selection) - n_selected,
        "n_total": int(len(selection)),
    }
    frame = evaluation_frame(row, test["label"], logits, meta["classes"])
    write_parquet(snakemake.output[0], frame)
    log.info("%s: accuracy %.4f", snakemake.output[0], frame["accuracy"][0])


run_job(main, snakemake)  # noqa: F821
