"""Snakemake adapter: fine-tune one model of the config on the training split."""

import json
from dataclasses import asdict
from pathlib import Path

import pandas as pd

from kneurons.io import atomic_write, write_json
from kneurons.jobs import run_job, start_job
from kneurons.model.batching import tokenize
from kneurons.model.checkpoints import check_recorded_weights
from kneurons.model.classifier import (
    EsmClassifier,
    ModelSpec,
    alphabet,
    architecture_of,
    build_encoder,
    save_classifier,
    units_of,
)
from kneurons.model.predict import classification_metrics, predict_logits
from kneurons.model.train import TrainOptions, finetune
from kneurons.store import files_fingerprint
from kneurons.vocab import NEURON_TYPES


def main(snakemake):
    options = TrainOptions.from_config(snakemake.params.finetune)
    log, device = start_job(snakemake, seed=options.seed)
    spec = ModelSpec.from_config(snakemake.wildcards.model, snakemake.params.model)
    with open(snakemake.input.card) as fh:
        classes = json.load(fh)["classes"]
    train, val, test = (pd.read_parquet(snakemake.input[k]) for k in ("train", "val", "test"))

    for record in snakemake.input.weights:  # a pretrained model: the download, as fetched
        check_recorded_weights(record)
    model = EsmClassifier(build_encoder(spec), num_classes=len(classes))
    log.info("model %s: %s, %d classes", snakemake.wildcards.model, spec, len(classes))
    # Not a declared output: it survives a killed job, and a rerun continues from it.
    resume = Path(snakemake.output.checkpoint).with_name("finetune_state.pt")
    model, history = finetune(
        model,
        alphabet(),
        train,
        val,
        options,
        device,
        log=log.info,
        resume_path=resume,
        code=files_fingerprint(snakemake.input.lib),
    )

    metrics = {"model": snakemake.wildcards.model, "classes": classes}
    for name, frame in (("val", val), ("test", test)):
        logits = predict_logits(model, tokenize(alphabet(), frame["sequence"].tolist()), device)
        metrics[name] = classification_metrics(frame["label"], logits.argmax(1).numpy(), classes)
    metrics["best_epoch"] = int(history.loc[history["best"], "epoch"].iloc[0])
    log.info(
        "test accuracy %.4f, macro-F1 %.4f",
        metrics["test"]["accuracy"],
        metrics["test"]["macro_f1"],
    )

    info = {
        "model": snakemake.wildcards.model,
        "spec": snakemake.params.model,
        "architecture": asdict(architecture_of(model.encoder)),
        "classes": classes,
        "units": {lt: units_of(model.encoder, lt) for lt in NEURON_TYPES},
    }
    save_classifier(snakemake.output.checkpoint, model.cpu(), {"classes": classes})
    write_json(snakemake.output.info, info)
    write_json(snakemake.output.metrics, metrics)
    atomic_write(snakemake.output.history, lambda tmp: history.to_csv(tmp, sep="\t", index=False))


run_job(main, snakemake)  # noqa: F821
