"""The masked model's predictions on the test set: several masks per forward pass
(`predict_masked`), and one evaluation row per mask (`evaluation_frame`).

A model without hooks (no SAE spliced in, nothing else hooked) runs its layers batch first with
fused attention (`kneurons.model.transformer.BatchFirstLayers`, the IG engine's layers), the
masks applied to the module outputs inside the layer; on a CPU this forward is 1.7x faster
per mask than fair-esm's with hooks at 256 residues (benchmarks/bench_evaluation.py) and its
logits agree with it to float rounding (tests/test_evaluate.py). Otherwise fair-esm's layers run
with the masks as forward hooks."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

import numpy as np
import torch

from kneurons.model.classifier import EsmClassifier, get_module
from kneurons.model.hooks import forward_hooks
from kneurons.model.predict import Batches, classification_metrics
from kneurons.model.transformer import BatchFirstLayers, key_mask
from kneurons.progress import Progress
from kneurons.vocab import UnitKey


@torch.no_grad()
def predict_masked(
    model: EsmClassifier,
    batches: Batches,
    masks: Sequence[Mapping[UnitKey, torch.Tensor]],
    device: torch.device,
    max_tokens: int = 16384,
    means: Mapping[UnitKey, torch.Tensor] | None = None,
    progress=None,
) -> list[torch.Tensor]:
    """Logits (N, C) of the model under each of `masks` (`kneurons.evaluation.masking.unit_masks`),
    several
    masks per forward pass: the mask is a batch dimension.

    A test batch (B, T) is repeated c times, c = max_tokens // (B * T) (at least 1), and copy j
    runs under mask j: every ablated module's output (T, c * B, units) is multiplied by the c
    masks, each repeated over its B rows (mode `mean`: an ablated unit gets its mean instead, as
    `kneurons.evaluation.masking.ablated` does). Rows never interact, so each copy computes what a
    pass
    with its mask alone computes (tests/test_evaluate.py checks the logits are identical); what
    is shared is the Python and kernel-launch overhead of a pass, which dominates small batches
    and GPUs. `progress` (`kneurons.progress.Progress`, optional) counts masks x batches.
    """
    model.eval()
    n = sum(len(idx) for idx, _ in batches)
    outs = [torch.empty(n, model.num_classes) for _ in masks]
    if not masks:
        return outs
    stacks, fills = {}, {}
    # a module is left alone only where every mask is 1 there (a mask may scale units up too:
    # kneurons.classes.masks), so "all nonzero" is not "untouched"
    modules = sorted({key for mask in masks for key, m in mask.items() if not bool((m == 1).all())})
    for key in modules:
        weight = get_module(model.encoder, *key).weight
        stack = torch.ones(len(masks), weight.shape[0], dtype=weight.dtype, device=weight.device)
        for i, mask in enumerate(masks):
            if key in mask:
                stack[i] = mask[key].to(device=weight.device, dtype=weight.dtype)
        stacks[key] = stack
        if means is not None:
            mean = means[key].to(device=weight.device, dtype=weight.dtype)
            fills[key] = (1.0 - stack) * mean

    net = None if _hooked(model) else BatchFirstLayers(model.encoder)
    # batch first: a scale (copies * B, 1, units); fair-esm's (T, B, E): (1, copies * B, units)
    axis = 1 if net is not None else 0
    for idx, batch in batches:
        batch = batch.to(device)
        rows = batch.shape[0]
        per_pass = max(1, max_tokens // batch.numel())
        for start in range(0, len(masks), per_pass):
            chunk = slice(start, min(start + per_pass, len(masks)))
            copies = chunk.stop - chunk.start
            edits = {}
            for key in modules:
                stack = stacks[key][chunk]
                if bool((stack == 1).all()):
                    continue  # no mask of this pass changes the module
                scale = stack.repeat_interleave(rows, 0).unsqueeze(axis)
                fill = None
                if fills:
                    fill = fills[key][chunk].repeat_interleave(rows, 0).unsqueeze(axis)
                edits[key] = (scale, fill)
            tokens = batch.repeat(copies, 1)
            if net is not None:
                logits = _forward_edited(model, net, tokens, edits).float().cpu()
            else:
                hooks = {key: _stacked_hook(*edit) for key, edit in edits.items()}
                with forward_hooks(model, hooks):
                    logits = model(tokens).float().cpu()
            for j, i in enumerate(range(chunk.start, chunk.stop)):
                outs[i][idx] = logits[j * rows : (j + 1) * rows]
            if progress is not None:
                progress.update(copies)
    return outs


def stored_logits(
    store,
    masks: Mapping[str, Mapping[UnitKey, torch.Tensor]],
    shape: tuple[int, int],
    model: EsmClassifier,
    batches: Batches,
    device: torch.device,
    max_tokens: int,
    means: Mapping[UnitKey, torch.Tensor] | None = None,
    log=None,
    what: str = "masked evaluation",
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """The logits (N, C) of every mask in `masks` (store key -> mask): from the store
    (`kneurons.store.Store`, entries checked on load) where it holds them, the rest computed
    several masks per pass (`predict_masked`) and saved. The loop of every masked-evaluation job
    (plain and class-specific). Returns the logits by key and the keys that were computed."""
    logits, todo = {}, {}
    for key, mask in masks.items():
        cached = store.load_array(key, shape)
        if cached is None:
            todo[key] = mask
        else:
            logits[key] = torch.from_numpy(cached)
    keys = list(todo)
    progress = Progress(log, what, len(keys) * len(batches), unit="mask x batch")
    computed = predict_masked(
        model,
        batches,
        [todo[key] for key in keys],
        device,
        max_tokens=max_tokens,
        means=means,
        progress=progress,
    )
    if keys:
        progress.done()
    for key, values in zip(keys, computed, strict=True):
        store.save_array(key, values.numpy())
        logits[key] = values
    return logits, keys


def _hooked(model: EsmClassifier) -> bool:
    """Whether any module of `model` has forward hooks (an SAE splice, a caller's hooks): its
    forward is then fair-esm's own, which runs them."""
    return any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


def _forward_edited(model: EsmClassifier, net: BatchFirstLayers, tokens, edits) -> torch.Tensor:
    """Logits (B, C) of `tokens` through the batch-first layers, module outputs scaled (and
    filled): `edits` maps (layer type, layer) to (scale, fill), as `_stacked_hook` applies them."""
    by_layer: dict[int, dict] = {}
    for (layer_type, layer), (scale, fill) in edits.items():
        by_layer.setdefault(layer, {})[layer_type] = _stacked_edit(scale, fill)
    x, padding = model.embed(tokens)
    x = x.transpose(0, 1).contiguous()
    mask = key_mask(padding)
    for index in range(len(net)):
        x = net.forward(index, x, mask, by_layer.get(index))
    return model.classify(x.transpose(0, 1), tokens)


def _stacked_edit(scale: torch.Tensor, fill: torch.Tensor | None):
    def edit(output):
        return output * scale if fill is None else torch.addcmul(fill, output, scale)

    return edit


def _stacked_hook(scale: torch.Tensor, fill: torch.Tensor | None):
    def hook(_module, _inputs, output):
        if fill is None:
            return output.mul_(scale)
        return torch.addcmul(fill, output, scale, out=output)

    return hook


def evaluation_record(y_true, logits: torch.Tensor, classes: Sequence[str]) -> dict:
    """The metric columns of one evaluation row, with the per-sequence vectors that the
    summary's bootstrap needs: `correct` (bool) and `predicted` (label index), in test order."""
    y_true = np.asarray(y_true)
    predicted = logits.argmax(1).numpy()
    metrics = classification_metrics(y_true, predicted, classes)
    return {
        "n": metrics["n"],
        "accuracy": metrics["accuracy"],
        "macro_f1": metrics["macro_f1"],
        "per_class_accuracy": json.dumps(
            {c: v["accuracy"] for c, v in metrics["per_class"].items()}
        ),
        "correct": (predicted == y_true).tolist(),
        "predicted": predicted.astype(np.int64).tolist(),
    }


def evaluation_frame(row: dict, y_true, logits: torch.Tensor, classes: Sequence[str]):
    """One evaluation row (`vocab.EVAL_KEY_COLUMNS`, counts) with its metrics, typed for parquet."""
    import pandas as pd

    frame = pd.DataFrame([{**row, **evaluation_record(y_true, logits, classes)}])
    frame["seed"] = frame["seed"].astype("Int64")
    frame["group_ranking"] = frame["group_ranking"].astype("string")
    return frame
