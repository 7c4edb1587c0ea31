"""The sections of benchmarks/bench_scoring.py that study the engine on its own: its levers,
steps vs accuracy, the cheaper methods against IG, and where the time goes (the module docstring
of bench_scoring.py describes the run; its `main` calls these)."""

from __future__ import annotations

import time
from contextlib import nullcontext

import numpy as np
import torch
from scoring_tools import (
    CATEGORIES,
    Bench,
    captum_scores,
    compare,
    hook_engine_scores,
    pick,
    section,
    spearman,
    table,
    time_profile,
    top_overlap,
)

from kneurons.scoring import integrals
from kneurons.scoring.integrals import gradient_integrals
from kneurons.scoring.methods import (
    activation_scores,
    grad_x_activation_scores,
    integrated_gradients_scores,
)
from kneurons.scoring.quadrature import ATOL, RTOL, completeness_tolerance, quadrature_rule


def levers_section(bench: Bench) -> None:
    """What each lever of the engine is worth: captum, the previous engine and the
    engine with one lever after another, on a small workload."""
    args, model, tokens, labels = bench.args, bench.model, bench.tokens, bench.labels
    layer_types, load, quadratures = bench.layer_types, bench.load, bench.quadratures
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
        frozen = integrals._frozen
        integrals._frozen = lambda _model: nullcontext()  # the engine freezes them otherwise
        try:
            for lt in layer_types:
                pairs = [(i, (lt, layer)) for i in range(n) for layer in lever_layers]
                gradient_integrals(
                    model, sub_tokens, sub_labels, pairs, alphas, weights, "cpu", one_example
                )
        finally:
            integrals._frozen = frozen
            model.requires_grad_(False)

    run(
        "captum, per module and example",
        lambda: captum_scores(model, sub_tokens, sub_labels, lever_modules, args.steps, quadrature),
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
        [{"variant": name, "s/example": t / n, "speedup vs captum": base / t} for name, t in runs]
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


def accuracy_section(bench: Bench) -> None:
    """Steps vs accuracy: each quadrature at each step count, and the adaptive policy,
    against a Gauss-Legendre reference with many steps."""
    args, model, tokens, labels = bench.args, bench.model, bench.tokens, bench.labels
    layer_types, load, quadratures = bench.layer_types, bench.load, bench.quadratures
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
            within = gaps <= completeness_tolerance(delta, RTOL, ATOL)
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
        f"  tolerance: |gap| <= {ATOL:g} + {RTOL:g} x |F(1) - F(0)| per "
        "(example, module); 'within tol' is the share of pairs that meet it"
    )
    load.note("accuracy")


def methods_section(bench: Bench) -> None:
    """The cheaper methods (grad x activation, activation) against the engine sweep's
    IG scores."""
    args, model, tokens, labels = bench.args, bench.model, bench.tokens, bench.labels
    layer_types, layers, modules, load = bench.layer_types, bench.layers, bench.modules, bench.load
    results = bench.results
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
    rows.append({"method": "random (reference)", "top-10% overlap mean": float(np.mean(overlaps))})
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


def profile_section(bench: Bench) -> None:
    """Where the time goes: self CPU time by kind of op, the engine and captum on
    one example."""
    args, model, tokens, labels = bench.args, bench.model, bench.tokens, bench.labels
    layer_types, layers, quadratures = bench.layer_types, bench.layers, bench.quadratures
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
