"""Snakemake adapter: evaluate the masked model on the test split for every method and retention
level of one (mode, scope, target, direction) (rule evaluate_masked), or of every layer type of
one (mode, scope, direction) (rule evaluate_masked_model).

One job writes one file per (target, method, retention), read from its output paths: the model
is loaded and the test set tokenised and bucketed once, and several masks share each forward
pass (`predict_masked`). A mask evaluated before with the same checkpoint, test set, settings
and code (whichever method or level produced it) is taken from the store (`kneurons.store`), so
adding a retention level or a random seed computes only the new masks.
"""

import time

import pandas as pd
import torch

from kneurons.evaluation.masked import evaluation_frame, stored_logits
from kneurons.evaluation.masking import mask_fingerprint, read_mean_activations, unit_masks
from kneurons.io import file_sha256, write_parquet
from kneurons.jobs import run_job, start_job
from kneurons.model.batching import tokenize
from kneurons.model.classifier import alphabet, architecture_of
from kneurons.model.predict import prepare_batches
from kneurons.model.resources import pass_tokens
from kneurons.sae import load_analysis_model
from kneurons.selection.ranking import pick, selected
from kneurons.store import Store, files_fingerprint
from kneurons.vocab import EVAL_FILE, SELECTION_FILE, is_group, parse_method, parse_path


def main(snakemake):
    started = time.perf_counter()
    log, device = start_job(snakemake)
    w = snakemake.wildcards
    params = snakemake.params
    ranking = params.group_ranking
    means = read_mean_activations(snakemake.input.means) if w.mode == "mean" else None
    model, meta, digest = load_analysis_model(
        snakemake.input.checkpoint, list(snakemake.input.get("saes", [])), device
    )
    test = pd.read_parquet(snakemake.input.test)
    tokens = tokenize(alphabet(), test["sequence"].tolist())
    max_tokens = pass_tokens(params.max_tokens, device, architecture_of(model.encoder))
    batches = prepare_batches(tokens, model.encoder.padding_idx, max_tokens)
    store = Store(
        params.store,
        "logits",
        {
            "checkpoint": digest,
            "test": file_sha256(snakemake.input.test),
            "means": [file_sha256(p) for p in snakemake.input.means],
            "code": files_fingerprint(snakemake.input.lib),
            "torch": torch.__version__,
            "device": device.type,
            "mode": w.mode,
            "max_tokens": max_tokens,
        },
        log=log.warning,
    )
    shape = (len(test), len(meta["classes"]))

    # every (target, method, retention) output: its row, its mask and the mask's store key
    wanted = {}
    for out in snakemake.output:
        names = parse_path(EVAL_FILE, out)
        wanted.setdefault((names["target"], names["method"]), []).append((names["retention"], out))
    selections = {
        (names["target"], names["method"]): path
        for path in snakemake.input.selections
        for names in [parse_path(SELECTION_FILE, path)]
    }
    targets, masks = [], {}
    for (target, method), levels in wanted.items():
        units = pick(pd.read_parquet(selections[target, method]), group_ranking=ranking)
        for name, out in levels:
            retention = float(name)
            selection = units.assign(selected=selected(units, retention))
            mask = unit_masks(selection, w.direction)
            key = store.key(mask_fingerprint(mask))
            targets.append((target, method, retention, selection, key, out))
            masks.setdefault(key, mask)
    setup = time.perf_counter() - started

    forward = time.perf_counter()
    logits, todo = stored_logits(
        store, masks, shape, model, batches, device, max_tokens, means, log
    )
    forward = time.perf_counter() - forward

    for target, method, retention, selection, key, out in targets:
        family, seed = parse_method(method)
        n_selected = int(selection["selected"].sum())
        row = {
            "model": w.model,
            "method": method,
            "method_family": family,
            "seed": seed,
            "target": target,
            "scope": w.scope,
            "mode": w.mode,
            "direction": w.direction,
            "group_ranking": ranking if is_group(w.scope) else None,
            "retention": retention,
            "n_selected": n_selected,
            "n_kept": n_selected if w.direction == "keep" else len(selection) - n_selected,
            "n_total": int(len(selection)),
        }
        frame = evaluation_frame(row, test["label"], logits[key], meta["classes"])
        write_parquet(out, frame, {"store": store.reference([key]), "max_tokens": max_tokens})
    n_targets = len({target for target, _ in wanted})
    n_methods = len(wanted) // n_targets
    log.info(
        "%d targets (%d layer types or groups x %d methods x %d retention levels): %d distinct "
        "masks, %d from the store, %d computed (%d of them for a bad store entry) in %.2f s "
        "(%.3f s per mask; %d test sequences in %d batches); start-up, loading and tokenising "
        "%.2f s",
        len(targets), n_targets, n_methods, len(targets) // len(wanted), len(todo) + store.hits,
        store.hits, len(todo), store.discarded, forward, forward / max(1, len(todo)), len(test),
        len(batches), setup,
    )  # fmt: skip


run_job(main, snakemake)  # noqa: F821
