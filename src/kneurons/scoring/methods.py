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

The gradient methods run the IG engine (`kneurons.scoring.integrals`) with the adaptive rule of
`kneurons.scoring.adaptive`; `score_neurons` dispatches to a method by name.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from kneurons.model.batching import iter_batches
from kneurons.model.classifier import EsmClassifier, units_of
from kneurons.model.hooks import captured_outputs
from kneurons.progress import Progress
from kneurons.scoring.adaptive import _gap_frame, refine_panels
from kneurons.scoring.files import score_frame, split_halves
from kneurons.scoring.hooked import split_panel_integrals
from kneurons.scoring.quadrature import ATOL, RTOL, AccuracyPolicy, quadrature_rule
from kneurons.vocab import ALL_CLASSES, LAYER_TYPES, SCORING_METHODS, UnitKey

ACTIVATION_STATISTICS = ("mean_abs", "mean")


log = logging.getLogger(__name__)  # progress lines (`kneurons.progress`)


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
# Gradient methods: integrated gradients and gradient x activation


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
    share_query_key: bool = True,
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
        return split_panel_integrals(
            model, tokens, labels, tasks, alphas, weights, device, max_tokens, autocast,
            progress_label=progress_label, share_query_key=share_query_key,
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
    share_query_key: bool = True,
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
    `autocast`: bf16 autocast (meant for CUDA). `share_query_key`: a layer's query and key
    share their forward and backward rows (`kneurons.scoring.integrals`; False: apart, the
    engine before, for the benchmark).
    """
    policy = AccuracyPolicy(steps, quadrature, adaptive, rtol, atol, max_steps)
    info = {"steps": steps, "quadrature": quadrature, "adaptive": adaptive}
    info.update(rtol=rtol, atol=atol)
    if adaptive:
        info["max_steps"] = policy.node_limit
    return _gradient_method(
        model, tokens, labels, layer_types, layers, device, steps, quadrature, max_tokens,
        autocast, rtol, atol, policy.node_limit, info, share_query_key=share_query_key,
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
