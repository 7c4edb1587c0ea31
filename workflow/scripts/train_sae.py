"""Snakemake adapter: train the SAE of one (model, site, layer) on the fine-tuned model's
activations over training residues, early-stopped on validation residues (kneurons.sae.train).

The training residues are the training sequences in a seeded order up to `max_train_tokens`
residues (all of them when they fit); the file records the parent checkpoint's SHA-256, the site,
the layer and the normalisation, which `kneurons.sae.attach_saes` checks when it is spliced in.
"""

import pandas as pd

from kneurons.errors import DataError
from kneurons.io import atomic_write, file_sha256
from kneurons.jobs import run_job, start_job
from kneurons.model.batching import tokenize
from kneurons.model.classifier import alphabet, load_classifier
from kneurons.sae import save_sae
from kneurons.sae.train import fidelity, site_activations, train_sae


def budget(frame: pd.DataFrame, max_tokens: int, seed: int) -> pd.DataFrame:
    """The sequences of `frame` in a seeded order, as many as fit in `max_tokens` residues."""
    shuffled = frame.sample(frac=1.0, random_state=seed)
    keep = shuffled["sequence"].str.len().cumsum() <= max_tokens
    keep.iloc[0] = True
    return shuffled[keep]


def main(snakemake):
    params = dict(snakemake.params.sae)
    log, device = start_job(snakemake, seed=params["seed"])
    site, layer = snakemake.wildcards.site, int(snakemake.wildcards.layer)
    model, _ = load_classifier(snakemake.input.checkpoint, device=device)
    cap, seed = params["max_train_tokens"], params["seed"]
    frames = {split: pd.read_parquet(snakemake.input[split]) for split in ("train", "val")}
    for split, frame in frames.items():
        if frame.empty:
            raise DataError(
                f"{snakemake.input[split]}: no {split} sequences to train the SAE on (an SAE "
                "needs validation sequences for early stopping: raise data.split.val)"
            )
    train, val = (budget(frames[split], cap, seed) for split in ("train", "val"))
    acts = {}
    for name, frame in (("train", train), ("val", val)):
        tokens = tokenize(alphabet(), frame["sequence"].tolist())
        acts[name] = site_activations(model, tokens, site, layer, device)
    log.info(
        "%s layer %d: %d training and %d validation residues of width %d",
        site, layer, len(acts["train"]), len(acts["val"]), acts["train"].shape[1],
    )  # fmt: skip

    def progress(row):
        log.info(
            "epoch %d: train nMSE %.4f, validation nMSE %.4f, dead %.3f",
            row["epoch"], row["train_nmse"], row["val_nmse"], row["dead_fraction"],
        )  # fmt: skip

    options = ("expansion", "k", "epochs", "batch_size", "lr", "aux_weight", "dead_after")
    trained = train_sae(
        acts["train"],
        acts["val"],
        **{key: params[key] for key in options},
        patience=params["patience"],
        seed=params["seed"],
        progress=progress,
        device=device,
    )
    sae = trained.sae
    val_fidelity = fidelity(sae, acts["val"])
    meta = {
        "model": snakemake.wildcards.model,
        "checkpoint_sha256": file_sha256(snakemake.input.checkpoint),
        "site": site,
        "layer": layer,
        "width": sae.d_in,
        "n_latents": sae.n_latents,
        "k": sae.k,
        "normalisation": {"kind": "scalar: mean squared norm = width", "scale": float(sae.scale)},
        "settings": params,
        "n_train_residues": len(acts["train"]),
        "n_val_residues": len(acts["val"]),
        "best_epoch": trained.best_epoch,
        "val_fidelity": val_fidelity,
        "seconds": round(trained.seconds, 3),
        "activations_per_second": round(trained.tokens_seen / max(trained.seconds, 1e-9), 1),
    }
    save_sae(snakemake.output.sae, sae, meta)
    atomic_write(
        snakemake.output.history,
        lambda tmp: pd.DataFrame(trained.history).to_csv(tmp, sep="\t", index=False),
    )
    log.info(
        "%s layer %d: %d latents (k %d), validation variance explained %.3f, dead %.3f, "
        "%.0f activations/s",
        site, layer, sae.n_latents, sae.k, val_fidelity["variance_explained"],
        val_fidelity["dead_fraction"], meta["activations_per_second"],
    )  # fmt: skip


run_job(main, snakemake)  # noqa: F821
