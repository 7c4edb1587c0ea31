"""Training an SAE on one site's activations, and the fidelity of a trained one.

`site_activations` runs the classifier over sequences and keeps the site's activation at every
real residue (BOS, EOS and padding left out), in sequence order. `train_sae` fits a `TopKSAE`
(`kneurons.sae.autoencoder`) on the training sequences' activations with Adam, shuffled minibatches,
the auxiliary loss against dead latents, unit-norm decoder columns after every step, and early
stopping on the validation activations' normalised MSE (the epoch with the lowest is kept).
Everything is seeded (the initialisation and the shuffling draw from one generator), so the
same activations and settings give the same SAE on a CPU.

`fidelity` measures what the issue asks of an SAE before its latents are read as units: the
fraction of variance explained, the share of dead latents (never active on the held-out
tokens), the mean number of active latents per token.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from kneurons.model.batching import iter_batches
from kneurons.sae.autoencoder import TopKSAE, aux_loss, normalisation_scale
from kneurons.sae.splice import SITES

log = logging.getLogger(__name__)


@torch.no_grad()
def site_activations(
    model, tokens: Sequence[torch.Tensor], site: str, layer: int, device, max_tokens: int = 4096
) -> torch.Tensor:
    """(residues, width) float32 activations of `site` on `layer` over `tokens`' real residues,
    sequence after sequence, residues in order."""
    if site not in SITES:
        raise ValueError(f"unknown SAE site {site!r}; choose from {', '.join(SITES)}")
    model.eval()
    layer_module = model.encoder.layers[layer]
    captured = {}
    if site == "ffn":

        def keep(_module, args):
            captured["x"] = args[0].detach()

        handle = layer_module.fc2.register_forward_pre_hook(keep)
    else:

        def keep(_module, _inputs, output):
            captured["x"] = output[0].detach()

        handle = layer_module.register_forward_hook(keep)
    per_sequence: list[torch.Tensor | None] = [None] * len(tokens)
    try:
        for idx, batch in iter_batches(tokens, model.encoder.padding_idx, max_tokens):
            batch = batch.to(device)
            model(batch)
            x = captured["x"].transpose(0, 1)  # (B, T, width)
            mask = model.residue_mask(batch)
            for row, i in enumerate(idx):
                per_sequence[i] = x[row][mask[row]].float().cpu()
    finally:
        handle.remove()
    return torch.cat(per_sequence) if per_sequence else torch.empty(0)


@dataclass
class TrainedSae:
    sae: TopKSAE
    history: list[dict] = field(default_factory=list)  # one row per epoch
    best_epoch: int = 0
    seconds: float = 0.0
    tokens_seen: int = 0


def normalised_mse(sae: TopKSAE, x_n: torch.Tensor, batch: int = 8192) -> float:
    """sum ||x_hat_n - x_n||^2 / sum ||x_n - mean||^2 over `x_n` (normalised inputs)."""
    err = 0.0
    with torch.no_grad():
        for start in range(0, len(x_n), batch):
            part = x_n[start : start + batch]
            err += float((sae.decode_normalised(sae.topk(sae.preactivations(part))) - part)
                         .double().pow(2).sum())  # fmt: skip
        total = float((x_n.double() - x_n.double().mean(0)).pow(2).sum())
    return err / max(total, 1e-12)


def train_sae(
    train: torch.Tensor,
    val: torch.Tensor,
    *,
    expansion: float,
    k: int,
    epochs: int = 20,
    batch_size: int = 1024,
    lr: float = 4e-4,
    aux_weight: float = 1 / 32,
    k_aux: int | None = None,
    dead_after: int = 20_000,
    patience: int = 3,
    seed: int = 0,
    progress=None,
    device: torch.device | str = "cpu",
) -> TrainedSae:
    """A TopK SAE with round(expansion x width) latents fitted on `train` (N, width), early
    stopping on `val` (module docstring), on `device` (the draws stay on the CPU's generator,
    so the initialisation and the order do not depend on it). `k_aux` defaults to width / 2
    (Gao et al.)."""
    if len(train) == 0 or len(val) == 0:
        raise ValueError("no activations to train the SAE on (empty training or validation set)")
    start = time.perf_counter()
    width = train.shape[1]
    n_latents = max(1, round(float(expansion) * width))  # = configuration.sae_latents
    scale = normalisation_scale(train)
    generator = torch.Generator().manual_seed(seed)
    device = torch.device(device)
    x_train, x_val = train.float().cpu() * scale, val.float().cpu() * scale
    sae = TopKSAE(width, n_latents, min(k, n_latents), scale=scale)
    sae.init_from(x_train, generator)
    sae.to(device)
    x_train, x_val = x_train.to(device), x_val.to(device)
    optimiser = torch.optim.Adam(sae.parameters(), lr=lr)
    k_aux = width // 2 if k_aux is None else k_aux
    variance = (x_train - x_train.mean(0)).pow(2).sum(-1).mean()
    since_fired = torch.zeros(n_latents, dtype=torch.long, device=device)
    out = TrainedSae(sae)
    best, best_state, stale = float("inf"), None, 0
    for epoch in range(epochs):
        order = torch.randperm(len(x_train), generator=generator).to(device)
        losses, aux_losses = [], []
        sae.train()
        for begin in range(0, len(order), batch_size):
            x = x_train[order[begin : begin + batch_size]]
            pre = sae.preactivations(x)
            z = sae.topk(pre)
            recon = sae.decode_normalised(z)
            loss = (recon - x).pow(2).sum(-1).mean() / variance
            fired = (z > 0).any(0)
            since_fired += len(x)
            since_fired[fired] = 0
            dead = since_fired > dead_after
            aux = aux_loss(sae, pre, (x - recon).detach(), dead, k_aux)
            optimiser.zero_grad(set_to_none=True)
            (loss + aux_weight * aux).backward()
            optimiser.step()
            sae.normalise_decoder()
            losses.append(loss.item())
            aux_losses.append(aux.item())
            out.tokens_seen += len(x)
        sae.eval()
        val_nmse = normalised_mse(sae, x_val)
        out.history.append(
            {"epoch": epoch + 1, "train_nmse": float(np.mean(losses)), "aux_loss":
             float(np.mean(aux_losses)), "val_nmse": val_nmse,
             "dead_fraction": float((since_fired > dead_after).float().mean())}
        )  # fmt: skip
        if progress is not None:
            progress(out.history[-1])
        if val_nmse < best - 1e-6:
            best, best_state, stale, out.best_epoch = (
                val_nmse,
                copy.deepcopy(sae.state_dict()),
                0,
                epoch + 1,
            )
        else:
            stale += 1
            if stale >= patience:
                break
    sae.load_state_dict(best_state)
    sae.cpu()
    out.seconds = time.perf_counter() - start
    return out


@torch.no_grad()
def fidelity(sae: TopKSAE, x: torch.Tensor, batch: int = 8192) -> dict:
    """Fraction of variance explained, dead-latent share (never active on `x`), mean active
    latents per token (L0), on held-out activations `x` (N, width), raw units."""
    x = x.float()
    fired = torch.zeros(sae.n_latents, dtype=torch.bool, device=x.device)
    err, l0 = 0.0, 0.0
    for start in range(0, len(x), batch):
        part = x[start : start + batch]
        z = sae.encode(part)
        fired |= (z > 0).any(0)
        l0 += float((z > 0).sum())
        err += float((sae.decode(z) - part).double().pow(2).sum())
    total = float((x.double() - x.double().mean(0)).pow(2).sum())
    return {
        "n_tokens": len(x),
        "variance_explained": 1.0 - err / max(total, 1e-12),
        "dead_fraction": float((~fired).float().mean()),
        "mean_active": l0 / max(len(x), 1),
    }
