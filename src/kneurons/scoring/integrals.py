"""The IG engine: integrals of dF/da along the scaling path of a module, exact and batched.

`gradient_integrals` (the whole path [0, 1]) and `panel_integrals` (parts of it, for the adaptive
rule of `kneurons.scoring.adaptive`) serve the scoring methods (`kneurons.scoring.methods`) and the
residue maps (`kneurons.residues.maps`): a module may scale only a subset of its units (a unit
mask) and keep the token axis. How it stays exact and fast (docs/methods.md, "The IG engine"):
- the network below the scaled module does not depend on alpha: it runs once per example, without
  gradients (prefix caching, down to the module inside its layer: for `ffn_in` even the layer's
  attention block is cached), and only the rest of layer l and the layers above run per step;
- a batch row is one (example, module, alpha): the steps of several examples and several modules
  of one layer share a batch (length-bucketed under a token budget; rows never interact, and
  padding is masked out of attention, pooling and the sum over tokens);
- parameters are frozen and the backward stops at the scaled module;
- a layer's query and key share their rows: attention scores are bilinear in the two (rotary
  embedding is linear), so scaling the query by alpha gives the same F as scaling the key, and
  one backward at (alpha q, k) gives both paths' gradients: dF/dq there is the query path's,
  and dF/dk there is alpha times the key path's (`_merge_query_key`; nodes > 0 only, no unit
  masks), halving those rows;
- one module may come under several unit masks at once (a variant, layer type `query#2`: the
  residue maps of several selections, `kneurons.residues.maps`): a variant's rows resume from
  its module's cache like the module's own, with its own mask, and share batches with the rest;
- the layers run batch first with fused attention (`kneurons.model.transformer`, checked against
  fair-esm's in `tests/test_transformer.py`); `tests/test_scoring.py` checks IG against captum.
`torch.inference_mode` is not used: fair-esm's rotary module caches cos/sin tables, and an
inference tensor cached there breaks a later autograd pass; `no_grad` is enough.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

from kneurons.model.batching import length_batches, pad
from kneurons.model.classifier import EsmClassifier
from kneurons.model.transformer import BatchFirstLayers, key_mask
from kneurons.progress import Progress
from kneurons.vocab import UnitKey

log = logging.getLogger(__name__)  # progress lines (`kneurons.progress`)


@dataclass
class _Batch:
    """Examples sharing a padded batch, with the input of every layer their rows start from."""

    examples: list[int]  # indices into the caller's tokens
    tokens: torch.Tensor  # (B, T)
    padding: torch.Tensor | None  # (B, T) True at padding
    inputs: dict[int, torch.Tensor]  # layer -> its input x (B, T, E)
    f1: torch.Tensor  # (B,) probability of the true class, unmodified network
    labels: torch.Tensor  # (B,)


Task = tuple[str, int, float, float]  # (layer type, example row b, panel start, panel end)
SHARED = "query+key"  # a task's layer type: the query and key rows of one example and panel
Segment = tuple[Task, int, int]  # (task, first step, end step)
Pair = tuple[int, UnitKey]  # (example, module)
Panel = tuple[float, float]  # [start, end] of alpha within [0, 1]
WHOLE: Panel = (0.0, 1.0)
VARIANT = "#"  # "query#2": the module query under one of several unit masks (`base_type`)


def base_type(layer_type: str) -> str:
    """The layer type a task's module name scales: itself, or the module of a variant
    ("query#2" -> "query"). A variant differs from its module only by its unit mask (`masks`
    is keyed by the variant's name), so several masks of one module share passes."""
    return layer_type.split(VARIANT, 1)[0]


class _Engine:
    """Batches of rows (example, module, alpha) for one model; see the module docstring."""

    def __init__(self, model: EsmClassifier, device: torch.device, autocast: bool):
        self.model = model
        self.device = device
        self.autocast = autocast
        self.net = BatchFirstLayers(model.encoder)

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast)

    def _prob(self, x, tokens, labels) -> torch.Tensor:
        logits = self.model.classify(x.transpose(0, 1), tokens)
        return torch.softmax(logits.float(), dim=-1).gather(1, labels[:, None])[:, 0]

    @torch.no_grad()
    def prefix(self, tokens, labels, examples: list[int], layers: set[int]) -> _Batch:
        """One plain forward of a batch of examples, keeping the inputs of `layers`."""
        batch = pad([tokens[i] for i in examples], self.model.encoder.padding_idx)
        batch = batch.to(self.device)
        label = torch.tensor([int(labels[i]) for i in examples], device=self.device)
        with self._autocast():
            x, padding = self.model.embed(batch)
            x = x.transpose(0, 1).contiguous()
            mask = key_mask(padding)
            inputs = {}
            for index in range(len(self.net)):
                if index in layers:
                    inputs[index] = x
                x = self.net.forward(index, x, mask)
            f1 = self._prob(x, batch, label)
        return _Batch(examples, batch, padding, inputs, f1, label)

    @torch.no_grad()
    def layer_cache(self, batch: _Batch, layer: int) -> dict[str, torch.Tensor]:
        with self._autocast():
            return self.net.cache(layer, batch.inputs[layer], key_mask(batch.padding))

    def run(self, batch: _Batch, layer: int, cache, segments, alphas, need_grad: bool, masks):
        """One batch of rows: every segment is steps [k0, k1) of one (example, module, panel).

        A module's output is scaled by alpha (the rule's nodes `alphas`, mapped from [0, 1]
        onto the task's panel [lo, hi]), or, with a unit mask m in `masks` (layer type ->
        (units,)), by 1 - m + m * alpha. Returns F per row and, with `need_grad`,
        dF/d(scaled output) per segment (n, T, units).
        """
        leaves, outs, rows = [], [], []
        with torch.set_grad_enabled(need_grad), self._autocast():
            for (layer_type, b, lo, hi), k0, k1 in segments:
                shared = layer_type == SHARED
                module = "query" if shared else layer_type
                activation = cache[base_type(module)][b]
                mask = masks.get(module)
                nodes = alphas[k0:k1] if (lo, hi) == WHOLE else lo + (hi - lo) * alphas[k0:k1]
                if mask is None:
                    scale = nodes[:, None, None]
                else:
                    scale = (1 - mask + mask * nodes[:, None])[:, None, :]
                scaled = activation * scale.to(activation.dtype)
                scaled.requires_grad_(need_grad)
                kmask = None if batch.padding is None else key_mask(batch.padding[b : b + 1])
                key = None
                if shared:  # the unscaled key, differentiated too (the key path's gradient)
                    key = cache["key"][b : b + 1].expand(k1 - k0, -1, -1).clone()
                    key.requires_grad_(need_grad)
                outs.append(self.net.resume(layer, cache, base_type(module), b, scaled, kmask, key))
                leaves += [scaled, key] if shared else [scaled]
                rows += [b] * (k1 - k0)
            rows = torch.tensor(rows, device=self.device)
            x = torch.cat(outs) if len(outs) > 1 else outs[0]
            kmask = None if batch.padding is None else key_mask(batch.padding[rows])
            for index in range(layer + 1, len(self.net)):
                x = self.net.forward(index, x, kmask)
            prob = self._prob(x, batch.tokens[rows], batch.labels[rows])
        if not need_grad:
            return prob, None
        return prob.detach(), torch.autograd.grad(prob.sum(), leaves)


def _plan(tasks: list[Task], steps: int, cap: int) -> list[list[Segment]]:
    """Split the rows of tasks x steps into passes of <= cap rows."""
    passes, current, used = [], [], 0
    for task in tasks:
        k = 0
        while k < steps:
            take = min(steps - k, cap - used)
            current.append((task, k, k + take))
            used, k = used + take, k + take
            if used == cap:
                passes.append(current)
                current, used = [], 0
    if current:
        passes.append(current)
    return passes


def _merge_query_key(tasks: list[Task], alphas: np.ndarray, masks) -> list[Task]:
    """`tasks` with the query and key tasks of one example row and panel as one SHARED task
    (see the module docstring), where the rule's nodes mapped onto the panel are all above 0
    (the key's gradient is recovered by dividing by the node) and neither module has a unit
    mask; the other tasks as they are."""
    if "query" in masks or "key" in masks:
        return tasks
    present = {task for task in tasks if task[0] in ("query", "key")}
    merged = []
    for task in tasks:
        layer_type, b, lo, hi = task
        pair = {("query", b, lo, hi), ("key", b, lo, hi)}
        if layer_type in ("query", "key") and pair <= present and lo + (hi - lo) * alphas.min() > 0:
            if layer_type == "query":
                merged.append((SHARED, b, lo, hi))
        else:
            merged.append(task)
    return merged


def _layer_integrals(
    engine: _Engine,
    batch: _Batch,
    layer: int,
    tasks,
    alphas,
    weights,
    cap,
    masks,
    per_token,
    share_query_key: bool = True,
    sum_units: bool = False,
):
    """For one batch of examples and one layer, per task (layer type, example row b, lo, hi):
    a * (hi - lo) * sum_k w_k dF/da(alpha_k a), alpha_k the rule's nodes mapped onto [lo, hi]
    (times the unit mask), over the real tokens, summed over them unless `per_token` (and over
    the units with `sum_units`); and F(lo). `share_query_key`: a layer's query and key tasks
    share their rows (`SHARED`)."""
    device = engine.device
    cache = engine.layer_cache(batch, layer)
    alphas_t = torch.tensor(alphas, dtype=torch.float32, device=device)
    weights_t = torch.tensor(weights, dtype=torch.float32, device=device)
    zero_step = next((k for k, a in enumerate(alphas) if a == 0.0), None)
    integrals = {task: 0.0 for task in tasks}
    f_lo: dict[Task, float] = {}
    planned = _merge_query_key(tasks, np.asarray(alphas), masks) if share_query_key else tasks

    def parts(task, k0, k1, grads):
        """(task, dF/da of its rows, their weights) for one segment; a SHARED segment gives the
        query's and the key's (dF/dk at (alpha q, k) is alpha x the key path's dF/dk)."""
        layer_type, b, lo, hi = task
        w = weights_t[k0:k1]
        if layer_type != SHARED:
            return [(task, next(grads), w)]
        nodes = alphas_t[k0:k1] if (lo, hi) == WHOLE else lo + (hi - lo) * alphas_t[k0:k1]
        return [
            (("query", b, lo, hi), next(grads), w),
            (("key", b, lo, hi), next(grads), w / nodes),
        ]

    def originals(task):
        _, b, lo, hi = task
        return [("query", b, lo, hi), ("key", b, lo, hi)] if task[0] == SHARED else [task]

    for segments in _plan(planned, len(alphas), cap):
        prob, grads = engine.run(batch, layer, cache, segments, alphas_t, True, masks)
        grads, offset = iter(grads), 0
        for planned_task, k0, k1 in segments:
            for task, grad, w in parts(planned_task, k0, k1, grads):
                layer_type, b, lo, hi = task
                # sum_k w_k dF/da_k, then times a and summed over the example's real tokens
                weighted = torch.einsum("ktu,k->tu", grad.float(), w)
                product = cache[base_type(layer_type)][b].double() * weighted.double()
                if (lo, hi) != WHOLE:
                    product = product * (hi - lo)
                if layer_type in masks:
                    product = product * masks[layer_type].double()
                if batch.padding is not None:
                    product = product[~batch.padding[b]]
                if sum_units:
                    product = product.sum(-1)
                if not per_token:
                    product = product.sum(0)
                integrals[task] = integrals[task] + product
                if zero_step is not None and k0 <= zero_step < k1:
                    f_lo[task] = float(prob[offset + zero_step - k0])
            offset += k1 - k0
    if zero_step is None:  # F(lo) needs rows of its own, forward only (shared: the same F)
        zero = torch.zeros(1, device=device)
        for segments in _plan(planned, 1, cap):
            prob, _ = engine.run(batch, layer, cache, segments, zero, False, masks)
            for (task, _, _), value in zip(segments, prob.tolist(), strict=True):
                f_lo.update(dict.fromkeys(originals(task), value))
    return {task: value.cpu().numpy() for task, value in integrals.items()}, f_lo


@dataclass
class Integrals:
    """What `gradient_integrals` returns for its (example, module) pairs."""

    values: dict  # pair (or (pair, panel)) -> (units,), or (tokens of the example, units)
    f0: dict  # pair -> F with its scaled units at alpha = 0 (or (pair, panel) -> F(lo))
    f1: dict[int, float]  # example -> F of the unmodified network


@contextmanager
def _frozen(model: EsmClassifier) -> Iterator[None]:
    """Parameters without gradients within the block (the backward stops at the scaled module)."""
    requires_grad = [p.requires_grad for p in model.parameters()]
    model.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(model.parameters(), requires_grad, strict=True):
            p.requires_grad_(flag)


def gradient_integrals(
    model: EsmClassifier,
    tokens: Sequence[torch.Tensor],
    labels: Sequence[int],
    pairs: Sequence[Pair],
    alphas: np.ndarray,
    weights: np.ndarray,
    device: torch.device | str = "cpu",
    max_tokens: int = 16384,
    autocast: bool = False,
    *,
    masks: Mapping[UnitKey, torch.Tensor] | None = None,
    per_token: bool = False,
    progress_label: str = "integrated gradients",
    share_query_key: bool = True,
) -> Integrals:
    """The IG engine: for every (example, module) pair, a * sum_k w_k dF/da(alpha_k a), summed
    over the example's tokens (padding excluded, BOS and EOS included); F(0) and F(1) too.

    F is the probability of the example's label; (alphas, weights) a quadrature rule
    (`quadrature_rule`). `masks`: module -> (units,) float mask; such a module's units with
    mask 1 are scaled by alpha and the others run unchanged (scale 1 - m + m * alpha, and the
    attribution is a * m * integral), so F(0) is F with the masked-in units silenced. Modules
    without a mask scale every unit. `per_token`: keep the token axis, values (tokens, units)
    over the example's unpadded tokens (BOS first, EOS last) instead of their sum.

    Examples are bucketed by length so that one pass holds about `max_tokens` padded tokens
    over all its rows; the rows of an example are split over several passes when it alone
    exceeds the budget (the integral is a sum over rows, so any split is exact).

    Progress over the pairs (examples when there is one module) is logged every 30 s, the lines
    starting with `progress_label` (`kneurons.progress`).
    """
    out = panel_integrals(
        model, tokens, labels, [(pair, WHOLE) for pair in pairs], alphas, weights, device,
        max_tokens, autocast, masks=masks, per_token=per_token, progress_label=progress_label,
        share_query_key=share_query_key,
    )  # fmt: skip
    return Integrals(*_whole_path(out), out.f1)


def panel_integrals(
    model: EsmClassifier,
    tokens: Sequence[torch.Tensor],
    labels: Sequence[int],
    tasks: Sequence[tuple[Pair, Panel]],
    alphas: np.ndarray,
    weights: np.ndarray,
    device: torch.device | str = "cpu",
    max_tokens: int = 16384,
    autocast: bool = False,
    *,
    masks: Mapping[UnitKey, torch.Tensor] | None = None,
    per_token: bool = False,
    progress_label: str = "integrated gradients",
    share_query_key: bool = True,
    sum_units: bool = False,
) -> Integrals:
    """`gradient_integrals` over a part of the path: for every ((example, module), [lo, hi])
    task, the rule mapped onto [lo, hi] (nodes lo + (hi - lo) alpha_k, weights (hi - lo) w_k),
    so the values integrate dF/da over that panel only and sum to F(hi) - F(lo) at
    convergence. Results are keyed by task; `f0` holds F(lo) (F with the module scaled by lo).
    An (example, module) may come with several panels; the panels of one example and layer share
    passes like the modules do. The whole path [0, 1] gives exactly `gradient_integrals`.
    `share_query_key` (the default): a layer's query and key rows are shared (module docstring);
    False runs them apart (the engine before, kept for the benchmark's comparison).
    `sum_units`: values summed over the units too ((tokens,) per task with `per_token`): what a
    residue map needs, without holding (tokens, units) per task."""
    device = torch.device(device)
    engine = _Engine(model, device, autocast)
    masks = {m: v.to(device=device, dtype=torch.float32) for m, v in (masks or {}).items()}
    wanted: dict[int, dict[int, list[tuple[str, float, float]]]] = {}  # example -> layer -> parts
    for (example, (layer_type, layer)), (lo, hi) in tasks:
        wanted.setdefault(example, {}).setdefault(layer, []).append((layer_type, lo, hi))
    examples = sorted(wanted)
    per_example = len(alphas) * max(len(t) for e in examples for t in wanted[e].values())
    buckets = length_batches([len(tokens[e]) for e in examples], max(1, max_tokens // per_example))
    one_module = len({module for (_, module), _ in tasks}) == 1
    unit = "examples" if one_module else "(example, module) pairs"
    if len({pair for pair, _ in tasks}) < len(tasks):
        unit = "(example, module, panel) tasks"
    progress = Progress(log, progress_label, len(tasks), unit)

    out = Integrals({}, {}, {})
    model.eval()
    with _frozen(model):
        for bucket in buckets:
            members = [examples[i] for i in bucket]
            layers = sorted({layer for e in members for layer in wanted[e]})
            batch = engine.prefix(tokens, labels, members, set(layers))
            out.f1.update(zip(members, batch.f1.tolist(), strict=True))
            cap = max(1, max_tokens // batch.tokens.shape[1])  # rows per pass
            for layer in layers:
                layer_tasks = [
                    (lt, b, lo, hi)
                    for b, e in enumerate(members)
                    for lt, lo, hi in wanted[e].get(layer, [])
                ]
                layer_masks = {lt: m for (lt, at), m in masks.items() if at == layer}
                integrals, f_lo = _layer_integrals(
                    engine, batch, layer, layer_tasks, alphas, weights, cap, layer_masks,
                    per_token, share_query_key, sum_units,
                )  # fmt: skip
                for task, values in integrals.items():
                    lt, b, lo, hi = task
                    key = ((members[b], (lt, layer)), (lo, hi))
                    out.values[key] = values
                    out.f0[key] = f_lo[task]
                progress.update(len(layer_tasks))
    progress.done()
    return out


def _whole_path(out: Integrals) -> tuple[dict, dict]:
    """values and F(0) of `panel_integrals` over [0, 1], keyed by pair."""
    values = {pair: value for (pair, _), value in out.values.items()}
    return values, {pair: value for (pair, _), value in out.f0.items()}
