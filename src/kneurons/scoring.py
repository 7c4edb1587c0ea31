"""Neuron scores: activation, integrated gradients (exact, one module at a time) and random.

Every method returns, per layer, a 1-D array of scores over the units of one module type
(see `model.LAYER_TYPES`); `score_frame` turns one layer's scores into the parquet schema.
Definitions follow DESIGN.md:
- activation: mean over examples of the mean |activation| over real residue tokens;
- integrated gradients: for one module at a time, its output is scaled by alpha in [0, 1]
  while the rest of the network runs normally; F(alpha) = probability of the true class;
  IG_i = sum over token positions of a_i * integral_0^1 dF/da_i(alpha) d alpha; score = mean over
  examples. Completeness: sum_i IG_i -> F(1) - F(0); the gap is recorded per (example, module).
  All token positions count, BOS and EOS included, because the scaling acts on all of them.
- random: seeded uniform scores.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from kneurons.batching import iter_batches
from kneurons.model import EsmClassifier, get_module, units_of

QUADRATURES = (
    "riemann_left",
    "riemann_right",
    "riemann_middle",
    "riemann_trapezoid",
    "gausslegendre",
)


def quadrature(method: str, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Points alpha in [0, 1] and weights for integral_0^1 f(alpha) d alpha (as captum)."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if method == "gausslegendre":
        x, w = np.polynomial.legendre.leggauss(steps)
        return 0.5 * (x + 1.0), 0.5 * w
    if method == "riemann_trapezoid":
        if steps < 2:
            raise ValueError("riemann_trapezoid needs steps >= 2")
        alphas = np.linspace(0.0, 1.0, steps)
        weights = np.full(steps, 1.0 / (steps - 1))
        weights[[0, -1]] /= 2
        return alphas, weights
    weights = np.full(steps, 1.0 / steps)
    if method == "riemann_left":
        return np.linspace(0.0, 1.0 - 1.0 / steps, steps), weights
    if method == "riemann_right":
        return np.linspace(1.0 / steps, 1.0, steps), weights
    if method == "riemann_middle":
        return np.linspace(0.5 / steps, 1.0 - 0.5 / steps, steps), weights
    raise ValueError(f"unknown quadrature {method!r}; choose one of {', '.join(QUADRATURES)}")


def score_frame(scores: np.ndarray, layer_type: str, layer: int, **extra) -> pd.DataFrame:
    """The per-layer parquet schema: layer, layer_type, neuron, score (+ optional columns)."""
    frame = pd.DataFrame(
        {
            "layer": np.full(len(scores), layer, dtype=np.int64),
            "layer_type": layer_type,
            "neuron": np.arange(len(scores), dtype=np.int64),
            "score": np.asarray(scores, dtype=np.float64),
        }
    )
    for name, values in extra.items():
        frame[name] = values
    return frame


def random_scores(num_units: int, seed: int, layer_type: str, layer: int) -> np.ndarray:
    """Uniform scores, reproducible per (seed, layer type, layer) and independent of job order."""
    key = [seed, layer, *layer_type.encode()]
    return np.random.default_rng(key).random(num_units)


def pick_examples(frame: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """A seeded sample of `n` rows (all rows if fewer), in a stable order."""
    if n >= len(frame):
        return frame.reset_index(drop=True)
    return frame.sample(n=n, random_state=seed).sort_index().reset_index(drop=True)


@torch.no_grad()
def activation_scores(
    model: EsmClassifier,
    tokens: Sequence[torch.Tensor],
    layer_types: Sequence[str],
    device: torch.device,
    max_tokens: int = 8192,
    layers: Sequence[int] | None = None,
) -> dict[tuple[str, int], np.ndarray]:
    """Mean over examples of the mean |activation| over real residues, for every module asked."""
    model.eval()
    layers = range(model.num_layers) if layers is None else layers
    sums = {
        (lt, layer): torch.zeros(units_of(model.encoder, lt), dtype=torch.float64)
        for lt in layer_types
        for layer in layers
    }
    captured: dict[tuple[str, int], torch.Tensor] = {}

    def make_hook(key):
        def hook(module, inputs, output):
            # clone: fair-esm scales q_proj's output in place right after this hook.
            captured[key] = output.detach().clone()

        return hook

    handles = [
        get_module(model.encoder, lt, layer).register_forward_hook(make_hook((lt, layer)))
        for lt, layer in sums
    ]
    try:
        for _, batch in iter_batches(tokens, model.encoder.padding_idx, max_tokens):
            batch = batch.to(device)
            model(batch)
            mask = model.residue_mask(batch).T.unsqueeze(-1).to(torch.float64)  # (T, B, 1)
            n_res = mask.sum(0)  # (B, 1)
            for key, out in captured.items():
                per_example = (out.abs().to(torch.float64) * mask).sum(0) / n_res  # (B, units)
                sums[key] += per_example.sum(0).cpu()
    finally:
        for h in handles:
            h.remove()
    return {key: (total / len(tokens)).numpy() for key, total in sums.items()}


@dataclass
class IntegratedGradientsResult:
    scores: dict[int, np.ndarray]  # layer -> mean IG over examples, per unit
    gaps: pd.DataFrame  # one row per (example, layer): f1, f0, sum_ig, gap


def integrated_gradients_scores(
    model: EsmClassifier,
    tokens: Sequence[torch.Tensor],
    labels: Sequence[int],
    layer_type: str,
    layers: Sequence[int],
    steps: int = 20,
    method: str = "gausslegendre",
    device: torch.device | str = "cpu",
) -> IntegratedGradientsResult:
    """Exact IG of the true-class probability w.r.t. each module of `layer_type` in `layers`.

    One example at a time; its interpolation steps form the batch. The network below layer layer
    does not depend on alpha, so its output is computed once per example (prefix caching) and
    only layers layer.. run with gradients. Two extra rows (alpha 0 and 1) give F(0) and F(1).
    """
    model.eval()
    device = torch.device(device)
    alphas_np, weights_np = quadrature(method, steps)
    alphas = torch.tensor([*alphas_np, 0.0, 1.0], dtype=torch.float32, device=device)
    weights = torch.tensor([*weights_np, 0.0, 0.0], dtype=torch.float64, device=device)
    n_rows = len(alphas)
    requires_grad = [p.requires_grad for p in model.parameters()]
    model.requires_grad_(False)

    totals = {
        layer: torch.zeros(units_of(model.encoder, layer_type), dtype=torch.float64)
        for layer in layers
    }
    gap_rows = []
    state: dict[str, torch.Tensor] = {}

    def scale_hook(module, inputs, output):
        # output (T, n_rows, units): every row is the same activation a; row k becomes alpha_k * a.
        state["activation"] = output[:, 0].detach().clone()
        scaled = (output.detach() * alphas.view(1, -1, 1)).requires_grad_(True)
        state["scaled"] = scaled
        return scaled.clone()  # fair-esm edits q in place; the gradient must reach `scaled` itself

    try:
        for example, (tok, label) in enumerate(zip(tokens, labels, strict=True)):
            batch = tok.unsqueeze(0).to(device)
            with torch.no_grad():
                x, padding_mask = model.embed(batch)
                prefix = {0: x}
                for layer in range(max(layers)):
                    prefix[layer + 1] = model.run_layers(
                        prefix[layer], padding_mask, layer, layer + 1
                    )
            for layer in layers:
                x_l = prefix[layer].clone().expand(-1, n_rows, -1).contiguous()
                handle = get_module(model.encoder, layer_type, layer).register_forward_hook(
                    scale_hook
                )
                try:
                    with torch.enable_grad():
                        logits = model.classify(
                            model.run_layers(x_l, None, layer), batch.expand(n_rows, -1)
                        )
                        prob = torch.softmax(logits.float(), dim=-1)[:, int(label)]  # (n_rows,)
                        (grad,) = torch.autograd.grad(prob.sum(), state["scaled"])
                finally:
                    handle.remove()
                # integral of dF/da over alpha per (token, unit), times a, summed over tokens
                integral = torch.einsum("tku,k->tu", grad.to(torch.float64), weights)
                ig = (state["activation"].to(torch.float64) * integral).sum(0).cpu()
                totals[layer] += ig
                f0, f1 = float(prob[-2].detach()), float(prob[-1].detach())
                sum_ig = float(ig.sum())
                gap_rows.append(
                    {
                        "example": example,
                        "layer": layer,
                        "f0": f0,
                        "f1": f1,
                        "sum_ig": sum_ig,
                        "gap": sum_ig - (f1 - f0),
                    }
                )
    finally:
        for p, flag in zip(model.parameters(), requires_grad, strict=True):
            p.requires_grad_(flag)
    scores = {layer: (total / len(tokens)).numpy() for layer, total in totals.items()}
    return IntegratedGradientsResult(scores=scores, gaps=pd.DataFrame(gap_rows))


def gap_summary(gaps: pd.DataFrame) -> dict:
    """Completeness gap summary for one module: mean, mean |gap|, max |gap|, relative to |F1-F0|."""
    delta = (gaps["f1"] - gaps["f0"]).abs()
    return {
        "n_examples": int(len(gaps)),
        "gap_mean": float(gaps["gap"].mean()),
        "gap_mean_abs": float(gaps["gap"].abs().mean()),
        "gap_max_abs": float(gaps["gap"].abs().max()),
        "delta_mean_abs": float(delta.mean()),
    }
