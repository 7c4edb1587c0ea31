"""A TopK sparse autoencoder over one site's activations (Gao et al. 2024, "Scaling and evaluating
sparse autoencoders"; the recipe InterProt trains on ESM-2).

x (d) is normalised by one scalar, `scale` = sqrt(d / E||x||^2) over the training activations
(the convention of sae-lens and InterPLM: the inputs' mean squared norm becomes d, so one
learning rate and one k suit every site), then
    pre = W_enc (x_n - b_dec) + b_enc,  z = TopK(ReLU(pre)),  x_hat_n = W_dec z + b_dec,
and x_hat = x_hat_n / scale. The latents z are the units (`kneurons.sae.splice`); W_dec's
columns have unit norm, so a latent's size is its activation.

Training loss: normalised MSE (MSE over the variance of x_n) plus `aux_weight` times the auxiliary
loss against dead latents: the latents that fired on none of the last `dead_after` training
tokens reconstruct the residual x_n - x_hat_n with their own top `k_aux` pre-activations, so
their encoder rows keep receiving gradient (Gao et al., section A.2).
"""

from __future__ import annotations

import math

import torch
from torch import nn


class TopKSAE(nn.Module):
    """TopK SAE: `d_in` inputs, `n_latents` latents, `k` active per token."""

    def __init__(self, d_in: int, n_latents: int, k: int, scale: float = 1.0):
        super().__init__()
        if not 0 < k <= n_latents:
            raise ValueError(f"k must be in 1..{n_latents}, got {k}")
        self.d_in, self.n_latents, self.k = int(d_in), int(n_latents), int(k)
        self.encoder = nn.Linear(d_in, n_latents)
        self.W_dec = nn.Parameter(torch.empty(d_in, n_latents))
        self.b_dec = nn.Parameter(torch.zeros(d_in))
        self.register_buffer("scale", torch.tensor(float(scale)))

    def init_from(self, x: torch.Tensor, generator: torch.Generator) -> None:
        """Decoder columns random unit vectors, encoder their transpose, b_dec the mean of the
        (normalised) activations `x` (N, d)."""
        with torch.no_grad():
            w = torch.randn(self.d_in, self.n_latents, generator=generator)
            self.W_dec.copy_(w / w.norm(dim=0, keepdim=True))
            self.encoder.weight.copy_(self.W_dec.T)
            self.encoder.bias.zero_()
            self.b_dec.copy_(x.mean(0))

    def normalise_decoder(self) -> None:
        with torch.no_grad():
            self.W_dec.div_(self.W_dec.norm(dim=0, keepdim=True).clamp(min=1e-8))

    def preactivations(self, x_n: torch.Tensor) -> torch.Tensor:
        """W_enc (x_n - b_dec) + b_enc on normalised inputs (..., d) -> (..., n_latents)."""
        return self.encoder(x_n - self.b_dec)

    def topk(self, pre: torch.Tensor) -> torch.Tensor:
        """TopK(ReLU(pre)): the k largest pre-activations, the rest 0; ties broken by index."""
        values, index = pre.topk(self.k, dim=-1)
        return torch.zeros_like(pre).scatter(-1, index, values.relu())

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Latents of raw activations x (..., d)."""
        return self.topk(self.preactivations(x * self.scale))

    def decode_normalised(self, z: torch.Tensor) -> torch.Tensor:
        return z @ self.W_dec.T + self.b_dec

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Reconstruction in the raw activations' units."""
        return self.decode_normalised(z) / self.scale

    def latent_change(self, delta: torch.Tensor) -> torch.Tensor:
        """What a change `delta` of the latents changes in the raw reconstruction: W_dec delta /
        scale (no bias: the change of nothing is exactly 0)."""
        return (delta @ self.W_dec.T) / self.scale

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.encode(x)
        return self.decode(z), z


def normalisation_scale(x: torch.Tensor) -> float:
    """sqrt(d / E||x||^2): the inputs' mean squared norm becomes d after scaling."""
    mean_sq = float((x.double() ** 2).sum(-1).mean())
    if not math.isfinite(mean_sq) or mean_sq <= 0:
        raise ValueError("activations are all zero or not finite: nothing to normalise")
    return math.sqrt(x.shape[-1] / mean_sq)


def aux_loss(
    sae: TopKSAE, pre: torch.Tensor, residual: torch.Tensor, dead: torch.Tensor, k_aux: int
) -> torch.Tensor:
    """The dead latents' top-`k_aux` reconstruction of `residual` (normalised MSE); 0 without
    dead latents."""
    n_dead = int(dead.sum())
    if n_dead == 0 or k_aux < 1:
        return pre.new_zeros(())
    masked = pre.masked_fill(~dead, float("-inf"))
    values, index = masked.topk(min(k_aux, n_dead), dim=-1)
    z_aux = torch.zeros_like(pre).scatter(-1, index, values.relu())
    recon = z_aux @ sae.W_dec.T
    variance = (residual - residual.mean(0)).pow(2).sum(-1).mean().clamp(min=1e-12)
    return (recon - residual).pow(2).sum(-1).mean() / variance
