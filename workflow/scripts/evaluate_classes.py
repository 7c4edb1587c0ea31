"""Snakemake adapter: the class-specific targets of one (model, layer type) (rule
evaluate_classes), or of every layer type of a model (evaluate_classes_model): for every method,
factor and retention level, each class's own top units multiplied by the factor (a random
seed's units: one row, the baseline), the whole test set evaluated (`kneurons.classes.rankings`).

One job writes one file per (layer type, method, factor, retention), read from its output
paths; the model is loaded and the test set
tokenised once, several masks share each forward pass (`predict_masked`), and masks evaluated
before with the same checkpoint, test set, settings and code are taken from the store
(`kneurons.store`): a new factor or retention level computes only its own masks.
"""

import time

import numpy as np
import pandas as pd
import torch

from kneurons.classes.masks import per_sequence, scaled_fingerprint, scaled_masks
from kneurons.classes.rankings import (
    CLASS_EVAL_FILE,
    class_eval_frame,
    class_rankings,
    operation_of,
)
from kneurons.evaluation.masked import stored_logits
from kneurons.io import file_sha256, write_parquet
from kneurons.jobs import run_job, start_job
from kneurons.model.batching import tokenize
from kneurons.model.classifier import alphabet, architecture_of
from kneurons.model.predict import prepare_batches
from kneurons.model.resources import pass_tokens
from kneurons.sae import load_analysis_model
from kneurons.selection.ranking import selected
from kneurons.store import Store, files_fingerprint
from kneurons.vocab import SELECTION_FILE, parse_method, parse_path


def main(snakemake):
    started = time.perf_counter()
    log, device = start_job(snakemake)
    w = snakemake.wildcards
    params = snakemake.params
    model, meta, digest = load_analysis_model(
        snakemake.input.checkpoint, list(snakemake.input.get("saes", [])), device
    )
    classes = [str(c) for c in meta["classes"]]
    test = pd.read_parquet(snakemake.input.test)
    y_true = test["label"].to_numpy()
    tokens = tokenize(alphabet(), test["sequence"].tolist())
    max_tokens = pass_tokens(params.max_tokens, device, architecture_of(model.encoder))
    batches = prepare_batches(tokens, model.encoder.padding_idx, max_tokens)
    store = Store(
        params.store,
        "logits",
        {
            "checkpoint": digest,
            "test": file_sha256(snakemake.input.test),
            "code": files_fingerprint(snakemake.input.lib),
            "torch": torch.__version__,
            "device": device.type,
            "mode": "scaled",
            "max_tokens": max_tokens,
        },
        log=log.warning,
    )
    shape = (len(test), len(classes))

    base_key = store.key(scaled_fingerprint({}))
    masks = {base_key: {}}
    selections = {
        (names["target"], names["method"]): path
        for path in snakemake.input.selections
        for names in [parse_path(SELECTION_FILE, path)]
    }
    targets = []  # (out, [(row, key)])
    rankings = {}
    for out in snakemake.output:
        names = parse_path(CLASS_EVAL_FILE, out)
        method, factor, retention = names["method"], float(names["factor"]), names["retention"]
        layer_type = names["layer_type"]
        family, seed = parse_method(method)
        if (layer_type, method) not in rankings:
            path = selections[layer_type, method]
            rankings[layer_type, method] = class_rankings(pd.read_parquet(path), family)
        rows = []
        for label, units in rankings[layer_type, method].items():
            selection = units.assign(selected=selected(units, float(retention)))
            mask = scaled_masks(selection, factor)
            key = store.key(scaled_fingerprint(mask))
            masks.setdefault(key, mask)
            row = {
                "model": w.model,
                "method": method,
                "method_family": family,
                "seed": seed,
                "layer_type": layer_type,
                "factor": factor,
                "operation": operation_of(factor),
                "retention": float(retention),
                "label": int(label),
                "selected_class": classes[label] if label >= 0 else None,
                "n_selected": int(selection["selected"].sum()),
                "n_total": int(len(selection)),
            }
            rows.append((row, key))
        targets.append((out, rows))
    setup = time.perf_counter() - started

    forward = time.perf_counter()
    logits, todo = stored_logits(
        store, masks, shape, model, batches, device, max_tokens, log=log,
        what="class-specific evaluation",
    )  # fmt: skip
    forward = time.perf_counter() - forward

    unchanged = {f"base_{k}": v for k, v in per_sequence(logits[base_key], y_true).items()}
    n_rows = 0
    for out, rows in targets:
        records = [{**row, **per_sequence(logits[key], y_true), **unchanged} for row, key in rows]
        used = store.reference([base_key, *(key for _, key in rows)])
        write_parquet(out, class_eval_frame(records), {"store": used, "max_tokens": max_tokens})
        n_rows += len(records)
    log.info(
        "%d targets (%d rows: classes x methods x factors x levels): %d distinct masks, %d from "
        "the store, %d computed in %.2f s (%.3f s per mask; %d test sequences in %d batches); "
        "start-up, loading and tokenising %.2f s; unchanged accuracy %.3f",
        len(targets), n_rows, len(todo) + store.hits, store.hits, len(todo), forward,
        forward / max(1, len(todo)), len(test), len(batches), setup,
        float(np.mean(unchanged["base_correct"])),
    )  # fmt: skip


run_job(main, snakemake)  # noqa: F821
