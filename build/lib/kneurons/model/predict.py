"""Predicting labels in length-sorted batches, and the classification metrics used everywhere."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from kneurons.model.batching import iter_batches
from kneurons.model.classifier import EsmClassifier

Batches = list[tuple[list[int], torch.Tensor]]


def prepare_batches(
    tokens: Sequence[torch.Tensor], padding_idx: int, max_tokens: int = 8192
) -> Batches:
    """Length-sorted, padded batches of `tokens`, built once and reused for every mask."""
    return list(iter_batches(tokens, padding_idx, max_tokens))


@torch.no_grad()
def predict_logits(
    model: EsmClassifier,
    tokens: Sequence[torch.Tensor] | None,
    device: torch.device,
    max_tokens: int = 8192,
    batches: Batches | None = None,
) -> torch.Tensor:
    """Logits (N, C) in the order of `tokens` (or of the examples that `batches` hold)."""
    model.eval()
    if batches is None:
        batches = prepare_batches(tokens, model.encoder.padding_idx, max_tokens)
    n = sum(len(idx) for idx, _ in batches)
    out = torch.empty(n, model.num_classes)
    for idx, batch in batches:
        out[idx] = model(batch.to(device)).float().cpu()
    return out


def classification_metrics(y_true, y_pred, classes: Sequence[str]) -> dict:
    """Accuracy, macro-F1 over all classes, and per-class recall ("accuracy within the class")."""
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    # F1 per class from the confusion counts; a class never predicted nor present scores 0
    labels = np.arange(len(classes))
    tp = np.array([np.sum((y_true == c) & (y_pred == c)) for c in labels], dtype=np.float64)
    fp = np.array([np.sum((y_true != c) & (y_pred == c)) for c in labels], dtype=np.float64)
    fn = np.array([np.sum((y_true == c) & (y_pred != c)) for c in labels], dtype=np.float64)
    denom = 2 * tp + fp + fn
    per_class_f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    per_class = {}
    for i, name in enumerate(classes):
        in_class = y_true == i
        per_class[name] = {
            "n": int(in_class.sum()),
            "accuracy": float((y_pred[in_class] == i).mean()) if in_class.any() else float("nan"),
            "f1": float(per_class_f1[i]),
        }
    return {
        "n": int(len(y_true)),
        "accuracy": float((y_true == y_pred).mean()) if len(y_true) else float("nan"),
        "macro_f1": float(per_class_f1.mean()) if len(classes) else float("nan"),
        "per_class": per_class,
    }
