"""Neuron scores: activation, gradient x activation and integrated gradients (exact).

Every method has the same call, `f(model, tokens, labels, layer_types, layers, device,
**options)` (options: the config block `scoring.<method>`), and returns a `ScoreResult`: per
module (layer type, layer) the score of every unit averaged over all examples, and the same
average within each class (`class_scores`; weighted by the class counts they average back to the
all-class score). `score_table` turns one module into the parquet schema (`kneurons.scoring.files`,
which also holds the random baseline). Definitions follow docs/design.md:
- activation: mean over examples of a per-example statistic over real residue tokens (BOS, EOS,
  padding excluded): `mean_abs` (the default, mean |a|) or `mean` (signed mean a);
- integrated gradients (IG): for one module at a time, its output is scaled by alpha in [0, 1]
  while the rest of the network runs normally; F(alpha) = probability of the true class;
  IG_i = sum over token positions of a_i * integral_0^1 dF/da_i(alpha) d alpha, by the rule
  `quadrature` with `steps` nodes; score = mean over examples. Completeness: sum_i IG_i ->
  F(1) - F(0); the gap is recorded per (example, module). All token positions count, BOS and EOS
  included, because the scaling acts on all of them;
- gradient x activation: sum over token positions of a_i * dF/da_i at alpha = 1, i.e. IG with one
  right-Riemann step (one backward instead of `steps`).

The IG engine, `gradient_integrals`, also serves the residue maps (`kneurons.residues.maps`): a
module may scale only a subset of its units (a unit mask) and keep the token axis. How it stays
exact and fast (README, "Scoring methods"):
- the network below the scaled module does not depend on alpha: it runs once per example, without
  gradients (prefix caching, down to the module inside its layer: for `ffn_in` even the layer's
  attention block is cached), and only the rest of layer l and the layers above run per step;
- a batch row is one (example, module, alpha): the steps of several examples and several modules
  of one layer share a batch (length-bucketed under a token budget; rows never interact, and
  padding is masked out of attention, pooling and the sum over tokens);
- parameters are frozen and the backward stops at the scaled module;
- the layers run batch first with fused attention (`kneurons.model.transformer`, checked against
  fair-esm's in `tests/test_transformer.py`); `tests/test_scoring.py` checks IG against captum.
`torch.inference_mode` is not used: fair-esm's rotary module caches cos/sin tables, and an
inference tensor cached there breaks a later autograd pass; `no_grad` is enough.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from kneurons.model.batching import iter_batches, length_batches, pad
from kneurons.model.classifier import EsmClassifier, units_of
from kneurons.model.hooks import captured_outputs
from kneurons.model.transformer import BatchFirstLayers, key_mask
from kneurons.progress import Progress
from kneurons.scoring.files import score_frame, split_halves
from kneurons.vocab import ALL_CLASSES, LAYER_TYPES, QUADRATURES, SCORING_METHODS, UnitKey

ACTIVATION_STATISTICS = ("mean_abs", "mean")


log = logging.getLogger(__name__)  # progress lines (`kneurons.progress`)


def quadrature_rule(quadrature: str, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """The nodes alpha in [0, 1] and weights of the rule `quadrature` (`QUADRATURES`) with
    `steps` nodes, for integral_0^1 f(alpha) d alpha (as captum places them)."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if quadrature == "gausslegendre":
        x, w = np.polynomial.legendre.leggauss(steps)
        return 0.5 * (x + 1.0), 0.5 * w
    if quadrature == "riemann_trapezoid":
        if steps < 2:
            raise ValueError("riemann_trapezoid needs steps >= 2")
        alphas = np.linspace(0.0, 1.0, steps)
        weights = np.full(steps, 1.0 / (steps - 1))
        weights[[0, -1]] /= 2
        return alphas, weights
    weights = np.full(steps, 1.0 / steps)
    if quadrature == "riemann_left":
        return np.linspace(0.0, 1.0 - 1.0 / steps, steps), weights
    if quadrature == "riemann_right":
        return np.linspace(1.0 / steps, 1.0, steps), weights
    if quadrature == "riemann_middle":
        return np.linspace(0.5 / steps, 1.0 - 0.5 / steps, steps), weights
    choices = ", ".join(QUADRATURES)
    raise ValueError(f"unknown quadrature {quadrature!r}; choose one of {choices}")


# ---------------------------------------------------------------------------------------------
# Results and score tables


@dataclass
class ScoreResult:
    """Scores of every module asked, averaged over examples, overall and per class."""

    scores: dict[UnitKey, np.ndarray]  # all classes: mean over all examples
    class_scores: dict[UnitKey, dict[int, np.ndarray]]  # label -> mean over that class's examples
    class_counts: dict[int, int]  # label -> number of examples
    per_example: dict[UnitKey, np.ndarray]  # (examples, units), in the order of `tokens`
    gaps: pd.DataFrame | None = None  # gradient methods: one row per (example, module)
    seconds: float = 0.0
    info: dict = field(default_factory=dict)  # method parameters actually used
    labels: np.ndarray | None = None  # the examples' labels, in the order of `tokens`


def _collect(
    per_example: dict[UnitKey, np.ndarray], labels: Sequence[int] | None
) -> tuple[dict, dict, dict]:
    """(examples, units) arrays per module -> all-class means, per-class means, class counts.

    The all-class mean is the per-class means weighted by the class counts (no labels: no
    per-class means).
    """
    if labels is None:
        return {m: v.mean(0) for m, v in per_example.items()}, {m: {} for m in per_example}, {}
    labels = np.asarray(labels, dtype=np.int64)
    classes, counts = np.unique(labels, return_counts=True)
    scores, class_scores = {}, {}
    for module, values in per_example.items():
        if len(values) != len(labels):
            raise ValueError(f"{len(values)} examples but {len(labels)} labels")
        sums = {int(c): values[labels == c].sum(0) for c in classes}
        scores[module] = sum(sums.values()) / len(labels)
        class_scores[module] = {c: s / n for (c, s), n in zip(sums.items(), counts, strict=True)}
    return scores, class_scores, {int(c): int(n) for c, n in zip(classes, counts, strict=True)}


def _result(per_example, labels, **kwargs) -> ScoreResult:
    scores, class_scores, counts = _collect(per_example, labels)
    labels = None if labels is None else np.asarray(labels, dtype=np.int64)
    return ScoreResult(scores, class_scores, counts, per_example, labels=labels, **kwargs)


def _half_means(values: np.ndarray, half: np.ndarray, rows: np.ndarray) -> list[np.ndarray]:
    """Mean of `values` over the examples of `rows` in half 0 and in half 1 (NaN if empty)."""
    out = []
    for h in (0, 1):
        chosen = values[rows & (half == h)]
        out.append(chosen.mean(0) if len(chosen) else np.full(values.shape[1], np.nan))
    return out


def score_table(result: ScoreResult, module: UnitKey, per_class: bool = True) -> pd.DataFrame:
    """One module's score file: the all-class rows (label -1) first, then one block per class.

    Selection reads only `score` of the rows with label -1
    (`kneurons.selection.ranking.all_class_rows`).
    `score_a` and `score_b` are the same means over two disjoint halves of the examples
    (`kneurons.scoring.files.split_halves`: alternating within each class), for the stability of the
    selection (`kneurons.selection.stability`).
    """
    layer_type, layer = module
    values = result.per_example[module]
    labels = result.labels if result.labels is not None else np.zeros(len(values), np.int64)
    half = split_halves(labels)
    everyone = np.ones(len(values), dtype=bool)
    a, b = _half_means(values, half, everyone)
    parts = [
        score_frame(
            result.scores[module], layer_type, layer, label=ALL_CLASSES, score_a=a, score_b=b
        )
    ]
    if per_class:
        for label, class_values in sorted(result.class_scores[module].items()):
            a, b = _half_means(values, half, labels == label)
            parts.append(
                score_frame(class_values, layer_type, layer, label=label, score_a=a, score_b=b)
            )
    frame = pd.concat(parts, ignore_index=True)
    frame["label"] = frame["label"].astype(np.int64)
    return frame


def _modules(model: EsmClassifier, layer_types, layers) -> list[UnitKey]:
    layer_types = [layer_types] if isinstance(layer_types, str) else list(layer_types)
    unknown = [lt for lt in layer_types if lt not in LAYER_TYPES]
    if unknown:
        raise ValueError(f"unknown layer type(s) {unknown}; choose from {', '.join(LAYER_TYPES)}")
    layers = range(model.num_layers) if layers is None else [int(x) for x in layers]
    bad = [x for x in layers if not 0 <= x < model.num_layers]
    if bad:
        raise ValueError(f"layer(s) {bad} out of range for a {model.num_layers}-layer model")
    return [(lt, layer) for layer in layers for lt in layer_types]


# ---------------------------------------------------------------------------------------------
# Activation


@torch.no_grad()
def activation_scores(
    model: EsmClassifier,
    tokens: Sequence[torch.Tensor],
    labels: Sequence[int] | None,
    layer_types: str | Sequence[str],
    layers: Iterable[int] | None = None,
    device: torch.device | str = "cpu",
    *,
    statistic: str = "mean_abs",
    max_tokens: int = 8192,
) -> ScoreResult:
    """Per example, mean |a| (or mean a) of every unit over real residues; then means over examples.

    Runs fair-esm's own forward with hooks (one pass for every module asked).
    """
    if statistic not in ACTIVATION_STATISTICS:
        choices = ", ".join(ACTIVATION_STATISTICS)
        raise ValueError(f"unknown activation statistic {statistic!r}; choose one of {choices}")
    start = time.perf_counter()
    model.eval()
    device = torch.device(device)
    modules = _modules(model, layer_types, layers)
    per_example = {
        m: np.zeros((len(tokens), units_of(model.encoder, m[0])), dtype=np.float64) for m in modules
    }
    progress = Progress(log, "activation scores", len(tokens), "examples")
    with captured_outputs(model, modules) as captured:
        for idx, batch in iter_batches(tokens, model.encoder.padding_idx, max_tokens):
            batch = batch.to(device)
            model(batch)
            mask = model.residue_mask(batch).T.unsqueeze(-1).to(torch.float64)  # (T, B, 1)
            n_res = mask.sum(0).clamp(min=1.0)  # (B, 1)
            for key, out in captured.items():
                out = out.to(torch.float64)
                out = out.abs() if statistic == "mean_abs" else out
                per_example[key][idx] = ((out * mask).sum(0) / n_res).cpu().numpy()
            progress.update(len(idx))
    progress.done()
    return _result(
        per_example,
        labels,
        seconds=time.perf_counter() - start,
        info={"statistic": statistic},
    )


# ---------------------------------------------------------------------------------------------
# Gradient engine: integrated gradients and gradient x activation


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
Segment = tuple[Task, int, int]  # (task, first step, end step)
Pair = tuple[int, UnitKey]  # (example, module)
Panel = tuple[float, float]  # [start, end] of alpha within [0, 1]
WHOLE: Panel = (0.0, 1.0)


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
                activation = cache[layer_type][b]
                mask = masks.get(layer_type)
                nodes = alphas[k0:k1] if (lo, hi) == WHOLE else lo + (hi - lo) * alphas[k0:k1]
                if mask is None:
                    scale = nodes[:, None, None]
                else:
                    scale = (1 - mask + mask * nodes[:, None])[:, None, :]
                scaled = activation * scale.to(activation.dtype)
                scaled.requires_grad_(need_grad)
                kmask = None if batch.padding is None else key_mask(batch.padding[b : b + 1])
                outs.append(self.net.resume(layer, cache, layer_type, b, scaled, kmask))
                leaves.append(scaled)
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


def _layer_integrals(
    engine: _Engine, batch: _Batch, layer: int, tasks, alphas, weights, cap, masks, per_token
):
    """For one batch of examples and one layer, per task (layer type, example row b, lo, hi):
    a * (hi - lo) * sum_k w_k dF/da(alpha_k a), alpha_k the rule's nodes mapped onto [lo, hi]
    (times the unit mask), over the real tokens, summed over them unless `per_token`; and
    F(lo)."""
    device = engine.device
    cache = engine.layer_cache(batch, layer)
    alphas_t = torch.tensor(alphas, dtype=torch.float32, device=device)
    weights_t = torch.tensor(weights, dtype=torch.float32, device=device)
    zero_step = next((k for k, a in enumerate(alphas) if a == 0.0), None)
    integrals = {task: 0.0 for task in tasks}
    f_lo: dict[Task, float] = {}

    for segments in _plan(tasks, len(alphas), cap):
        prob, grads = engine.run(batch, layer, cache, segments, alphas_t, True, masks)
        offset = 0
        for (task, k0, k1), grad in zip(segments, grads, strict=True):
            layer_type, b, lo, hi = task
            # sum_k w_k dF/da_k, then times a and summed over the example's real tokens
            weighted = torch.einsum("ktu,k->tu", grad.float(), weights_t[k0:k1])
            product = cache[layer_type][b].double() * weighted.double()
            if (lo, hi) != WHOLE:
                product = product * (hi - lo)
            if layer_type in masks:
                product = product * masks[layer_type].double()
            if batch.padding is not None:
                product = product[~batch.padding[b]]
            if not per_token:
                product = product.sum(0)
            integrals[task] = integrals[task] + product
            if zero_step is not None and k0 <= zero_step < k1:
                f_lo[task] = float(prob[offset + zero_step - k0])
            offset += k1 - k0
    if zero_step is None:  # F(lo) needs rows of its own, forward only
        zero = torch.zeros(1, device=device)
        for segments in _plan(tasks, 1, cap):
            prob, _ = engine.run(batch, layer, cache, segments, zero, False, masks)
            f_lo.update(zip([task for task, _, _ in segments], prob.tolist(), strict=True))
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
) -> Integrals:
    """`gradient_integrals` over a part of the path: for every ((example, module), [lo, hi])
    task, the rule mapped onto [lo, hi] (nodes lo + (hi - lo) alpha_k, weights (hi - lo) w_k),
    so the values integrate dF/da over that panel only and sum to F(hi) - F(lo) at
    convergence. Results are keyed by task; `f0` holds F(lo) (F with the module scaled by lo).
    An (example, module) may come with several panels; the panels of one example and layer share
    passes like the modules do. The whole path [0, 1] gives exactly `gradient_integrals`."""
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
                    engine, batch, layer, layer_tasks, alphas, weights, cap, layer_masks, per_token
                )
                for task, values in integrals.items():
                    lt, b, lo, hi = task
                    key = ((members[b], (lt, layer)), (lo, hi))
                    out.values[key] = values
                    out.f0[key] = f_lo[task]
                progress.update(len(layer_tasks))
    progress.done()
    return out


def _gap_frame(pairs, labels, ig, f0, f1, steps: dict, panels: dict, rtol, atol) -> pd.DataFrame:
    rows = []
    for example, (layer_type, layer) in pairs:
        pair = (example, (layer_type, layer))
        sum_ig = float(ig[pair].sum())
        delta = f1[example] - f0[pair]
        rows.append(
            {"example": example, "label": int(labels[example]), "layer_type": layer_type,
             "layer": layer, "steps": steps[pair], "panels": panels[pair], "f0": f0[pair],
             "f1": f1[example], "sum_ig": sum_ig, "gap": sum_ig - delta}
        )  # fmt: skip
    frame = pd.DataFrame(rows)
    if rtol is not None and not frame.empty:
        tolerance = completeness_tolerance(frame["f1"] - frame["f0"], rtol, atol)
        frame["tolerance"] = tolerance
        frame["above_tolerance"] = frame["gap"].abs() > tolerance
    return frame


def completeness_tolerance(delta, rtol: float, atol: float):
    """The largest |completeness gap| accepted for an (example, module) whose F(1) - F(0) is
    `delta`: atol + rtol * |delta| (numpy's isclose rule; works on arrays)."""
    return atol + rtol * np.abs(delta)


def _gradient_method(
    model,
    tokens,
    labels,
    layer_types,
    layers,
    device,
    steps: int,
    quadrature: str,
    max_tokens: int,
    autocast: bool,
    rtol: float | None = None,
    atol: float = 0.0,
    max_steps: int | None = None,
    info: dict | None = None,
    label: str = "integrated gradients",
) -> ScoreResult:
    start = time.perf_counter()
    if len(tokens) != len(labels):
        raise ValueError(f"{len(tokens)} token sequences but {len(labels)} labels")
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
    num_classes = model.num_classes
    bad = [int(x) for x in labels if not 0 <= int(x) < num_classes]
    if bad:
        raise ValueError(f"label {bad[0]} out of range for {num_classes} classes")
    modules = _modules(model, layer_types, layers)
    pairs = [(e, m) for e in range(len(tokens)) for m in modules]

    alphas, weights = quadrature_rule(quadrature, steps)

    def integrate(tasks, progress_label):
        return panel_integrals(
            model, tokens, labels, tasks, alphas, weights, device, max_tokens, autocast,
            progress_label=progress_label,
        )  # fmt: skip

    limit = steps if rtol is None else max_steps if max_steps is not None else 16 * steps
    refined = refine_panels(integrate, pairs, steps, rtol, atol, limit, label)
    ig, f0, f1 = refined.values, refined.f0, refined.f1
    used, panels, pending = refined.nodes, refined.panels, refined.above
    rerun, rounds = refined.refined, refined.rounds
    per_example = {
        m: np.stack([ig[(e, m)] for e in range(len(tokens))]).astype(np.float64) for m in modules
    }
    gaps = _gap_frame(pairs, labels, ig, f0, f1, used, panels, rtol, atol)
    info = dict(info or {})
    info.update(max_tokens=max_tokens, autocast=autocast, reruns=rerun, refinements=rounds)
    if rtol is not None:
        info["n_above_tolerance"] = len(pending)
    return _result(per_example, labels, gaps=gaps, seconds=time.perf_counter() - start, info=info)


@dataclass
class Refinement:
    """What `refine_panels` computed: per pair its values (the sum of its panels') and F(0),
    F(1) per example, nodes and panels per pair, the pairs still above tolerance, (pair, round)
    refinements and rounds."""

    values: dict
    f0: dict
    f1: dict
    nodes: dict = field(default_factory=dict)
    panels: dict = field(default_factory=dict)
    above: list = field(default_factory=list)
    refined: int = 0
    rounds: int = 0


def _whole_path(out: Integrals) -> tuple[dict, dict]:
    """values and F(0) of `panel_integrals` over [0, 1], keyed by pair."""
    values = {pair: value for (pair, _), value in out.values.items()}
    return values, {pair: value for (pair, _), value in out.f0.items()}


def refine_panels(integrate, pairs, steps, rtol, atol, max_steps, label) -> Refinement:
    """The adaptive rule (`integrated_gradients_scores`): a first pass of every pair over
    [0, 1] with `steps` nodes, `integrate(tasks, progress_label)` being `panel_integrals` bound
    to the rule (values of any array shape: the gap uses their sum); then, for the pairs above
    atol + rtol |F(1) - F(0)|, halve the panels that hold the gap, until each pair meets its
    tolerance or reaches `max_steps` nodes. rtol None: the first pass only, nothing judged."""
    first = integrate([(pair, WHOLE) for pair in pairs], label)
    values, f0 = _whole_path(first)
    f1 = first.f1
    parts = {pair: [_Part(*WHOLE, values[pair], f0[pair], f1[pair[0]])] for pair in pairs}
    pending = [] if rtol is None else _above(pairs, values, f0, f1, rtol, atol)
    out = Refinement(values, f0, f1)
    while pending:
        chosen = {}
        for pair in pending:
            tolerance = completeness_tolerance(f1[pair[0]] - f0[pair], rtol, atol)
            budget = (max_steps - steps * len(parts[pair])) // steps
            split = _to_split(parts[pair], tolerance, budget)
            if split:
                chosen[pair] = split
        if not chosen:
            break
        out.rounds += 1
        out.refined += len(chosen)
        tasks = [
            (pair, half)
            for pair, split in chosen.items()
            for part in split
            for half in ((part.lo, part.mid), (part.mid, part.hi))
        ]
        n = len(tasks) // 2
        more = integrate(tasks, f"{label} (refinement {out.rounds}: {n} panels halved)")
        for pair, split in chosen.items():
            for part in split:
                left = more.values[(pair, (part.lo, part.mid))]
                right = more.values[(pair, (part.mid, part.hi))]
                f_mid = more.f0[(pair, (part.mid, part.hi))]
                at = parts[pair].index(part)
                parts[pair][at : at + 1] = [
                    _Part(part.lo, part.mid, left, part.f_lo, f_mid),
                    _Part(part.mid, part.hi, right, f_mid, part.f_hi),
                ]
            values[pair] = np.sum([part.values for part in parts[pair]], axis=0)
        pending = _above(pending, values, f0, f1, rtol, atol)
    out.nodes = {pair: steps * len(parts[pair]) for pair in pairs}
    out.panels = {pair: len(parts[pair]) for pair in pairs}
    out.above = pending
    return out


@dataclass(eq=False)
class _Part:
    """One panel [lo, hi] of an (example, module)'s path: its attributions and F at both ends."""

    lo: float
    hi: float
    values: np.ndarray
    f_lo: float
    f_hi: float

    @property
    def mid(self) -> float:
        return 0.5 * (self.lo + self.hi)

    @property
    def gap(self) -> float:
        """Completeness on the panel alone: sum of its attributions - (F(hi) - F(lo))."""
        return float(self.values.sum()) - (self.f_hi - self.f_lo)


def _to_split(parts: list[_Part], tolerance: float, budget: int) -> list[_Part]:
    """The panels to halve: those whose |gap| exceeds their share of the tolerance (tolerance x
    width; the shares add up to the tolerance, so while the total gap exceeds it at least one
    panel does), largest |gap| first, at most `budget` of them."""
    if budget < 1:
        return []
    over = [p for p in parts if abs(p.gap) > tolerance * (p.hi - p.lo)]
    over = over or parts  # rounding can hide the offender: then halve the worst anyway
    return sorted(over, key=lambda p: -abs(p.gap))[:budget]


def _above(pairs, ig, f0, f1, rtol: float, atol: float) -> list:
    """The (example, module) pairs whose |completeness gap| exceeds their tolerance."""
    out = []
    for e, m in pairs:
        delta = f1[e] - f0[(e, m)]
        if abs(float(ig[(e, m)].sum()) - delta) > completeness_tolerance(delta, rtol, atol):
            out.append((e, m))
    return out


# Default accuracy policy of IG (README, "Integrated gradients: accuracy policy"): every
# (example, module) ends with |gap| <= ATOL + RTOL * |F(1) - F(0)|, or is counted and reported.
RTOL = 0.01
ATOL = 1e-4


def integrated_gradients_scores(
    model: EsmClassifier,
    tokens: Sequence[torch.Tensor],
    labels: Sequence[int],
    layer_types: str | Sequence[str],
    layers: Iterable[int] | None = None,
    device: torch.device | str = "cpu",
    *,
    steps: int = 16,
    quadrature: str = "gausslegendre",
    max_tokens: int = 8192,
    adaptive: bool = True,
    rtol: float = RTOL,
    atol: float = ATOL,
    max_steps: int | None = 256,
    autocast: bool = False,
) -> ScoreResult:
    """Exact IG of the true-class probability w.r.t. every module of `layer_types` x `layers`.

    `adaptive`: an (example, module) whose |completeness gap| exceeds `atol + rtol * |F(1) -
    F(0)|` is refined where its path needs it (adaptive composite quadrature): its path [0, 1]
    is cut into panels, each integrated by the rule with `steps` nodes, and F is evaluated at
    every panel boundary (a forward pass, no backward), so each panel has a completeness gap
    of its own; the panels whose gap exceeds their share of the tolerance (tolerance x width)
    are halved, round after round, until the pair meets its tolerance or its nodes reach
    `max_steps` (None: 16 x steps). A trained model's F(alpha) can switch from 0 to 1 within a
    few hundredths of alpha (attention sharpening as a query or key is scaled up), which no
    global rule of a few dozen nodes resolves; halving the panel around the switch does. The
    nodes each pair finally used are in `gaps["steps"]` (its panels in `gaps["panels"]`), and
    the pairs still above their tolerance are flagged (`gaps["above_tolerance"]`,
    `info["n_above_tolerance"]`).
    Not adaptive: one pass at `steps`; the gaps are still judged against the tolerance.
    `autocast`: bf16 autocast (meant for CUDA).
    """
    info = {"steps": steps, "quadrature": quadrature, "adaptive": adaptive}
    info.update(rtol=rtol, atol=atol)
    if adaptive:
        info["max_steps"] = max_steps if max_steps is not None else 16 * steps
    return _gradient_method(
        model, tokens, labels, layer_types, layers, device, steps, quadrature, max_tokens,
        autocast, rtol, atol, max_steps if adaptive else steps, info,
    )  # fmt: skip


def grad_x_activation_scores(
    model: EsmClassifier,
    tokens: Sequence[torch.Tensor],
    labels: Sequence[int],
    layer_types: str | Sequence[str],
    layers: Iterable[int] | None = None,
    device: torch.device | str = "cpu",
    *,
    max_tokens: int = 8192,
    autocast: bool = False,
) -> ScoreResult:
    """sum over tokens of a_i * dF/da_i at the unmodified network (one backward per module).

    Equal to IG with one right-Riemann step; the completeness gap (against F(1) - F(0)) shows
    how far this first-order estimate is from IG's total.
    """
    return _gradient_method(
        model, tokens, labels, layer_types, layers, device, 1, "riemann_right", max_tokens,
        autocast, label="gradient x activation",
    )  # fmt: skip


def score_neurons(
    method: str,
    model: EsmClassifier,
    tokens: Sequence[torch.Tensor],
    labels: Sequence[int],
    layer_types: str | Sequence[str],
    layers: Iterable[int] | None = None,
    device: torch.device | str = "cpu",
    options: dict | None = None,
) -> ScoreResult:
    """Dispatch to one method with its options, the config block `scoring.<method>`, as keyword
    arguments."""
    functions = {
        "activation": activation_scores,
        "grad_x_activation": grad_x_activation_scores,
        "integrated_gradients": integrated_gradients_scores,
    }
    if method not in functions:
        raise ValueError(
            f"unknown scoring method {method!r}; choose one of {', '.join(SCORING_METHODS)}"
        )
    return functions[method](model, tokens, labels, layer_types, layers, device, **(options or {}))


def gap_summary(gaps: pd.DataFrame) -> dict:
    """Completeness gap summary for one module: mean, mean |gap|, max |gap|, mean |F1-F0|."""
    delta = (gaps["f1"] - gaps["f0"]).abs()
    summary = {
        "n_examples": int(len(gaps)),
        "gap_mean": float(gaps["gap"].mean()),
        "gap_mean_abs": float(gaps["gap"].abs().mean()),
        "gap_max_abs": float(gaps["gap"].abs().max()),
        "delta_mean_abs": float(delta.mean()),
    }
    if "steps" in gaps:
        summary["steps_max"] = int(gaps["steps"].max())
        summary["n_more_steps"] = int((gaps["steps"] > gaps["steps"].min()).sum())
    if "above_tolerance" in gaps:
        rel = gaps["gap"].abs() / delta.where(delta > 0)
        summary["rel_gap_max"] = float(rel.max()) if rel.notna().any() else float("nan")
        summary["n_above_tolerance"] = int(gaps["above_tolerance"].sum())
    return summary
