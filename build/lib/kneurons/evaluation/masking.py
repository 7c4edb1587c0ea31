"""Ablating units with forward hooks (weights untouched): the masks of a selection.

Vocabulary (`kneurons.vocab`; README, "Masking options"): which units are selected is decided
once, in `kneurons.selection.ranking`; here
- direction `keep` keeps the selected units and ablates the rest; `remove` ablates the
  selected units and keeps the rest. The two masks partition the units.
- mode `zero` replaces an ablated unit's output by 0 (equal to zeroing its weight row and bias,
  the reference study's choice); `mean` replaces it by its mean over training residues.

For `ffn_in` the unit is ablated before the GELU: GELU(0) = 0, so zeroing stays zero after it; a
mean-ablated unit passes GELU(mean pre-activation), not the mean post-activation.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

import numpy as np
import pandas as pd
import torch

from kneurons.model.batching import iter_batches
from kneurons.model.classifier import EsmClassifier, get_module, units_of
from kneurons.model.hooks import captured_outputs, forward_hooks
from kneurons.vocab import DIRECTIONS, UnitKey


def unit_masks(selection: pd.DataFrame, direction: str = "keep") -> dict[UnitKey, torch.Tensor]:
    """(layer type, layer) -> float mask (units,): 1 = unit runs normally, 0 = ablated.

    keep: the selected units run; remove: the selected units are ablated. Every unit of the
    selection appears in exactly one of the two directions' "runs" sets.
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"unknown direction {direction!r}; choose keep or remove")
    runs = selection["selected"].to_numpy(dtype=bool)
    if direction == "remove":
        runs = ~runs
    frame = selection.assign(_runs=runs)
    masks = {}
    for (layer_type, layer), rows in frame.groupby(["layer_type", "layer"], sort=False):
        mask = np.zeros(int(rows["neuron"].max()) + 1, dtype=np.float32)
        if len(rows) != len(mask):
            raise ValueError(f"{layer_type} layer {layer}: scores do not cover every unit")
        mask[rows["neuron"].to_numpy()] = rows["_runs"].to_numpy(dtype=np.float32)
        masks[(str(layer_type), int(layer))] = torch.from_numpy(mask)
    return masks


def mask_fingerprint(masks: Mapping[UnitKey, torch.Tensor]) -> list:
    """What a mask set does, as plain data for a store key (`kneurons.store`): the modules it
    ablates anything in, each with its mask's bits. A module whose mask is all ones is left out,
    as `ablated` leaves it alone."""
    out = []
    for (layer_type, layer), mask in sorted(masks.items()):
        values = mask.detach().cpu().numpy()
        if not np.isin(values, (0.0, 1.0)).all():
            raise ValueError(f"{layer_type} layer {layer}: a mask of 0s and 1s expected")
        bits = values != 0
        if bits.all():
            continue
        out.append([layer_type, int(layer), len(bits), np.packbits(bits).tobytes()])
    return out


@contextmanager
def ablated(
    model: EsmClassifier,
    masks: Mapping[UnitKey, torch.Tensor],
    means: Mapping[UnitKey, torch.Tensor] | None = None,
) -> Iterator[EsmClassifier]:
    """Within the block, units with mask 0 output 0 (no `means`) or their mean activation.

    One forward hook per module that ablates anything; a module whose mask is all ones gets no
    hook. Under no_grad the module output is edited in place (no extra tensor per module).
    """
    hooks = {}
    for (layer_type, layer), mask in masks.items():
        if bool(mask.all()):
            continue
        weight = get_module(model.encoder, layer_type, layer).weight
        mask = mask.to(device=weight.device, dtype=weight.dtype)
        fill = None
        if means is not None:
            mean = means[(layer_type, layer)].to(device=mask.device, dtype=mask.dtype)
            fill = (1.0 - mask) * mean

        def hook(_module, _inputs, output, mask=mask, fill=fill):
            if output.requires_grad and torch.is_grad_enabled():
                return output * mask if fill is None else torch.addcmul(fill, output, mask)
            if fill is None:
                return output.mul_(mask)
            return torch.addcmul(fill, output, mask, out=output)  # one pass, not mul_ + add_

        hooks[(layer_type, layer)] = hook
    with forward_hooks(model, hooks):
        yield model


@torch.no_grad()
def mean_activations(
    model: EsmClassifier,
    tokens: Sequence[torch.Tensor],
    layer_types: Sequence[str],
    device: torch.device,
    max_tokens: int = 16384,
) -> dict[UnitKey, np.ndarray]:
    """Signed mean of every unit's output over all real residues of `tokens` (token-weighted).

    BOS, EOS and padding are left out of the mean; mean ablation then writes this value at
    every position, those included.
    """
    model.eval()
    sums = {
        (lt, layer): torch.zeros(units_of(model.encoder, lt), dtype=torch.float64)
        for lt in layer_types
        for layer in range(model.num_layers)
    }
    n_residues = 0
    with captured_outputs(model, sums) as captured:
        for _, batch in iter_batches(tokens, model.encoder.padding_idx, max_tokens):
            batch = batch.to(device)
            model(batch)
            mask = model.residue_mask(batch).T.unsqueeze(-1).to(torch.float64)  # (T, B, 1)
            n_residues += int(mask.sum())
            for key, out in captured.items():
                sums[key] += (out.to(torch.float64) * mask).sum((0, 1)).cpu()
    if n_residues == 0:
        raise ValueError("no residues to average activations over")
    return {key: (total / n_residues).numpy() for key, total in sums.items()}


def read_mean_activations(paths) -> dict[UnitKey, torch.Tensor]:
    """The mean activation of every unit (files of rule mean_activations), by module, in unit
    order: the fill of mean ablation."""
    import pandas as pd

    frame = pd.concat([pd.read_parquet(p) for p in paths], ignore_index=True)
    return {
        (lt, int(layer)): torch.tensor(rows.sort_values("neuron")["mean"].to_numpy())
        for (lt, layer), rows in frame.groupby(["layer_type", "layer"])
    }
