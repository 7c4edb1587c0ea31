"""Integrated gradients through forward hooks: the engine for units that the batch-first layers
(`kneurons.scoring.integrals`) do not hold, the latents of SAEs spliced into the model
(`kneurons.sae.splice`).

`hooked_panel_integrals` has the call and the result of `panel_integrals`, so the adaptive rule
(`kneurons.scoring.adaptive.refine_panels`), the accuracy policy, the completeness gaps, unit
masks and per-token values are the same for latents as for neurons. It runs fair-esm's own
forward (`EsmClassifier.forward`) with a forward hook on the scaled module: the module's output
a becomes the leaf a * (1 - m + m alpha) (one alpha per batch row), and one backward gives
dF/d(that leaf) for every row, so a task's value is a * m * sum_k w_k dF/da(alpha_k), summed over
tokens (or per token). What it does not do, and why it is slower than the engine: no prefix
caching (every row runs the whole network) and one module per pass (a leaf cuts the graph below
it, so rows of two modules cannot share a pass). One example per pass: no padding.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np
import torch

from kneurons.model.classifier import EsmClassifier
from kneurons.model.hooks import forward_hooks
from kneurons.progress import Progress
from kneurons.scoring.integrals import Integrals, Pair, Panel, _frozen, base_type
from kneurons.vocab import LATENT_TYPES, UnitKey

log = logging.getLogger(__name__)


def _probability(model: EsmClassifier, batch: torch.Tensor, label: int) -> torch.Tensor:
    logits = model(batch)
    return torch.softmax(logits.float(), dim=-1)[:, label]


def hooked_panel_integrals(
    model: EsmClassifier,
    tokens: Sequence[torch.Tensor],
    labels: Sequence[int],
    tasks: Sequence[tuple[Pair, Panel]],
    alphas: np.ndarray,
    weights: np.ndarray,
    device: torch.device | str = "cpu",
    max_tokens: int = 16384,
    *,
    masks: Mapping[UnitKey, torch.Tensor] | None = None,
    per_token: bool = False,
    progress_label: str = "integrated gradients",
    sum_units: bool = False,
) -> Integrals:
    """`kneurons.scoring.integrals.panel_integrals` through hooks (module docstring); a variant
    module (`kneurons.scoring.integrals.base_type`) hooks its layer type's module."""
    device = torch.device(device)
    masks = {m: v.to(device=device, dtype=torch.float32) for m, v in (masks or {}).items()}
    alphas = np.asarray(alphas, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64)
    wanted: dict[int, dict[UnitKey, list[Panel]]] = {}
    for (example, module), panel in tasks:
        wanted.setdefault(example, {}).setdefault(module, []).append(tuple(panel))
    progress = Progress(log, progress_label, len(tasks), "(example, module, panel) tasks")
    out = Integrals({}, {}, {})
    model.eval()
    with _frozen(model):
        for example in sorted(wanted):
            seq = tokens[example].to(device)[None, :]
            label = int(labels[example])
            with torch.no_grad():
                out.f1[example] = float(_probability(model, seq, label)[0])
            cap = max(1, max_tokens // seq.shape[1])
            for module, panels in wanted[example].items():
                # rows: per panel its nodes, then one row at the panel start (F(lo))
                rows, owner = [], []
                for p, (lo, hi) in enumerate(panels):
                    rows.extend(lo + (hi - lo) * alphas)
                    owner.extend((p, k) for k in range(len(alphas)))
                    rows.append(lo)
                    owner.append((p, None))
                sums = [None] * len(panels)
                for start in range(0, len(rows), cap):
                    chunk = slice(start, min(start + cap, len(rows)))
                    grads, probs, acts = _pass(
                        model, seq, label, module, masks.get(module), rows[chunk], device
                    )
                    for j, (p, k) in enumerate(owner[chunk]):
                        lo, hi = panels[p]
                        if k is None:
                            out.f0[((example, module), (lo, hi))] = float(probs[j])
                            continue
                        term = (hi - lo) * weights[k] * grads[:, j]  # (T, units)
                        sums[p] = term if sums[p] is None else sums[p] + term
                mask = masks.get(module)
                for p, (lo, hi) in enumerate(panels):
                    values = acts * sums[p]
                    if mask is not None:
                        values = values * mask.double().cpu()
                    values = values.sum(-1) if sum_units else values
                    values = values if per_token else values.sum(0)
                    out.values[((example, module), (lo, hi))] = values.numpy()
                    progress.update(1)
    progress.done()
    return out


def _pass(model, seq, label, module, mask, alphas, device):
    """One pass of len(alphas) copies of `seq` with `module` scaled by alpha (row by row):
    dF/d(scaled output) (T, rows, units) and F per row (float64, CPU), and the unscaled output
    of the module (T, units)."""
    n = len(alphas)
    alpha = torch.tensor(alphas, dtype=torch.float32, device=device)[:, None]  # (rows, 1)
    kept = {}

    def hook(_module, _inputs, output):
        a = output.detach()
        scale = alpha if mask is None else 1.0 - mask + mask * alpha  # (rows, units)
        leaf = (a * scale.unsqueeze(0)).requires_grad_(True)
        kept["a"], kept["leaf"] = a, leaf
        return leaf

    hooked = (base_type(module[0]), module[1])
    with forward_hooks(model, {hooked: hook}), torch.enable_grad():
        probs = _probability(model, seq.expand(n, -1), label)
        probs.sum().backward()
    grads = kept["leaf"].grad.double().cpu()
    return grads, probs.detach().double().cpu().numpy(), kept["a"][:, 0].double().cpu()


def split_panel_integrals(
    model, tokens, labels, tasks, alphas, weights, device, max_tokens, autocast=False, *,
    masks=None, per_token=False, progress_label="integrated gradients", share_query_key=True,
    sum_units=False,
) -> Integrals:  # fmt: skip
    """`panel_integrals` for any layer type: neuron modules through the batch-first engine,
    latent modules (`vocab.LATENT_TYPES`, variants included) through hooks
    (`hooked_panel_integrals`)."""
    from kneurons.scoring.integrals import panel_integrals

    latent = [t for t in tasks if base_type(t[0][1][0]) in LATENT_TYPES]
    neuron = [t for t in tasks if base_type(t[0][1][0]) not in LATENT_TYPES]
    out = Integrals({}, {}, {})
    if neuron:
        part = panel_integrals(
            model, tokens, labels, neuron, alphas, weights, device, max_tokens, autocast,
            masks=masks, per_token=per_token, progress_label=progress_label,
            share_query_key=share_query_key, sum_units=sum_units,
        )  # fmt: skip
        out.values.update(part.values), out.f0.update(part.f0), out.f1.update(part.f1)
    if latent:
        part = hooked_panel_integrals(
            model, tokens, labels, latent, alphas, weights, device, max_tokens, masks=masks,
            per_token=per_token, progress_label=f"{progress_label} (SAE latents)",
            sum_units=sum_units,
        )  # fmt: skip
        out.values.update(part.values), out.f0.update(part.f0)
        for example, f1 in part.f1.items():
            out.f1.setdefault(example, f1)
    return out
