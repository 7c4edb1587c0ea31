"""Selecting the top r% of neurons and ablating units with forward hooks (weights untouched).

Vocabulary (README, "Masking options"):
- pool: the units ranked together. Scope `layer_type` ranks all layers of one layer type;
  `layer` ranks each (layer type, layer) on its own; a group (`qkv`, `all`) ranks several layer
  types together after putting their scores on one scale (`group_ranking`).
- selected: the top ceil(r% x pool size) units of the pool, the "knowledge neurons".
- direction `keep` keeps the selected units and ablates the rest; `remove` ablates the
  selected units and keeps the rest. The two masks partition the units.
- mode `zero` replaces an ablated unit's output by 0 (equal to zeroing its weight row and bias,
  the reference study's choice); `mean` replaces it by its mean over training residues.

For `ffn_in` the unit is ablated before the GELU: GELU(0) = 0, so zeroing stays zero after it; a
mean-ablated unit passes GELU(mean pre-activation), not the mean post-activation.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

import numpy as np
import pandas as pd
import torch

from kneurons.batching import iter_batches
from kneurons.model import LAYER_TYPES, EsmClassifier, get_module, units_of

SCOPES = ("layer_type", "layer", "qkv", "all")
GROUPS = ("qkv", "all")
GROUP_MEMBERS = {"qkv": ("query", "key", "value")}  # `all`: every layer type scored
GROUP_RANKINGS = ("zscore", "percentile", "raw")
MODES = ("zero", "mean")
DIRECTIONS = ("keep", "remove")

UnitKey = tuple[str, int]  # (layer type, layer)


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
    out = scores.copy()
    out["keep"] = _top_mask(scores, "score", retention)
    return out


def _type_order(layer_types: pd.Series) -> pd.Series:
    order = {lt: i for i, lt in enumerate(LAYER_TYPES)}
    return layer_types.map(lambda lt: order.get(lt, len(order)))


def _top_mask(frame: pd.DataFrame, column: str, retention: float) -> np.ndarray:
    """Boolean array: the top ceil(r% N) rows by `column`; ties by layer type, layer, neuron."""
    if frame[column].isna().any():
        raise ValueError("scores contain NaN; cannot rank neurons")
    keys = pd.DataFrame(
        {
            "value": frame[column].to_numpy(),
            "type": _type_order(frame["layer_type"]).to_numpy() if "layer_type" in frame else 0,
            "layer": frame["layer"].to_numpy(),
            "neuron": frame["neuron"].to_numpy(),
        }
    )
    ranked = keys.sort_values(
        ["value", "type", "layer", "neuron"],
        ascending=[False, True, True, True],
        kind="mergesort",
    )
    mask = np.zeros(len(frame), dtype=bool)
    mask[ranked.index[: num_kept(retention, len(frame))]] = True
    return mask


def group_scale(scores: pd.DataFrame, ranking: str) -> pd.Series:
    """Scores of several layer types on one scale, so that they can be ranked together.

    zscore: (score - mean) / std within the layer type, over all its layers (std 0 -> 0), so a
    type wins units where its upper tail stands out from its own spread; percentile: the rank
    within the layer type as a fraction (1 = best), so every type gets r% (no cross-type
    claim is possible); raw: the scores as they are (IG magnitudes differ across types, see
    DESIGN.md, so raw favours the types with large attributions).
    """
    if ranking == "raw":
        return scores["score"].astype(float)
    by_type = scores.groupby("layer_type", sort=False)["score"]
    if ranking == "zscore":
        mean = by_type.transform("mean")
        std = by_type.transform(lambda s: s.std(ddof=0))
        z = (scores["score"] - mean) / std.where(std > 0)
        return z.fillna(0.0).astype(float)
    if ranking == "percentile":
        out = pd.Series(np.nan, index=scores.index)
        for _, rows in scores.groupby("layer_type", sort=False):
            order = rows.sort_values(
                ["score", "layer", "neuron"], ascending=[False, True, True], kind="mergesort"
            ).index
            out[order] = 1.0 - np.arange(len(order)) / len(order)
        return out
    choices = ", ".join(GROUP_RANKINGS)
    raise ValueError(f"unknown group ranking {ranking!r}; choose one of {choices}")


def select(
    scores: pd.DataFrame,
    retention: float,
    scope: str = "layer_type",
    group_ranking: str = "zscore",
) -> pd.DataFrame:
    """Mark the top r% units of the pool(s) that `scope` defines (column `selected`).

    `scores` has columns layer_type, layer, neuron, score: all units that take part (one layer
    type for scopes layer_type and layer; the group's types for qkv and all).
    """
    out = scores.reset_index(drop=True).copy()
    types = list(pd.unique(out["layer_type"]))
    if scope == "layer_type":
        if len(types) != 1:
            raise ValueError(f"scope layer_type ranks one layer type, got {types}")
        out["selected"] = _top_mask(out, "score", retention)
    elif scope == "layer":
        out["selected"] = False
        for _, rows in out.groupby(["layer_type", "layer"], sort=False):
            out.loc[rows.index, "selected"] = _top_mask(
                rows.reset_index(drop=True), "score", retention
            )
    elif scope in GROUPS:
        out["rank_score"] = group_scale(out, group_ranking)
        out["selected"] = _top_mask(out, "rank_score", retention)
        out = out.drop(columns="rank_score")
    else:
        raise ValueError(f"unknown scope {scope!r}; choose one of {', '.join(SCOPES)}")
    out["selected"] = out["selected"].astype(bool)
    return out


ALL_CLASSES = -1  # `label` of the all-class rows of a score file (kneurons.scoring)


def _is_all_class(label: pd.Series) -> pd.Series:
    return label.isna() | (pd.to_numeric(label, errors="coerce") == ALL_CLASSES)


def all_class_rows(scores: pd.DataFrame) -> pd.DataFrame:
    """The all-class scores of a score file: files with per-class rows (column `label`, the
    class index) hold one all-class row per unit (label -1), which is what selection ranks."""
    if "label" not in scores.columns:
        return scores
    return scores[_is_all_class(scores["label"])].drop(columns="label").reset_index(drop=True)


def per_class_rows(scores: pd.DataFrame) -> pd.DataFrame:
    """The per-class rows (column `label` = class index); empty when the file has none."""
    if "label" not in scores.columns:
        return scores.iloc[0:0].assign(label=pd.Series(dtype="int64"))
    rows = scores[~_is_all_class(scores["label"])].copy()
    rows["label"] = rows["label"].astype("int64")
    return rows.reset_index(drop=True)


def group_layer_types(scope_or_type: str, scored: Sequence[str]) -> list[str]:
    """The layer types a target covers: a layer type itself, or a group's members."""
    if scope_or_type == "all":
        return list(scored)
    if scope_or_type in GROUP_MEMBERS:
        return list(GROUP_MEMBERS[scope_or_type])
    return [scope_or_type]


def keep_masks(selection: pd.DataFrame, num_units: int) -> dict[int, torch.Tensor]:
    """layer -> float mask (units,) with 1 for kept and 0 for silenced neurons (column keep)."""
    masks = {}
    for layer, rows in selection.groupby("layer"):
        mask = np.zeros(num_units, dtype=np.float32)
        mask[rows.loc[rows["keep"], "neuron"].to_numpy()] = 1.0
        masks[int(layer)] = torch.from_numpy(mask)
    return masks


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
    handles = []
    for (layer_type, layer), mask in masks.items():
        if bool(mask.all()):
            continue
        module = get_module(model.encoder, layer_type, layer)
        mask = mask.to(device=module.weight.device, dtype=module.weight.dtype)
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

        handles.append(module.register_forward_hook(hook))
    try:
        yield model
    finally:
        for h in handles:
            h.remove()


@contextmanager
def silenced(
    model: EsmClassifier, layer_type: str, masks: dict[int, torch.Tensor]
) -> Iterator[EsmClassifier]:
    """Within the block, the units of `layer_type` with mask 0 output zero."""
    with ablated(model, {(layer_type, layer): m for layer, m in masks.items()}) as out:
        yield out


@torch.no_grad()
def mean_activations(
    model: EsmClassifier,
    tokens: Sequence[torch.Tensor],
    layer_types: Sequence[str],
    device: torch.device,
    max_tokens: int = 8192,
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
    captured: dict[UnitKey, torch.Tensor] = {}

    def make_hook(key):
        def hook(_module, _inputs, output):
            # clone: fair-esm scales q_proj's output in place right after this hook.
            captured[key] = output.detach().clone()

        return hook

    handles = [
        get_module(model.encoder, lt, layer).register_forward_hook(make_hook((lt, layer)))
        for lt, layer in sums
    ]
    n_residues = 0
    try:
        for _, batch in iter_batches(tokens, model.encoder.padding_idx, max_tokens):
            batch = batch.to(device)
            model(batch)
            mask = model.residue_mask(batch).T.unsqueeze(-1).to(torch.float64)  # (T, B, 1)
            n_residues += int(mask.sum())
            for key, out in captured.items():
                sums[key] += (out.to(torch.float64) * mask).sum((0, 1)).cpu()
    finally:
        for h in handles:
            h.remove()
    if n_residues == 0:
        raise ValueError("no residues to average activations over")
    return {key: (total / n_residues).numpy() for key, total in sums.items()}
