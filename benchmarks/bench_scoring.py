"""Benchmark of neuron scoring: the IG engine against captum, its levers, steps vs accuracy, and
the cheaper methods against IG. One process; prints tables (README, "Scoring methods").

    python benchmarks/bench_scoring.py            # the full run (about 1-2 h on 2 quiet cores)
    python benchmarks/bench_scoring.py --quick    # a few minutes: fewer examples and modules
    python benchmarks/bench_scoring.py --sections policy --baseline-examples 2   # issue 14's check
    python benchmarks/bench_scoring.py --sections policy --checkpoint model.pt --data uniprot.tsv
        # the same on a trained classifier (its --data must hold its own classes)

Setup (issue 4): ESM-2 8M architecture with random weights (or --checkpoint, a fine-tuned
classifier), training-size sample of real Swiss-Prot enzymes cropped to 256 residues, 20 steps,
Gauss-Legendre and Riemann-trapezoid, 2 torch threads. Captum's `LayerIntegratedGradients` runs
as its documentation recommends: one module at a time, all steps of an example in one internal
batch. Timings are wall-clock; the load average is printed, and a warning when other processes
compete for the cores.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from contextlib import contextmanager, nullcontext
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
from kneurons.scoring import engine as scoring
from kneurons.scoring.engine import (
    activation_scores,
    grad_x_activation_scores,
    gradient_integrals,
    integrated_gradients_scores,
    quadrature_rule,
)
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


def useful_flops(model: EsmClassifier, lengths, modules, steps: int) -> float:
    """Model FLOPs that exact per-module IG needs: for every (example, module at layer l) and
    every step, layers l..L-1 forward and backward to the module's output (input gradients only;
    the parameters are frozen). Matmuls only: per token and layer, projections + FFN 24 E^2
    forward and 24 E^2 backward, attention 4 T E forward and 8 T E backward."""
    e, num_layers = model.encoder.embed_dim, model.num_layers
    total = 0.0
    for t in lengths:
        per_token_layer = 48 * e * e + 12 * t * e
        for _, layer in modules:
            total += steps * t * (num_layers - layer) * per_token_layer
    return total


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


# ---------------------------------------------------------------------------------------------
# Main


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", default=str(DATA), help="UniProt TSV of enzymes")
    p.add_argument("--checkpoint", help="a kneurons classifier (default: random-init ESM-2 8M)")
    p.add_argument("--examples", type=int, default=16, help="sequences for the engine sweep")
    p.add_argument("--length", type=int, default=256, help="residues kept per sequence")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--fit-examples",
        type=int,
        default=128,
        help="other sequences the random model's head is fitted on (0: keep the random head)",
    )
    p.add_argument("--weight-decay", type=float, default=1e-3, help="L2 of the head fit")
    p.add_argument("--max-tokens", type=int, default=8192, help="engine token budget per pass")
    p.add_argument("--quadratures", default="gausslegendre,riemann_trapezoid")
    p.add_argument(
        "--sweep-quadratures",
        default="gausslegendre",
        help="quadratures of the all-examples engine sweep (both run in the captum section)",
    )
    p.add_argument("--layer-types", default="all", help="comma list, or all")
    p.add_argument("--layers", default="all", help="comma list, or all")
    p.add_argument(
        "--baseline-examples",
        type=int,
        default=2,
        help="examples captum runs on (its speed per example does not depend on how many)",
    )
    p.add_argument("--lever-examples", type=int, default=2)
    p.add_argument("--lever-layers", default="0", help="layers of the lever workload")
    p.add_argument("--accuracy-examples", type=int, default=2)
    p.add_argument("--accuracy-layers", default="0,5")
    p.add_argument("--accuracy-steps", default="4,8,16,32")
    p.add_argument("--reference-steps", type=int, default=256)
    p.add_argument(
        "--policy-steps", default="4,16", help="first nodes of the adaptive rows (accuracy)"
    )
    p.add_argument(
        "--sections",
        default="engine,captum,policy,levers,accuracy,methods,profile",
        help="which parts to run",
    )
    p.add_argument("--quick", action="store_true", help="a small run to check the script")
    args = p.parse_args(argv)
    if args.quick:
        args.examples, args.baseline_examples, args.lever_examples = 3, 1, 2
        args.fit_examples = 32
        args.accuracy_examples, args.reference_steps = 1, 64
        args.accuracy_steps, args.accuracy_layers = "4,8,16", "0"
        args.layer_types = "query,ffn_in" if args.layer_types == "all" else args.layer_types
        args.layers = "0,5" if args.layers == "all" else args.layers
    return args


def policy_row(name: str, gaps: pd.DataFrame, seconds_per_example: float) -> dict:
    """One row of the policy table: time, and how the (example, module) gaps meet the
    tolerance (the project's default atol + rtol |F(1) - F(0)|)."""
    delta = (gaps["f1"] - gaps["f0"]).abs()
    within = gaps["gap"].abs() <= scoring.completeness_tolerance(delta, scoring.RTOL, scoring.ATOL)
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


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    load = Load(args.threads)
    sections = set(args.sections.split(","))
    quadratures = args.quadratures.split(",")

    tokens, labels, _ = load_examples(
        Path(args.data), args.examples + args.fit_examples, args.length, args.seed
    )
    fit_tokens, fit_labels = tokens[args.examples :], labels[args.examples :]
    tokens, labels = tokens[: args.examples], labels[: args.examples]
    model = build_model(args.checkpoint, 7, args.seed)
    if not args.checkpoint and args.fit_examples:
        fit_head(model, tokens + fit_tokens, labels + fit_labels, args.weight_decay)
    layer_types = pick(args.layer_types, list(LAYER_TYPES))
    layers = pick(args.layers, list(range(model.num_layers)))
    modules = [(lt, layer) for layer in layers for lt in layer_types]
    lengths = [len(t) for t in tokens]
    e = model.encoder.embed_dim

    section("Setup")
    print(
        f"  torch {torch.__version__}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, torch threads {torch.get_num_threads()}"
    )
    arch = f"{model.num_layers} layers, width {e}, {model.encoder.attention_heads} heads"
    print(f"  model: {args.checkpoint or 'ESM-2 8M architecture, random init'} ({arch})")
    print(
        f"  {len(tokens)} sequences, tokens per sequence {min(lengths)}-{max(lengths)} "
        f"(BOS/EOS included), labels {sorted(set(labels))}; steps {args.steps}; "
        f"{len(modules)} modules ({', '.join(layer_types)} x layers {layers})"
    )
    if not args.checkpoint and args.fit_examples:
        with torch.no_grad():
            logits = model.head(pooled_features(model, tokens))
        f1 = torch.softmax(logits, -1)[torch.arange(len(labels)), torch.tensor(labels)]
        accuracy = (logits.argmax(1) == torch.tensor(labels)).float().mean()
        print(
            f"  head fitted on {len(tokens) + len(fit_tokens)} sequences (L2 "
            f"{args.weight_decay}): on the benchmark sequences accuracy {accuracy:.2f}, "
            f"F(1) = p(true class) mean {f1.mean():.2f}, range {f1.min():.2f}-{f1.max():.2f}"
        )
    load.note("start")
    ceilings = [matmul_ceiling(args.steps * max(lengths), e)]

    def ceiling() -> float:
        """The best the machine showed so far (the load changes during the run)."""
        ceilings.append(matmul_ceiling(args.steps * max(lengths), e))
        return max(ceilings)

    print(
        f"  ceiling: torch.matmul ({args.steps * max(lengths)} x {e}) @ ({e} x {4 * e}) fp32: "
        f"{ceilings[0] / 1e9:.1f} GFLOP/s (measured again during the run; the best counts)"
    )

    results: dict = {}
    verdict: list[str] = []

    # -- engine, full sweep ---------------------------------------------------------------
    if "engine" in sections or "methods" in sections:
        section("Engine: full sweep, all examples")
        rows = []
        for quadrature in args.sweep_quadratures.split(","):
            result = integrated_gradients_scores(
                model,
                tokens,
                labels,
                layer_types,
                layers,
                adaptive=False,
                steps=args.steps,
                quadrature=quadrature,
                max_tokens=args.max_tokens,
            )
            results[("engine", quadrature)] = result
            flops = useful_flops(model, lengths, modules, args.steps)
            rows.append(
                {
                    "quadrature": quadrature,
                    "examples": len(tokens),
                    "s/example": result.seconds / len(tokens),
                    "GFLOP/s": flops / result.seconds / 1e9,
                    "of ceiling": flops / result.seconds / ceiling(),
                    "mean|gap|": float(result.gaps["gap"].abs().mean()),
                    "mean|F1-F0|": float((result.gaps["f1"] - result.gaps["f0"]).abs().mean()),
                }
            )
            load.note(quadrature)
        table(rows)
        best = max(r["of ceiling"] for r in rows)
        verdict.append(
            f"engine at {best:.0%} of the matmul ceiling (target >= 50%): "
            + ("met" if best >= 0.5 else "NOT met, see 'Where the time goes'")
        )

    # -- captum ---------------------------------------------------------------------------
    if "captum" in sections:
        section(f"Captum LayerIntegratedGradients vs engine ({args.baseline_examples} examples)")
        sub_tokens, sub_labels = tokens[: args.baseline_examples], labels[: args.baseline_examples]
        n = len(sub_tokens)
        rows = []
        for quadrature in quadratures:
            times: dict = {}
            with timed(times, "captum"):
                theirs, _ = captum_scores(
                    model, sub_tokens, sub_labels, modules, args.steps, quadrature
                )
            with timed(times, "engine"):
                ours = integrated_gradients_scores(
                    model,
                    sub_tokens,
                    sub_labels,
                    layer_types,
                    layers,
                    adaptive=False,
                    steps=args.steps,
                    quadrature=quadrature,
                    max_tokens=args.max_tokens,
                ).scores
            cmp = compare(ours, theirs)
            flops = useful_flops(model, [len(t) for t in sub_tokens], modules, args.steps)
            rows.append(
                {
                    "quadrature": quadrature,
                    "captum s/ex": times["captum"] / n,
                    "engine s/ex": times["engine"] / n,
                    "ratio": times["captum"] / times["engine"],
                    "captum GFLOP/s": flops / times["captum"] / 1e9,
                    "engine GFLOP/s": flops / times["engine"] / 1e9,
                    "Spearman min": cmp["spearman_min"],
                    "max rel diff": cmp["max_rel_diff"],
                }
            )
            load.note(quadrature)
            results[("captum", quadrature)] = theirs
        table(rows, floats="{:.4g}")
        worst = min(r["Spearman min"] for r in rows)
        ratio = min(r["ratio"] for r in rows)
        verdict.append(
            f"engine vs captum: {ratio:.2f}x faster (target >= 2x): "
            + ("met" if ratio >= 2 else "NOT met")
            + f"; per-module Spearman >= {worst:.6f} (target >= 0.999): "
            + ("met" if worst >= 0.999 else "NOT met")
        )

    # -- the accuracy policy at full sweep, beside captum ----------------------------------
    if "policy" in sections:
        sub_tokens, sub_labels = tokens[: args.baseline_examples], labels[: args.baseline_examples]
        n = len(sub_tokens)
        section(
            f"Full sweep at the accuracy policy ({n} examples x {len(modules)} modules): the "
            "adaptive engine vs captum at 20 trapezoid steps"
        )
        rows, policy = [], {}
        runs = [
            ("engine, adaptive (default policy)", {}),
            ("engine, 16 Gauss-Legendre steps, fixed", {"adaptive": False, "steps": 16}),
        ]
        for name, options in runs:
            result = integrated_gradients_scores(
                model, sub_tokens, sub_labels, layer_types, layers, max_tokens=args.max_tokens,
                **options,
            )  # fmt: skip
            policy[name] = result
            rows.append(policy_row(name, result.gaps, result.seconds / n))
            load.note(name)
        reference = policy[runs[0][0]].gaps
        start = time.perf_counter()
        _, sums = captum_scores(model, sub_tokens, sub_labels, modules, 20, "riemann_trapezoid")
        seconds = (time.perf_counter() - start) / n
        theirs = reference.assign(
            sum_ig=[sums[(e, (lt, la))] for e, lt, la in
                    reference[["example", "layer_type", "layer"]].itertuples(index=False)],
            steps=20, panels=1,
        )  # fmt: skip
        theirs["gap"] = theirs["sum_ig"] - (theirs["f1"] - theirs["f0"])
        rows.append(
            policy_row("captum LayerIntegratedGradients, 20 trapezoid steps", theirs, seconds)
        )
        load.note("captum")
        table(rows, floats="{:.4g}")
        by_type = (
            policy[runs[0][0]].gaps.groupby("layer_type")[["steps", "panels"]].agg(["mean", "max"])
        )
        print(
            "  adaptive engine, nodes and panels per (example, module) by layer type (mean, max):"
        )
        for layer_type, rec in by_type.iterrows():
            nodes, panels = rec["steps"], rec["panels"]
            print(
                f"    {layer_type}: nodes {nodes['mean']:.1f}, {int(nodes['max'])}; "
                f"panels {panels['mean']:.2f}, {int(panels['max'])}"
            )
        print(
            f"  tolerance per (example, module): |gap| <= {scoring.ATOL:g} + {scoring.RTOL:g} x "
            "|F(1) - F(0)|; F(0) and F(1) from the engine (captum's baseline is the same: the "
            "module's output times 0)"
        )
        best = rows[0]
        full = len(modules) == len(LAYER_TYPES) * model.num_layers
        judged = ("met" if best["s/example"] <= 10 else "NOT met") if full else "not judged"
        verdict.append(
            f"{'full sweep' if full else f'sweep of {len(modules)} modules (not the full one)'}"
            f" at the policy: {best['s/example']:.1f} s/example (target for the full sweep "
            f"<= 10 s): {judged}"
            + f"; pairs within tolerance {best['within tol']}: "
            + ("all" if best["above"] == 0 else f"{best['above']} above")
            + f"; captum at 20 trapezoid steps {rows[-1]['s/example']:.1f} s/example, "
            + f"{rows[-1]['above']} pairs above"
        )

    # -- levers ---------------------------------------------------------------------------
    if "levers" in sections:
        lever_layers = pick(args.lever_layers, list(range(model.num_layers)))
        lever_modules = [(lt, layer) for layer in lever_layers for lt in layer_types]
        sub_tokens, sub_labels = tokens[: args.lever_examples], labels[: args.lever_examples]
        n, quadrature = len(sub_tokens), quadratures[0]
        section(
            f"Levers ({n} examples x {len(lever_modules)} modules at layers {lever_layers}, "
            f"{quadrature}, {args.steps} steps)"
        )
        one_example = args.steps * max(len(t) for t in sub_tokens)
        runs = []

        def run(name, fn):
            start = time.perf_counter()
            fn()
            runs.append((name, time.perf_counter() - start))
            load.note(name)

        def per_module(max_tokens, **kw):
            for lt in layer_types:
                integrated_gradients_scores(
                    model,
                    sub_tokens,
                    sub_labels,
                    lt,
                    lever_layers,
                    adaptive=False,
                    steps=args.steps,
                    quadrature=quadrature,
                    max_tokens=max_tokens,
                    **kw,
                )

        def unfrozen():
            alphas, weights = quadrature_rule(quadrature, args.steps)
            model.requires_grad_(True)
            frozen = scoring._frozen
            scoring._frozen = lambda _model: nullcontext()  # the engine freezes them otherwise
            try:
                for lt in layer_types:
                    pairs = [(i, (lt, layer)) for i in range(n) for layer in lever_layers]
                    gradient_integrals(
                        model, sub_tokens, sub_labels, pairs, alphas, weights, "cpu", one_example
                    )
            finally:
                scoring._frozen = frozen
                model.requires_grad_(False)

        run(
            "captum, per module and example",
            lambda: captum_scores(
                model, sub_tokens, sub_labels, lever_modules, args.steps, quadrature
            ),
        )
        run(
            "previous engine: fair-esm forward + hook, prefix cache",
            lambda: hook_engine_scores(
                model, sub_tokens, sub_labels, lever_modules, args.steps, quadrature
            ),
        )
        run("engine, per module and example, parameters NOT frozen", unfrozen)
        run(
            "engine, per module and example (own layers, prefix cache)",
            lambda: per_module(one_example),
        )
        run(
            f"engine, per module, examples batched ({4 * args.max_tokens} tokens)",
            lambda: per_module(4 * args.max_tokens),
        )
        for budget in sorted({4096, args.max_tokens, 4 * args.max_tokens}):
            run(
                f"engine, modules of a layer fused ({budget} tokens)",
                lambda budget=budget: integrated_gradients_scores(
                    model,
                    sub_tokens,
                    sub_labels,
                    layer_types,
                    lever_layers,
                    adaptive=False,
                    steps=args.steps,
                    quadrature=quadrature,
                    max_tokens=budget,
                ),
            )
        base = runs[0][1]
        table(
            [
                {"variant": name, "s/example": t / n, "speedup vs captum": base / t}
                for name, t in runs
            ]
        )
        # no_grad for the prefix (and the F(0) rows): a plain forward of one example, recording
        # autograd (parameters trainable) or not
        prefix_times = {}
        for grad in (True, False):
            model.requires_grad_(grad)
            start = time.perf_counter()
            with torch.set_grad_enabled(grad):
                for tok in sub_tokens:
                    model(tok.unsqueeze(0))
            prefix_times[grad] = (time.perf_counter() - start) / n
        print(
            f"  prefix forward per example: {prefix_times[True]:.3f} s recording autograd, "
            f"{prefix_times[False]:.3f} s under no_grad with frozen parameters"
        )

    # -- steps vs accuracy ----------------------------------------------------------------
    if "accuracy" in sections:
        acc_layers = pick(args.accuracy_layers, list(range(model.num_layers)))
        acc_modules = [(lt, layer) for layer in acc_layers for lt in layer_types]
        sub_tokens, sub_labels = tokens[: args.accuracy_examples], labels[: args.accuracy_examples]
        section(
            f"Steps vs accuracy ({len(sub_tokens)} examples x {len(acc_modules)} modules at "
            f"layers {acc_layers}; reference: Gauss-Legendre, {args.reference_steps} steps)"
        )
        reference = integrated_gradients_scores(
            model,
            sub_tokens,
            sub_labels,
            layer_types,
            acc_layers,
            adaptive=False,
            steps=args.reference_steps,
            quadrature="gausslegendre",
            max_tokens=args.max_tokens,
        )
        ref_delta = (reference.gaps["f1"] - reference.gaps["f0"]).abs()
        print(
            f"  reference: mean |gap| {reference.gaps['gap'].abs().mean():.2e}, "
            f"mean |F1-F0| {ref_delta.mean():.2e}"
        )
        rows = []
        for quadrature in quadratures:
            for steps in [int(s) for s in args.accuracy_steps.split(",")]:
                result = integrated_gradients_scores(
                    model,
                    sub_tokens,
                    sub_labels,
                    layer_types,
                    acc_layers,
                    adaptive=False,
                    steps=steps,
                    quadrature=quadrature,
                    max_tokens=args.max_tokens,
                )
                gaps = result.gaps["gap"].abs()
                delta = (result.gaps["f1"] - result.gaps["f0"]).abs()
                cmp = compare(result.scores, reference.scores)
                within = gaps <= scoring.completeness_tolerance(delta, scoring.RTOL, scoring.ATOL)
                rows.append(
                    {
                        "quadrature": quadrature,
                        "steps": steps,
                        "mean|gap|": float(gaps.mean()),
                        "max|gap|": float(gaps.max()),
                        "gap/|F1-F0|": float(gaps.sum() / delta.sum()),
                        "within tol": float(within.mean()),
                        "Spearman min": cmp["spearman_min"],
                        "Spearman median": cmp["spearman_median"],
                        "max rel diff": cmp["max_rel_diff"],
                        "s/example": result.seconds / len(sub_tokens),
                    }
                )
        # the accuracy policy: Gauss-Legendre from `steps` nodes, the panels of a pair's path
        # halved until |gap| <= ATOL + RTOL |F(1) - F(0)| or max_steps, from each start
        for start in [int(s) for s in args.policy_steps.split(",")]:
            adaptive = integrated_gradients_scores(
                model, sub_tokens, sub_labels, layer_types, acc_layers, steps=start,
                max_tokens=args.max_tokens,
            )  # fmt: skip
            gaps = adaptive.gaps["gap"].abs()
            delta = (adaptive.gaps["f1"] - adaptive.gaps["f0"]).abs()
            cmp = compare(adaptive.scores, reference.scores)
            rows.append(
                {
                    "quadrature": f"adaptive from {start}",
                    "steps": f"{start}-{int(adaptive.gaps['steps'].max())}",
                    "mean|gap|": float(gaps.mean()),
                    "max|gap|": float(gaps.max()),
                    "gap/|F1-F0|": float(gaps.sum() / delta.sum()),
                    "within tol": 1 - adaptive.info["n_above_tolerance"] / len(adaptive.gaps),
                    "Spearman min": cmp["spearman_min"],
                    "Spearman median": cmp["spearman_median"],
                    "max rel diff": cmp["max_rel_diff"],
                    "s/example": adaptive.seconds / len(sub_tokens),
                }
            )
        table(rows)
        steps_used = adaptive.gaps.groupby("layer_type")["steps"].agg(["mean", "max"])
        print(f"  adaptive from {start}: nodes by layer type (mean, max):")
        for layer_type, rec in steps_used.iterrows():
            print(f"    {layer_type}: {rec['mean']:.1f}, {int(rec['max'])}")
        print(
            f"  tolerance: |gap| <= {scoring.ATOL:g} + {scoring.RTOL:g} x |F(1) - F(0)| per "
            "(example, module); 'within tol' is the share of pairs that meet it"
        )
        load.note("accuracy")

    # -- cheaper methods ------------------------------------------------------------------
    if "methods" in sections:
        quadrature = args.sweep_quadratures.split(",")[0]
        ig = results[("engine", quadrature)]
        section(f"Cheaper methods vs IG ({quadrature}, {args.steps} steps; {len(tokens)} examples)")
        others = {
            "grad_x_activation": grad_x_activation_scores(
                model, tokens, labels, layer_types, layers, max_tokens=args.max_tokens
            ),
            "activation mean_abs": activation_scores(
                model, tokens, labels, layer_types, layers, statistic="mean_abs"
            ),
            "activation mean": activation_scores(
                model, tokens, labels, layer_types, layers, statistic="mean"
            ),
        }
        rng = np.random.default_rng(0)
        rows = [
            {
                "method": "integrated_gradients",
                "s/example": ig.seconds / len(tokens),
                "Spearman median": 1.0,
                "Spearman min": 1.0,
                "top-10% overlap mean": 1.0,
                "top-10% overlap min": 1.0,
            }
        ]
        for name, result in others.items():
            rhos = [spearman(result.scores[m], ig.scores[m]) for m in modules]
            overlaps = [top_overlap(result.scores[m], ig.scores[m]) for m in modules]
            rows.append(
                {
                    "method": name,
                    "s/example": result.seconds / len(tokens),
                    "Spearman median": float(np.nanmedian(rhos)),
                    "Spearman min": float(np.nanmin(rhos)),
                    "top-10% overlap mean": float(np.mean(overlaps)),
                    "top-10% overlap min": float(np.min(overlaps)),
                }
            )
        overlaps = [top_overlap(rng.random(len(ig.scores[m])), ig.scores[m]) for m in modules]
        rows.append(
            {"method": "random (reference)", "top-10% overlap mean": float(np.mean(overlaps))}
        )
        table(rows)
        by_type = []
        for lt in layer_types:
            mods = [m for m in modules if m[0] == lt]
            row = {"layer type": lt}
            for name, result in others.items():
                row[f"{name} rho"] = float(
                    np.nanmedian([spearman(result.scores[m], ig.scores[m]) for m in mods])
                )
            by_type.append(row)
        print("  median Spearman with IG per layer type:")
        table(by_type)
        load.note("methods")

    # -- where the time goes --------------------------------------------------------------
    if "profile" in sections:
        section("Where the time goes (self CPU time by kind of op, one example)")
        layer = layers[0]
        lt = layer_types[0]
        quadrature = quadratures[0]
        profiles = {
            f"engine, {len(layer_types)} modules of layer {layer}": time_profile(
                lambda: integrated_gradients_scores(
                    model,
                    tokens[:1],
                    labels[:1],
                    layer_types,
                    [layer],
                    adaptive=False,
                    steps=args.steps,
                    quadrature=quadrature,
                    max_tokens=args.max_tokens,
                )
            ),
            f"captum, {lt} layer {layer}": time_profile(
                lambda: captum_scores(
                    model, tokens[:1], labels[:1], [(lt, layer)], args.steps, quadrature
                )
            ),
        }
        rows = [
            {"kind of op": c, **{k: f"{v[c]:.0%}" for k, v in profiles.items()}}
            for c in [c for c, _ in CATEGORIES] + ["other"]
        ]
        table(rows)
        print(
            "  Only the matmul share runs near the ceiling; attention (head size 16) and the "
            "memory-bound\n  elementwise ops (rotary, GELU, norms, residual adds) run far "
            "below it on a CPU."
        )

    section("Verdict")
    for line in verdict:
        print(f"  {line}")
    peak = max(load.samples) if load.samples else 0.0
    print(
        f"  highest load average seen: {peak:.1f} on {load.cores} cores"
        + ("  (busy machine: timings are noisy)" if peak > load.cores + 0.5 else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
