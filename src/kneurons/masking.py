"""Selecting the top r% of neurons and silencing the rest with forward hooks (weights untouched).

Zeroing a unit's output equals zeroing its weight row and bias (the reference study's choice);
for `ffn_in` the unit is zeroed before the GELU, and GELU(0) = 0, so it is silent after it too.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pandas as pd
import torch

from kneurons.model import EsmClassifier, get_module


def num_kept(retention: float, total: int) -> int:
    """ceil(r/100 * N), never more than N; r is in (0, 100]."""
    if not 0 < retention <= 100:
        raise ValueError(f"retention must be in (0, 100], got {retention}")
    # round first so that e.g. 10% of 320 is 32, not 33 from 32.000000000000004
    return min(total, math.ceil(round(retention / 100 * total, 9)))


def select_top(scores: pd.DataFrame, retention: float) -> pd.DataFrame:
    """Mark the top ceil(r% * N) rows by score (ties: lower layer, then lower neuron, first).

    `scores` has columns layer, neuron, score over the whole selection scope (e.g. all layers of
    one layer type). Returns a copy with a boolean column `keep`.
    """
    if scores["score"].isna().any():
        raise ValueError("scores contain NaN; cannot rank neurons")
    ranked = scores.sort_values(
        ["score", "layer", "neuron"], ascending=[False, True, True], kind="mergesort"
    )
    k = num_kept(retention, len(scores))
    out = scores.copy()
    out["keep"] = False
    out.loc[ranked.index[:k], "keep"] = True
    return out


def keep_masks(selection: pd.DataFrame, num_units: int) -> dict[int, torch.Tensor]:
    """layer -> float mask (units,) with 1 for kept and 0 for silenced neurons."""
    masks = {}
    for layer, rows in selection.groupby("layer"):
        mask = np.zeros(num_units, dtype=np.float32)
        mask[rows.loc[rows["keep"], "neuron"].to_numpy()] = 1.0
        masks[int(layer)] = torch.from_numpy(mask)
    return masks


@contextmanager
def silenced(
    model: EsmClassifier, layer_type: str, masks: dict[int, torch.Tensor]
) -> Iterator[EsmClassifier]:
    """Within the block, the units of `layer_type` with mask 0 output zero."""
    handles = []
    for layer, mask in masks.items():
        module = get_module(model.encoder, layer_type, layer)
        mask = mask.to(device=module.weight.device, dtype=module.weight.dtype)

        def hook(_module, _inputs, output, mask=mask):
            return output * mask

        handles.append(module.register_forward_hook(hook))
    try:
        yield model
    finally:
        for h in handles:
            h.remove()
