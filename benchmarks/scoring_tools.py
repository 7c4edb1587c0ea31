"""Shared parts of benchmarks/bench_scoring.py (its docstring describes the run): the setup
(examples, model, fitted head), measuring (load, timing, rank agreement, the matmul ceiling; the
FLOPs are in scoring_flops.py), the two baselines (captum, the previous hook engine), printing,
the op profile, and `Bench`, what every section works on."""

from __future__ import annotations

import argparse
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from kneurons.model.batching import tokenize
from kneurons.model.classifier import (
    Architecture,
    EsmClassifier,
    alphabet,
    build_random,
    get_module,
    load_classifier,
)
from kneurons.scoring.quadrature import ATOL, RTOL, completeness_tolerance, quadrature_rule
from kneurons.vocab import LAYER_TYPES

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "swissprot_enzymes.tsv"
AMINO_ACIDS = set("ACDEFGHIKLMNPQRSTVWYXBZUO")


# ---------------------------------------------------------------------------------------------
# Setup


def load_examples(path: Path, n: int, length: int, seed: int):
    """`n` enzymes with one top-level EC class, seeded, cropped N-terminally to `length`."""
    frame = pd.read_csv(path, sep="\t", dtype=str).dropna(subset=["EC number", "Sequence"])
    top = frame["EC number"].str.split(";").map(lambda ecs: {e.strip().split(".")[0] for e in ecs})
    frame = frame[top.map(len) == 1].assign(ec_class=top.map(lambda s: int(next(iter(s)))))
    frame = frame[frame["Sequence"].map(lambda s: set(s) <= AMINO_ACIDS)]
    frame = frame[frame["ec_class"].between(1, 7)]
    sample = frame.sample(n=n, random_state=seed).sort_values("Entry")
    sequences = [s[:length] for s in sample["Sequence"]]
    labels = (sample["ec_class"] - 1).tolist()
    return tokenize(alphabet(), sequences), labels, sample["Entry"].tolist()


def build_model(checkpoint: str | None, num_classes: int, seed: int) -> EsmClassifier:
    if checkpoint:
        model, _ = load_classifier(checkpoint)
        return model.eval()
    torch.manual_seed(seed)
    return EsmClassifier(build_random(Architecture(6, 320, 20), seed=seed), num_classes).eval()


def fair_esm_layers(model: EsmClassifier, x, padding, start: int = 0, stop: int | None = None):
    """fair-esm's own transformer layers [start, stop) on x (T, B, E)."""
    for layer in model.encoder.layers[start:stop]:
        x, _ = layer(x, self_attn_padding_mask=padding, need_head_weights=False)
    return x


@torch.no_grad()
def pooled_features(model: EsmClassifier, tokens) -> torch.Tensor:
    """What the head sees: mean over residues of the final layer-normed representation."""
    out = []
    for tok in tokens:
        batch = tok.unsqueeze(0)
        x, padding = model.embed(batch)
        x = model.encoder.emb_layer_norm_after(fair_esm_layers(model, x, padding)).transpose(0, 1)
        mask = model.residue_mask(batch).unsqueeze(-1).to(x.dtype)
        out.append(((x * mask).sum(1) / mask.sum(1))[0])
    return torch.stack(out)


def fit_head(model: EsmClassifier, tokens, labels, weight_decay: float) -> None:
    """Fit the linear head (L2-regularised logistic regression, L-BFGS) on the encoder's pooled
    features. A random head gives F(alpha) ~ 1/7 and nearly linear in alpha, which flatters any
    quadrature; a fitted head is confident on its training examples, as a fine-tuned classifier
    is on the training examples that scoring uses."""
    features = pooled_features(model, tokens)
    target = torch.tensor(labels)
    head = model.head
    head.requires_grad_(True)
    optimizer = torch.optim.LBFGS(head.parameters(), max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(head(features), target)
        loss = loss + weight_decay * head.weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    head.requires_grad_(False)


# ---------------------------------------------------------------------------------------------
# Measuring


class Load:
    """Load average while a section runs; warns when other processes compete for the cores."""

    def __init__(self, threads: int):
        self.threads = threads
        self.cores = os.cpu_count() or 1
        self.samples: list[float] = []

    def sample(self) -> float:
        value = os.getloadavg()[0]
        self.samples.append(value)
        return value

    def note(self, name: str) -> str:
        value = self.sample()
        busy = value > self.cores + 0.5
        text = f"[load {value:.1f} on {self.cores} cores]"
        if busy:
            text += "  WARNING: other processes compete for the cores; timings are noisy"
        print(f"  {name}: {text}", flush=True)
        return text


@contextmanager
def timed(record: dict, key: str):
    start = time.perf_counter()
    yield
    record[key] = time.perf_counter() - start


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rho: Pearson correlation of average ranks (no scipy needed)."""
    ra = pd.Series(np.asarray(a)).rank().to_numpy()
    rb = pd.Series(np.asarray(b)).rank().to_numpy()
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def top_overlap(a: np.ndarray, b: np.ndarray, fraction: float = 0.1) -> float:
    """Share of b's top `fraction` units that are also in a's top `fraction`."""
    k = max(1, int(np.ceil(fraction * len(a))))
    top_a = set(np.argsort(-np.asarray(a), kind="stable")[:k])
    top_b = set(np.argsort(-np.asarray(b), kind="stable")[:k])
    return len(top_a & top_b) / k


def max_relative_difference(ours: np.ndarray, theirs: np.ndarray) -> float:
    """max |ours - theirs| relative to the module's largest |score| (per-unit ratios blow up
    near zero)."""
    scale = np.abs(theirs).max()
    return float(np.abs(ours - theirs).max() / scale) if scale > 0 else 0.0


def matmul_ceiling(rows: int, embed: int, repeats: int = 20) -> float:
    """FLOP/s of a plain fp32 torch.matmul shaped like the FFN's first projection."""
    a = torch.randn(rows, embed)
    b = torch.randn(embed, 4 * embed)
    for _ in range(3):
        a @ b
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return 2 * rows * embed * 4 * embed / float(np.median(times))


# ---------------------------------------------------------------------------------------------
# Baselines: captum, and this project's previous engine (fair-esm forward + hooks)


class Gate(nn.Module):
    """Captum's layer baseline is the layer's output at the baseline input: with a gate input of 0
    the module outputs zeros, with 1 its activation. Captum puts the batch first, fair-esm's
    layers use (T, B, E); `Restore` turns the output back and copies it (fair-esm scales q in
    place, and captum's substituted output is a leaf)."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.gate = inner, None

    def forward(self, x):
        return (self.inner(x) * self.gate.view(1, -1, 1)).transpose(0, 1)


class Restore(nn.Module):
    def forward(self, x):
        return x.transpose(0, 1).clone()


@contextmanager
def gated(model: EsmClassifier, layer_type: str, layer: int):
    parent = model.encoder.layers[layer]
    *path, attr = LAYER_TYPES[layer_type].split(".")
    for part in path:
        parent = getattr(parent, part)
    gate = Gate(getattr(parent, attr))
    setattr(parent, attr, nn.Sequential(gate, Restore()))
    try:
        yield gate
    finally:
        setattr(parent, attr, gate.inner)


def captum_scores(model, tokens, labels, modules, steps, quadrature):
    """Per module, mean over examples of captum's LayerIntegratedGradients (summed over tokens),
    and per (example index, module) the sum of the example's attributions (for its gap).

    captum's riemann_trapezoid weights are 1/n (halved at both ends), summing to (n-1)/n; the
    trapezoid rule (and this project) uses 1/(n-1). Its attributions are rescaled by n/(n-1)
    here so that the two compute the same integral.
    """
    from captum.attr import LayerIntegratedGradients

    rescale = steps / (steps - 1) if quadrature == "riemann_trapezoid" else 1.0

    model.requires_grad_(False)
    scores, sums = {}, {}
    for layer_type, layer in modules:
        total = 0.0
        with gated(model, layer_type, layer) as gate:

            def forward(gate_value, batch, gate=gate):
                gate.gate = gate_value
                return torch.softmax(model(batch), dim=-1)

            lig = LayerIntegratedGradients(forward, gate)
            for example, (tok, label) in enumerate(zip(tokens, labels, strict=True)):
                attributions = lig.attribute(
                    torch.ones(1),
                    baselines=torch.zeros(1),
                    target=int(label),
                    additional_forward_args=(tok.unsqueeze(0),),
                    n_steps=steps,
                    method=quadrature,
                )
                per_unit = attributions.sum(1).squeeze(0).detach().double()
                total = total + per_unit
                sums[(example, (layer_type, layer))] = float(per_unit.sum()) * rescale
        scores[(layer_type, layer)] = (total / len(tokens)).numpy() * rescale
    return scores, sums


def hook_engine_scores(model, tokens, labels, modules, steps, quadrature):
    """The previous engine (before this benchmark): fair-esm's own forward with a scaling hook,
    prefix caching, one example and one module at a time (its steps are the batch)."""
    alphas_np, weights_np = quadrature_rule(quadrature, steps)
    alphas = torch.tensor([*alphas_np, 0.0, 1.0], dtype=torch.float32)
    weights = torch.tensor([*weights_np, 0.0, 0.0], dtype=torch.float64)
    n_rows = len(alphas)
    model.requires_grad_(False)
    state: dict[str, torch.Tensor] = {}

    def scale_hook(module, inputs, output):
        state["activation"] = output[:, 0].detach().clone()
        scaled = (output.detach() * alphas.view(1, -1, 1)).requires_grad_(True)
        state["scaled"] = scaled
        return scaled.clone()

    totals = {m: 0.0 for m in modules}
    for tok, label in zip(tokens, labels, strict=True):
        batch = tok.unsqueeze(0)
        with torch.no_grad():
            x, padding_mask = model.embed(batch)
            prefix = {0: x}
            for layer in range(model.num_layers - 1):
                prefix[layer + 1] = fair_esm_layers(
                    model, prefix[layer], padding_mask, layer, layer + 1
                )
        for layer_type, layer in modules:
            x_l = prefix[layer].expand(-1, n_rows, -1).contiguous()
            handle = get_module(model.encoder, layer_type, layer).register_forward_hook(scale_hook)
            try:
                logits = model.classify(
                    fair_esm_layers(model, x_l, None, layer), batch.expand(n_rows, -1)
                )
                prob = torch.softmax(logits.float(), dim=-1)[:, int(label)]
                (grad,) = torch.autograd.grad(prob.sum(), state["scaled"])
            finally:
                handle.remove()
            integral = torch.einsum("tku,k->tu", grad.double(), weights)
            totals[(layer_type, layer)] += (state["activation"].double() * integral).sum(0)
    return {m: (t / len(tokens)).numpy() for m, t in totals.items()}


# ---------------------------------------------------------------------------------------------
# Printing


def table(rows: list[dict], columns: list[str] | None = None, floats: str = "{:.3g}") -> None:
    if not rows:
        print("  (nothing)")
        return
    columns = columns or list(rows[0])
    text = [[c for c in columns]]
    for row in rows:
        cells = []
        for c in columns:
            value = row.get(c, "")
            if isinstance(value, float):
                value = "nan" if np.isnan(value) else floats.format(value)
            cells.append(str(value))
        text.append(cells)
    widths = [max(len(r[i]) for r in text) for i in range(len(columns))]
    for i, r in enumerate(text):
        print("  " + "  ".join(cell.rjust(w) for cell, w in zip(r, widths, strict=True)))
        if i == 0:
            print("  " + "  ".join("-" * w for w in widths))


def section(title: str) -> None:
    print(f"\n== {title} " + "=" * max(0, 90 - len(title)), flush=True)


def compare(ours: dict, theirs: dict) -> dict:
    rhos = [spearman(ours[m], theirs[m]) for m in theirs]
    diffs = [max_relative_difference(ours[m], theirs[m]) for m in theirs]
    return {
        "spearman_min": float(np.nanmin(rhos)),
        "spearman_median": float(np.nanmedian(rhos)),
        "max_rel_diff": float(np.max(diffs)),
    }


# ---------------------------------------------------------------------------------------------
# Where the time goes

CATEGORIES = [
    ("matmul (projections, FFN)", ("aten::mm", "aten::addmm", "aten::bmm", "aten::matmul")),
    ("attention (fused / softmax)", ("scaled_dot_product", "softmax")),
    (
        "elementwise (rotary, GELU, norms, adds)",
        (
            "aten::mul",
            "aten::add",
            "aten::sub",
            "aten::div",
            "aten::neg",
            "aten::gelu",
            "aten::erf",
            "aten::pow",
            "aten::exp",
            "addcmul",
            "layer_norm",
            "aten::masked_fill",
            "aten::fill_",
            "aten::sum",
            "aten::mean",
            "aten::where",
        ),
    ),
    ("copies (cat, copy, gather)", ("aten::copy_", "aten::cat", "aten::index", "aten::clone")),
]


def time_profile(fn) -> dict[str, float]:
    """Self CPU time per category of op (torch.profiler), as fractions of the total."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    totals = dict.fromkeys([c for c, _ in CATEGORIES] + ["other"], 0.0)
    for event in prof.key_averages():
        name = event.key
        category = next((c for c, keys in CATEGORIES if any(k in name for k in keys)), "other")
        totals[category] += event.self_cpu_time_total
    whole = sum(totals.values()) or 1.0
    return {c: t / whole for c, t in totals.items()}


def policy_row(name: str, gaps: pd.DataFrame, seconds_per_example: float) -> dict:
    """One row of the policy table: time, and how the (example, module) gaps meet the
    tolerance (the project's default atol + rtol |F(1) - F(0)|)."""
    delta = (gaps["f1"] - gaps["f0"]).abs()
    within = gaps["gap"].abs() <= completeness_tolerance(delta, RTOL, ATOL)
    relative = gaps["gap"].abs() / delta.where(delta > 0)
    return {
        "run": name,
        "s/example": seconds_per_example,
        "within tol": f"{int(within.sum())}/{len(gaps)}",
        "above": int((~within).sum()),
        "max |gap|/|F1-F0|": float(relative.max()),
        "mean nodes": float(gaps["steps"].mean()),
    }


def pick(text: str, everything: list) -> list:
    if text == "all":
        return list(everything)
    return [type(everything[0])(x) for x in text.split(",")]


# ---------------------------------------------------------------------------------------------
# What the sections share


@dataclass
class Bench:
    """The run's arguments, model, examples and modules, the load monitor, and what sections
    leave behind: the engine sweep's results (for the methods section) and verdict lines."""

    args: argparse.Namespace
    model: EsmClassifier
    tokens: list
    labels: list
    layer_types: list[str]
    layers: list[int]
    modules: list[tuple[str, int]]
    load: Load
    quadratures: list[str]
    ceilings: list[float] = field(default_factory=list)
    results: dict = field(default_factory=dict)
    verdict: list[str] = field(default_factory=list)

    @property
    def lengths(self) -> list[int]:
        return [len(t) for t in self.tokens]

    def ceiling(self) -> float:
        """The best the machine showed so far (the load changes during the run)."""
        e = self.model.encoder.embed_dim
        self.ceilings.append(matmul_ceiling(self.args.steps * max(self.lengths), e))
        return max(self.ceilings)
