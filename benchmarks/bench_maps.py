"""Benchmark of the residue maps of one layer type (kneurons.residues.maps): the selections of one
map_residues job mapped together against one selection per call, in one process.

    python benchmarks/bench_maps.py                          # 8M shape, the planted-motif settings
    python benchmarks/bench_maps.py --arch 2,32,4 --n 4      # the tiny synthetic config's shape
    python benchmarks/bench_maps.py --layer-type ffn_in --selections 10

Setup: a random-init ESM-2 classifier of `--arch` (layers, width, heads; default the 8M shape),
`--n` random sequences of `--min-length` to `--max-length` residues (the planted-motif config's
20 sequences of 60-120), `--selections` random selections of `--layer-type` keeping `--keep` of
its units over all layers (5: the planted-motif config's two methods and three random seeds at
one retention level), the maps' accuracy policy of config/synthetic.yaml (8 Gauss-Legendre nodes,
rtol 0.01, atol 1e-4, up to 256 nodes), `--threads` torch threads, CPU, fp32.

Timed, best of `--repeats`:
- baseline, "one selection per call, one forward per sequence": `residue_maps` once per
  selection (what a map_residues job did when it mapped one selection): per selection an IG run
  of its own and one forward pass per sequence for the activation map;
- batched, "one call per layer type": `residue_maps_of_selections` over all selections (what a
  job does now): activation maps from one forward per length bucket for all selections, IG
  integrals of every selection in one engine run, identical masks computed once.
Both parts are also timed alone (activation maps; IG maps). Job start-up and model load, which
the baseline paid once per selection in its own job, are not in these figures: a run's
benchmark files hold them (`benchmarks/run_costs.py`). The largest difference between the two
results (activation and IG maps, over all selections and residues) is printed beside the times.
"""

from __future__ import annotations

import argparse
import random
import time

import numpy as np
import pandas as pd
import torch

from kneurons.model.batching import tokenize
from kneurons.model.classifier import (
    Architecture,
    EsmClassifier,
    alphabet,
    build_random,
    get_module,
)
from kneurons.residues.maps import (
    activation_map,
    activation_maps,
    ig_maps,
    ig_maps_of_selections,
    residue_maps,
    residue_maps_of_selections,
)

AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWY"
POLICY = {"steps": 8, "quadrature": "gausslegendre", "rtol": 0.01, "atol": 1e-4, "max_steps": 256}


def setup(args):
    layers, width, heads = (int(x) for x in args.arch.split(","))
    torch.manual_seed(0)
    model = EsmClassifier(build_random(Architecture(layers, width, heads), seed=1), 3).eval()
    rng = random.Random(0)
    sequences = [
        "".join(
            rng.choice(AMINO_ACIDS) for _ in range(rng.randint(args.min_length, args.max_length))
        )
        for _ in range(args.n)
    ]
    examples = pd.DataFrame(
        {"accession": [f"S{i}" for i in range(args.n)], "sequence": sequences,
         "label": [i % 3 for i in range(args.n)]}
    )  # fmt: skip
    units = get_module(model.encoder, args.layer_type, 0).out_features
    gen = np.random.default_rng(0)
    selections = {
        f"selection {s}": {
            (args.layer_type, layer): torch.from_numpy(
                (gen.random(units) < args.keep).astype(np.float32)
            )
            for layer in range(layers)
        }
        for s in range(args.selections)
    }
    return model, examples, selections


def largest_difference(single: dict, batched: dict) -> float:
    """The largest |difference| between two sets of per-sequence maps (name -> list)."""
    return max(
        float(np.abs(a - b).max())
        for name in single
        for a, b in zip(single[name], batched[name], strict=True)
    )


def report(row) -> None:
    label, before, after, diff = row
    print(f"{label:22}{before:12.2f}{after:12.2f}{before / after:8.2f}{diff:13.2e}", flush=True)


def best_of(repeats: int, call) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = call()
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", default="6,320,20", help="layers,width,heads (default 8M)")
    parser.add_argument("--layer-type", default="value")
    parser.add_argument("--n", type=int, default=20, help="mapped sequences")
    parser.add_argument("--min-length", type=int, default=60)
    parser.add_argument("--max-length", type=int, default=120)
    parser.add_argument("--selections", type=int, default=5)
    parser.add_argument("--keep", type=float, default=0.1, help="fraction of units selected")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, examples, selections = setup(args)
    tokens = tokenize(alphabet(), examples["sequence"].tolist())
    labels = examples["label"].tolist()
    print(
        f"{args.arch} ({args.layer_type}), {args.n} sequences of {args.min_length}-"
        f"{args.max_length}, {args.selections} selections keeping {args.keep:.0%}, "
        f"{args.threads} threads"
    )
    print(f"{'':22}{'baseline s':>12}{'batched s':>12}{'ratio':>8}{'max |diff|':>13}")

    rows = []
    # activation maps: one forward per sequence per selection, against one per batch
    before, single = best_of(
        args.repeats,
        lambda: {
            name: [activation_map(model, t, masks) for t in tokens]
            for name, masks in selections.items()
        },
    )
    after, batched = best_of(args.repeats, lambda: activation_maps(model, tokens, selections))
    diff = largest_difference(single, batched)
    rows.append(("activation maps", before, after, diff))
    report(rows[-1])
    # IG maps: one engine run per selection, against one for all
    before, single = best_of(
        args.repeats,
        lambda: {
            name: ig_maps(model, tokens, labels, m, **POLICY) for name, m in selections.items()
        },
    )
    after, batched = best_of(
        args.repeats, lambda: ig_maps_of_selections(model, tokens, labels, selections, **POLICY)
    )
    diff = largest_difference(
        {n: m[0] for n, m in single.items()}, {n: m[0] for n, m in batched.items()}
    )
    rows.append(("IG maps", before, after, diff))
    report(rows[-1])
    # the whole job body: residue_maps per selection, against residue_maps_of_selections
    before, single = best_of(
        args.repeats,
        lambda: {
            name: residue_maps(model, alphabet(), examples, m, **POLICY)
            for name, m in selections.items()
        },
    )
    after, batched = best_of(
        args.repeats,
        lambda: residue_maps_of_selections(model, alphabet(), examples, selections, **POLICY),
    )
    diff = max(
        (single[n][0][["activation", "ig"]] - batched[n][0][["activation", "ig"]]).abs().max().max()
        for n in selections
    )
    rows.append(("residue maps (both)", before, after, diff))
    report(rows[-1])
    print(
        "baseline: one selection per call, one forward per sequence (residue_maps per "
        "selection); batched: one call per layer type (residue_maps_of_selections)"
    )


if __name__ == "__main__":
    main()
