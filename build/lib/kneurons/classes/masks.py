"""The masks of the class-specific targets (`kneurons.classes.rankings`): class c's top r% units of
one layer type multiplied by a factor, every other unit untouched.

A module's output is multiplied by its mask, so `kneurons.model.predict.predict_masked` evaluates
these masks exactly as it evaluates the 0/1 masks of `kneurons.evaluation.masking` (mode zero,
several masks per forward pass). Kept apart from `kneurons.evaluation.masking`, whose code the
masked evaluations' cache keys depend on.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import torch

from kneurons.evaluation.masking import mask_fingerprint, unit_masks
from kneurons.vocab import UnitKey


def scaled_masks(selection: pd.DataFrame, factor: float) -> dict[UnitKey, torch.Tensor]:
    """(layer type, layer) -> float mask (units,): `factor` at the selected units (column
    `selected`), 1 elsewhere. Factor 0 silences them as zero ablation does; 2 doubles them."""
    factor = float(factor)
    if not np.isfinite(factor) or factor < 0:
        raise ValueError(f"factor must be a finite number >= 0, got {factor}")
    runs = unit_masks(selection, "remove")  # 0 at the selected units, 1 elsewhere
    return {key: mask + (1.0 - mask) * factor for key, mask in runs.items()}


def scaled_fingerprint(masks: Mapping[UnitKey, torch.Tensor]) -> list:
    """What a scaled mask set does, as plain data for a store key (`kneurons.store`): 0/1 masks
    as `kneurons.evaluation.masking.mask_fingerprint` names them, other masks by their float32
    values. A module whose mask is all ones is left out (nothing is changed there), so the unmasked
    model is the empty list."""
    plain, scaled = {}, []
    for (layer_type, layer), mask in sorted(masks.items()):
        values = mask.detach().cpu().numpy().astype(np.float32)
        if not np.isfinite(values).all() or (values < 0).any():
            raise ValueError(f"{layer_type} layer {layer}: mask values must be finite and >= 0")
        if (values == 1.0).all():
            continue
        if np.isin(values, (0.0, 1.0)).all():
            plain[(layer_type, layer)] = mask
        else:
            scaled.append(["scaled", layer_type, int(layer), len(values), values.tobytes()])
    return mask_fingerprint(plain) + scaled


def class_probabilities(logits: torch.Tensor) -> np.ndarray:
    """Softmax probability of every class for each sequence, (N, C) float64."""
    return torch.softmax(logits.double(), dim=1).numpy()


def true_class_probability(logits: torch.Tensor, labels) -> np.ndarray:
    """Softmax probability of each sequence's true class, (N,) float64."""
    labels = np.asarray(labels, dtype=np.int64)
    return class_probabilities(logits)[np.arange(len(labels)), labels]


def per_sequence(logits: torch.Tensor, labels) -> dict:
    """The per-sequence columns of a CLASS_EVAL_FILE row under `logits`
    (`kneurons.classes.rankings`): the true class's probability, whether the prediction is
    right, the predicted class, and every class's probability flattened sequence by sequence
    (float32)."""
    labels = np.asarray(labels, dtype=np.int64)
    probs = class_probabilities(logits)
    predicted = logits.argmax(1).numpy()
    return {
        "true_prob": probs[np.arange(len(labels)), labels],
        "correct": predicted == labels,
        "predicted": predicted.astype(np.int16),
        "probs": probs.astype(np.float32).ravel(),
    }
