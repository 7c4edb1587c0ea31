"""Neuron scores: activation, gradient x activation, integrated gradients (exact) and random.

Every method has the same call, `f(model, tokens, labels, layer_types, layers, device, **params)`,
and returns a `ScoreResult`: per module (layer type, layer) the score of every unit averaged over
all examples, and the same average within each class (`class_scores`; weighted by the class counts
they average back to the all-class score). `score_table` turns one module into the parquet schema.
Definitions follow DESIGN.md:
- activation: mean over examples of a per-example statistic over real residue tokens (BOS, EOS,
  padding excluded): `mean_abs` (the default, mean |a|) or `mean` (signed mean a);
- integrated gradients (IG): for one module at a time, its output is scaled by alpha in [0, 1]
  while the rest of the network runs normally; F(alpha) = probability of the true class;
  IG_i = sum over token positions of a_i * integral_0^1 dF/da_i(alpha) d alpha; score = mean over
  examples. Completeness: sum_i IG_i -> F(1) - F(0); the gap is recorded per (example, module).
  All token positions count, BOS and EOS included, because the scaling acts on all of them;
- gradient x activation: sum over token positions of a_i * dF/da_i at alpha = 1, i.e. IG with one
  right-Riemann step (one backward instead of `steps`);
- random: seeded uniform scores.

How the IG engine stays exact and fast (README, "Scoring methods"):
- the network below the scaled module does not depend on alpha: it runs once per example, without
  gradients (prefix caching, down to the module inside its layer: for `ffn_in` even the layer's
  attention block is cached), and only the rest of layer l and the layers above run per step;
- a batch row is one (example, module, alpha): the steps of several examples and several modules
  of one layer share a batch (length-bucketed under a token budget; rows never interact, and
  padding is masked out of attention, pooling and the sum over tokens);
- parameters are frozen and the backward stops at the scaled module;
- the layers run in a batch-first re-implementation of fair-esm's `TransformerLayer` (same
  modules and weights; fused attention instead of fair-esm's bmm/softmax and per-head weight
  averaging); `tests/test_scoring.py` checks it against fair-esm and IG against captum.
`torch.inference_mode` is not used: fair-esm's rotary module caches cos/sin tables, and an
inference tensor cached there breaks a later autograd pass; `no_grad` is enough.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from kneurons.batching import iter_batches, length_batches, pad
from kneurons.model import LAYER_TYPES, EsmClassifier, get_module, units_of

QUADRATURES = (
    "riemann_left",
    "riemann_right",
    "riemann_middle",
    "riemann_trapezoid",
    "gausslegendre",
)
METHODS = ("activation", "grad_x_activation", "integrated_gradients")
ACTIVATION_STATISTICS = ("mean_abs", "mean")
ALL_CLASSES = -1  # `label` of the all-class rows of a score table

Module = tuple[str, int]  # (layer type, layer)


def quadrature(method: str, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Points alpha in [0, 1] and weights for integral_0^1 f(alpha) d alpha (as captum)."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if method == "gausslegendre":
        x, w = np.polynomial.legendre.leggauss(steps)
        return 0.5 * (x + 1.0), 0.5 * w
    if method == "riemann_trapezoid":
        if steps < 2:
            raise ValueError("riemann_trapezoid needs steps >= 2")
        alphas = np.linspace(0.0, 1.0, steps)
        weights = np.full(steps, 1.0 / (steps - 1))
        weights[[0, -1]] /= 2
        return alphas, weights
    weights = np.full(steps, 1.0 / steps)
    if method == "riemann_left":
        return np.linspace(0.0, 1.0 - 1.0 / steps, steps), weights
    if method == "riemann_right":
        return np.linspace(1.0 / steps, 1.0, steps), weights
    if method == "riemann_middle":
        return np.linspace(0.5 / steps, 1.0 - 0.5 / steps, steps), weights
    raise ValueError(f"unknown quadrature {method!r}; choose one of {', '.join(QUADRATURES)}")


# ---------------------------------------------------------------------------------------------
# Results and score tables


@dataclass
class ScoreResult:
    """Scores of every module asked, averaged over examples, overall and per class."""

    scores: dict[Module, np.ndarray]  # all classes: mean over all examples
    class_scores: dict[Module, dict[int, np.ndarray]]  # label -> mean over that class's examples
    class_counts: dict[int, int]  # label -> number of examples
    per_example: dict[Module, np.ndarray]  # (examples, units), in the order of `tokens`
    gaps: pd.DataFrame | None = None  # gradient methods: one row per (example, module)
    seconds: float = 0.0
    info: dict = field(default_factory=dict)  # method parameters actually used


def _collect(
    per_example: dict[Module, np.ndarray], labels: Sequence[int] | None
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
    return ScoreResult(
        scores=scores,
        class_scores=class_scores,
        class_counts=counts,
        per_example=per_example,
        **kwargs,
    )


def score_frame(scores: np.ndarray, layer_type: str, layer: int, **extra) -> pd.DataFrame:
    """The per-layer parquet schema: layer, layer_type, neuron, score (+ optional columns)."""
    frame = pd.DataFrame(
        {
            "layer": np.full(len(scores), layer, dtype=np.int64),
            "layer_type": layer_type,
            "neuron": np.arange(len(scores), dtype=np.int64),
            "score": np.asarray(scores, dtype=np.float64),
        }
    )
    for name, values in extra.items():
        frame[name] = values
    return frame


def score_table(result: ScoreResult, module: Module, per_class: bool = True) -> pd.DataFrame:
    """One module's score file: the all-class rows (label -1) first, then one block per class.

    Selection reads only the rows with label -1 (`kneurons.masking.all_class_rows`).
    """
    layer_type, layer = module
    parts = [score_frame(result.scores[module], layer_type, layer, label=ALL_CLASSES)]
    if per_class:
        for label, values in sorted(result.class_scores[module].items()):
            parts.append(score_frame(values, layer_type, layer, label=label))
    frame = pd.concat(parts, ignore_index=True)
    frame["label"] = frame["label"].astype(np.int64)
    return frame


def random_scores(num_units: int, seed: int, layer_type: str, layer: int) -> np.ndarray:
    """Uniform scores, reproducible per (seed, layer type, layer) and independent of job order."""
    key = [seed, layer, *layer_type.encode()]
    return np.random.default_rng(key).random(num_units)


def pick_examples(frame: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """A seeded sample of `n` rows (all rows if fewer), in a stable order."""
    if n >= len(frame):
        return frame.reset_index(drop=True)
    return frame.sample(n=n, random_state=seed).sort_index().reset_index(drop=True)


def _modules(model: EsmClassifier, layer_types, layers) -> list[Module]:
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
    captured: dict[Module, torch.Tensor] = {}

    def make_hook(key):
        def hook(module, inputs, output):
            # clone: fair-esm scales q_proj's output in place right after this hook.
            captured[key] = output.detach().clone()

        return hook

    handles = [
        get_module(model.encoder, lt, layer).register_forward_hook(make_hook((lt, layer)))
        for lt, layer in modules
    ]
    try:
        for idx, batch in iter_batches(tokens, model.encoder.padding_idx, max_tokens):
            batch = batch.to(device)
            model(batch)
            mask = model.residue_mask(batch).T.unsqueeze(-1).to(torch.float64)  # (T, B, 1)
            n_res = mask.sum(0).clamp(min=1.0)  # (B, 1)
            for key, out in captured.items():
                out = out.to(torch.float64)
                out = out.abs() if statistic == "mean_abs" else out
                per_example[key][idx] = ((out * mask).sum(0) / n_res).cpu().numpy()
    finally:
        for h in handles:
            h.remove()
    return _result(
        per_example,
        labels,
        seconds=time.perf_counter() - start,
        info={"statistic": statistic},
    )


# ---------------------------------------------------------------------------------------------
# fair-esm's transformer layer, batch first. Shapes: x (B, T, E); heads (B, H, T, D); a key mask
# (B or 1, 1, 1, T) True at real tokens, None without padding. Same modules and weights as
# `TransformerLayer.forward` (pre-LN attention with rotary q/k, pre-LN GELU FFN); fair-esm scales
# q by head_dim**-0.5 right after q_proj, which is SDPA's default scale here.


def _key_mask(padding: torch.Tensor | None) -> torch.Tensor | None:
    return None if padding is None else (~padding)[:, None, None, :]


class _Layers:
    """The encoder's layers run batch first, with q/k/v as one matmul (the weights are frozen)."""

    def __init__(self, encoder):
        self.layers = encoder.layers
        self.heads = encoder.attention_heads
        self.qkv = []
        for layer in self.layers:
            attn = layer.self_attn
            projections = (attn.q_proj, attn.k_proj, attn.v_proj)
            weight = torch.cat([p.weight.detach() for p in projections])
            bias = torch.cat([p.bias.detach() for p in projections])
            self.qkv.append((weight, bias))
        self.tables: dict = {}

    def split(self, x: torch.Tensor) -> torch.Tensor:
        b, t, e = x.shape
        return x.view(b, t, self.heads, e // self.heads).transpose(1, 2)

    def rotate(self, index: int, x: torch.Tensor) -> torch.Tensor:
        """fair-esm's rotary embedding of (B, T, E) projections, returned as heads."""
        x = self.split(x)
        length = x.shape[-2]
        key = (index, length, x.device, x.dtype)
        if key not in self.tables:
            inv_freq = self.layers[index].self_attn.rot_emb.inv_freq.to(x.device)
            t = torch.arange(length, device=x.device).type_as(inv_freq)
            freqs = torch.einsum("i,j->ij", t, inv_freq)  # fair-esm repeats it for both halves
            self.tables[key] = (freqs.cos().to(x.dtype), freqs.sin().to(x.dtype))
        cos, sin = self.tables[key]
        # x * cat(cos, cos) + cat(-x2, x1) * cat(sin, sin), written on the two halves
        x1, x2 = x.chunk(2, dim=-1)
        return torch.cat(
            (torch.addcmul(x1 * cos, x2, sin, value=-1.0), torch.addcmul(x2 * cos, x1, sin)),
            dim=-1,
        )

    def project(self, index: int, x: torch.Tensor):
        """Layer norm and the q, k, v projections of the attention block."""
        h = self.layers[index].self_attn_layer_norm(x)
        return F.linear(h, *self.qkv[index]).chunk(3, dim=-1)

    def attend(self, index: int, q_heads, k_heads, v, key_mask) -> torch.Tensor:
        """out_proj(attention) from rotated q/k heads and v (B, T, E)."""
        out = F.scaled_dot_product_attention(q_heads, k_heads, self.split(v), attn_mask=key_mask)
        b, _, t, _ = out.shape
        return self.layers[index].self_attn.out_proj(out.transpose(1, 2).reshape(b, t, -1))

    def ffn(self, index: int, y: torch.Tensor) -> torch.Tensor:
        layer = self.layers[index]
        return y + layer.fc2(F.gelu(layer.fc1(layer.final_layer_norm(y))))

    def forward(self, index: int, x: torch.Tensor, key_mask) -> torch.Tensor:
        q, k, v = self.project(index, x)
        o = self.attend(index, self.rotate(index, q), self.rotate(index, k), v, key_mask)
        return self.ffn(index, x + o)

    def cache(self, index: int, x: torch.Tensor, key_mask) -> dict[str, torch.Tensor]:
        """Every intermediate of one layer that some module's rows resume from."""
        layer = self.layers[index]
        q, k, v = self.project(index, x)
        q_heads, k_heads = self.rotate(index, q), self.rotate(index, k)
        o = self.attend(index, q_heads, k_heads, v, key_mask)
        y = x + o
        f = layer.fc1(layer.final_layer_norm(y))
        g = layer.fc2(F.gelu(f))
        names = ("query", "key", "value", "attn_out", "ffn_in", "ffn_out")
        return {"x": x, "y": y, "q_heads": q_heads, "k_heads": k_heads} | dict(
            zip(names, (q, k, v, o, f, g), strict=True)
        )

    def resume(self, index, cache, layer_type, b: int, scaled, key_mask) -> torch.Tensor:
        """Layer `index`'s output for rows of example `b` whose module `layer_type` outputs
        `scaled` (n, T, units); everything before the module comes from the cache."""
        n = scaled.shape[0]

        def cached(name):
            value = cache[name][b : b + 1]
            return value.expand(n, *value.shape[1:])

        if layer_type in ("query", "key", "value"):
            q = self.rotate(index, scaled) if layer_type == "query" else cached("q_heads")
            k = self.rotate(index, scaled) if layer_type == "key" else cached("k_heads")
            v = scaled if layer_type == "value" else cached("value")
            return self.ffn(index, cache["x"][b] + self.attend(index, q, k, v, key_mask))
        if layer_type == "attn_out":
            return self.ffn(index, cache["x"][b] + scaled)
        if layer_type == "ffn_in":
            return cache["y"][b] + self.layers[index].fc2(F.gelu(scaled))
        if layer_type == "ffn_out":
            return cache["y"][b] + scaled
        raise ValueError(f"unknown layer type {layer_type!r}")


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


Segment = tuple[str, int, int, int]  # (layer type, example row b, first step, end step)


class _Engine:
    """Batches of rows (example, module, alpha) for one model; see the module docstring."""

    def __init__(self, model: EsmClassifier, device: torch.device, autocast: bool):
        self.model = model
        self.device = device
        self.autocast = autocast
        self.net = _Layers(model.encoder)

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
            key_mask = _key_mask(padding)
            inputs = {}
            for index in range(len(self.net.layers)):
                if index in layers:
                    inputs[index] = x
                x = self.net.forward(index, x, key_mask)
            f1 = self._prob(x, batch, label)
        return _Batch(examples, batch, padding, inputs, f1, label)

    @torch.no_grad()
    def layer_cache(self, batch: _Batch, layer: int) -> dict[str, torch.Tensor]:
        with self._autocast():
            return self.net.cache(layer, batch.inputs[layer], _key_mask(batch.padding))

    def run(self, batch: _Batch, layer: int, cache, segments, alphas, need_grad: bool):
        """One batch of rows: every segment is steps [k0, k1) of one (example, module).

        Returns F per row and, with `need_grad`, dF/d(scaled output) per segment (n, T, units).
        """
        leaves, outs, rows = [], [], []
        with torch.set_grad_enabled(need_grad), self._autocast():
            for layer_type, b, k0, k1 in segments:
                activation = cache[layer_type][b]
                scaled = activation * alphas[k0:k1, None, None].to(activation.dtype)
                scaled.requires_grad_(need_grad)
                mask = None if batch.padding is None else _key_mask(batch.padding[b : b + 1])
                outs.append(self.net.resume(layer, cache, layer_type, b, scaled, mask))
                leaves.append(scaled)
                rows += [b] * (k1 - k0)
            rows = torch.tensor(rows, device=self.device)
            x = torch.cat(outs) if len(outs) > 1 else outs[0]
            mask = None if batch.padding is None else _key_mask(batch.padding[rows])
            for index in range(layer + 1, len(self.net.layers)):
                x = self.net.forward(index, x, mask)
            prob = self._prob(x, batch.tokens[rows], batch.labels[rows])
        if not need_grad:
            return prob, None
        return prob.detach(), torch.autograd.grad(prob.sum(), leaves)


def _plan(pairs: list[tuple[str, int]], steps: int, cap: int) -> list[list[Segment]]:
    """Split the rows of (layer type, example row) pairs x steps into passes of <= cap rows."""
    passes, current, used = [], [], 0
    for layer_type, b in pairs:
        k = 0
        while k < steps:
            take = min(steps - k, cap - used)
            current.append((layer_type, b, k, k + take))
            used, k = used + take, k + take
            if used == cap:
                passes.append(current)
                current, used = [], 0
    if current:
        passes.append(current)
    return passes


def _layer_integrals(engine: _Engine, batch: _Batch, layer: int, pairs, alphas, weights, cap):
    """For one batch of examples and one layer, per (layer type, example row b) in `pairs`:
    sum over real tokens of a * sum_k w_k dF/da(alpha_k a), and F(0)."""
    device = engine.device
    cache = engine.layer_cache(batch, layer)
    alphas_t = torch.tensor(alphas, dtype=torch.float32, device=device)
    weights_t = torch.tensor(weights, dtype=torch.float32, device=device)
    zero_step = next((k for k, a in enumerate(alphas) if a == 0.0), None)
    integrals = {pair: 0.0 for pair in pairs}
    f0: dict[tuple[str, int], float] = {}

    for segments in _plan(pairs, len(alphas), cap):
        prob, grads = engine.run(batch, layer, cache, segments, alphas_t, need_grad=True)
        offset = 0
        for (layer_type, b, k0, k1), grad in zip(segments, grads, strict=True):
            # sum_k w_k dF/da_k, then times a and summed over the example's real tokens
            weighted = torch.einsum("ktu,k->tu", grad.float(), weights_t[k0:k1])
            product = cache[layer_type][b].double() * weighted.double()
            if batch.padding is not None:
                product = product[~batch.padding[b]]
            integrals[(layer_type, b)] = integrals[(layer_type, b)] + product.sum(0)
            if zero_step is not None and k0 <= zero_step < k1:
                f0[(layer_type, b)] = float(prob[offset + zero_step - k0])
            offset += k1 - k0
    if zero_step is None:  # F(0) needs rows of its own, forward only
        zero = torch.zeros(1, device=device)
        for segments in _plan(pairs, 1, cap):
            prob, _ = engine.run(batch, layer, cache, segments, zero, need_grad=False)
            f0.update(zip([(lt, b) for lt, b, _, _ in segments], prob.tolist(), strict=True))
    return {pair: value.cpu().numpy() for pair, value in integrals.items()}, f0


def _gradient_scores(
    model: EsmClassifier,
    tokens: Sequence[torch.Tensor],
    labels: Sequence[int],
    pairs: Sequence[tuple[int, Module]],
    alphas: np.ndarray,
    weights: np.ndarray,
    device: torch.device,
    max_tokens: int,
    autocast: bool,
) -> tuple[dict[tuple[int, Module], np.ndarray], dict, dict]:
    """sum_t a * sum_k w_k dF/da(alpha_k a) for every (example, module) pair; F(0), F(1) too.

    Examples are bucketed by length so that one pass holds about `max_tokens` padded tokens
    over all its rows; the rows of an example are split over several passes when it alone
    exceeds the budget (the integral is a sum over rows, so any split is exact).
    """
    engine = _Engine(model, device, autocast)
    wanted: dict[int, dict[int, list[str]]] = {}  # example -> layer -> layer types
    for example, (layer_type, layer) in pairs:
        wanted.setdefault(example, {}).setdefault(layer, []).append(layer_type)
    examples = sorted(wanted)
    per_example = len(alphas) * max(len(t) for e in examples for t in wanted[e].values())
    buckets = length_batches([len(tokens[e]) for e in examples], max(1, max_tokens // per_example))

    ig: dict[tuple[int, Module], np.ndarray] = {}
    f0: dict[tuple[int, Module], float] = {}
    f1: dict[int, float] = {}
    for bucket in buckets:
        members = [examples[i] for i in bucket]
        layers = sorted({layer for e in members for layer in wanted[e]})
        batch = engine.prefix(tokens, labels, members, set(layers))
        f1.update(zip(members, batch.f1.tolist(), strict=True))
        cap = max(1, max_tokens // batch.tokens.shape[1])  # rows per pass
        for layer in layers:
            layer_pairs = [
                (lt, b) for b, e in enumerate(members) for lt in wanted[e].get(layer, [])
            ]
            integrals, zeros = _layer_integrals(
                engine, batch, layer, layer_pairs, alphas, weights, cap
            )
            for (lt, b), values in integrals.items():
                ig[(members[b], (lt, layer))] = values
                f0[(members[b], (lt, layer))] = zeros[(lt, b)]
    return ig, f0, f1


def _gap_frame(pairs, labels, ig, f0, f1, steps: dict) -> pd.DataFrame:
    rows = []
    for example, module in pairs:
        sum_ig = float(ig[(example, module)].sum())
        delta = f1[example] - f0[(example, module)]
        rows.append(
            {
                "example": example,
                "label": int(labels[example]),
                "layer_type": module[0],
                "layer": module[1],
                "steps": steps[(example, module)],
                "f0": f0[(example, module)],
                "f1": f1[example],
                "sum_ig": sum_ig,
                "gap": sum_ig - delta,
            }
        )
    return pd.DataFrame(rows)


def _gradient_method(
    model,
    tokens,
    labels,
    layer_types,
    layers,
    device,
    steps: int,
    quadrature_name: str,
    max_tokens: int,
    autocast: bool,
    gap_tolerance: float | None = None,
    max_steps: int | None = None,
    info: dict | None = None,
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
    device = torch.device(device)
    model.eval()
    requires_grad = [p.requires_grad for p in model.parameters()]
    model.requires_grad_(False)
    try:
        pairs = [(e, m) for e in range(len(tokens)) for m in modules]
        alphas, weights = quadrature(quadrature_name, steps)
        ig, f0, f1 = _gradient_scores(
            model, tokens, labels, pairs, alphas, weights, device, max_tokens, autocast
        )
        used = dict.fromkeys(pairs, steps)
        rerun = 0
        if gap_tolerance is not None:
            limit = max_steps if max_steps is not None else 16 * steps
            current = steps
            pending = _above(pairs, ig, f0, f1, gap_tolerance)
            while pending and current < limit:
                current = min(2 * current, limit)
                rerun += len(pending)
                alphas, weights = quadrature(quadrature_name, current)
                more, more_f0, _ = _gradient_scores(
                    model, tokens, labels, pending, alphas, weights, device, max_tokens, autocast
                )
                ig.update(more)
                f0.update(more_f0)
                used.update(dict.fromkeys(pending, current))
                pending = _above(pending, ig, f0, f1, gap_tolerance)
    finally:
        for p, flag in zip(model.parameters(), requires_grad, strict=True):
            p.requires_grad_(flag)
    per_example = {
        m: np.stack([ig[(e, m)] for e in range(len(tokens))]).astype(np.float64) for m in modules
    }
    gaps = _gap_frame(pairs, labels, ig, f0, f1, used)
    info = dict(info or {})
    info.update(max_tokens=max_tokens, autocast=autocast, reruns=rerun)
    return _result(per_example, labels, gaps=gaps, seconds=time.perf_counter() - start, info=info)


def _above(pairs, ig, f0, f1, tolerance: float) -> list:
    return [
        (e, m) for e, m in pairs if abs(float(ig[(e, m)].sum()) - (f1[e] - f0[(e, m)])) > tolerance
    ]


def integrated_gradients_scores(
    model: EsmClassifier,
    tokens: Sequence[torch.Tensor],
    labels: Sequence[int],
    layer_types: str | Sequence[str],
    layers: Iterable[int] | None = None,
    device: torch.device | str = "cpu",
    *,
    steps: int = 20,
    quadrature: str = "gausslegendre",
    max_tokens: int = 16384,
    gap_tolerance: float | None = None,
    max_steps: int | None = None,
    autocast: bool = False,
) -> ScoreResult:
    """Exact IG of the true-class probability w.r.t. every module of `layer_types` x `layers`.

    `gap_tolerance`: an (example, module) whose |completeness gap| exceeds it is recomputed with
    twice the steps, again and again up to `max_steps` (default 16 x steps); the steps each
    pair finally used are in `gaps["steps"]`. `autocast`: bf16 autocast (meant for CUDA).
    """
    info = {"steps": steps, "quadrature": quadrature, "gap_tolerance": gap_tolerance}
    if gap_tolerance is not None:
        info["max_steps"] = max_steps if max_steps is not None else 16 * steps
    return _gradient_method(
        model,
        tokens,
        labels,
        layer_types,
        layers,
        device,
        steps,
        quadrature,
        max_tokens,
        autocast,
        gap_tolerance,
        max_steps,
        info,
    )


def grad_x_activation_scores(
    model: EsmClassifier,
    tokens: Sequence[torch.Tensor],
    labels: Sequence[int],
    layer_types: str | Sequence[str],
    layers: Iterable[int] | None = None,
    device: torch.device | str = "cpu",
    *,
    max_tokens: int = 16384,
    autocast: bool = False,
) -> ScoreResult:
    """sum over tokens of a_i * dF/da_i at the unmodified network (one backward per module).

    Equal to IG with one right-Riemann step; the completeness gap (against F(1) - F(0)) shows
    how far this first-order estimate is from IG's total.
    """
    return _gradient_method(
        model, tokens, labels, layer_types, layers, device, 1, "riemann_right", max_tokens, autocast
    )


def score_neurons(
    method: str,
    model: EsmClassifier,
    tokens: Sequence[torch.Tensor],
    labels: Sequence[int],
    layer_types: str | Sequence[str],
    layers: Iterable[int] | None = None,
    device: torch.device | str = "cpu",
    params: dict | None = None,
) -> ScoreResult:
    """Dispatch to one method with the config block `scoring.<method>` as keyword arguments."""
    functions = {
        "activation": activation_scores,
        "grad_x_activation": grad_x_activation_scores,
        "integrated_gradients": integrated_gradients_scores,
    }
    if method not in functions:
        raise ValueError(f"unknown scoring method {method!r}; choose one of {', '.join(METHODS)}")
    return functions[method](model, tokens, labels, layer_types, layers, device, **(params or {}))


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
    return summary
