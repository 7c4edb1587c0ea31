"""Benchmark of masked evaluation: seconds per evaluation and the cost of masking hooks.

    python benchmarks/bench_evaluation.py                 # issue 5's setting (several minutes)
    python benchmarks/bench_evaluation.py --n 100 --repeats 2   # a quick look

Setup: ESM-2 8M architecture (6 layers, width 320, FFN 1280) with random weights and a 6-class
head, `--n` random test sequences of `--length` residues, `--threads` torch threads, fp32 on
CPU (or `--device cuda`). Measured, one process, conditions interleaved and repeated (the
minimum is the estimate least disturbed by other processes on the machine):
- fixed cost of an evaluation job: importing the library (a fresh interpreter), loading the
  classifier checkpoint, tokenising and length-bucketing the test set (once per job);
- a plain forward over the test set, and masked forwards: zero ablation of one layer type
  (6 hooked modules: what one `evaluate_masked` job runs), zero ablation of every layer type
  (36 hooked modules: scope `all`), mean ablation of every layer type;
- the overhead of each masked forward over the plain one (target: under 5%);
- several masks per forward pass (`kneurons.model.predict.predict_masked`, what an `evaluate_masked`
  job runs): `--masks` random-selection masks of one layer type evaluated one per pass and
  `--per-pass` per pass, against the plain forward at the same sequences per batch and at the
  same tokens per pass (`--per-pass` times larger batches); per-mask throughput in residues/s
  and its ratio to the plain forward's (target: >= 0.9), and whether every mask's logits are
  identical both ways; and one mask per pass through fair-esm's layers with hooks (the path
  before the batch-first masked forward, still taken by hooked models): the speed-up, the
  largest logit difference and whether the predictions agree;
- the fixed cost per target of one job that evaluates every method x retention of a layer type
  (`--targets`: 3 methods + 20 random seeds at 3 levels by default).

    python benchmarks/bench_evaluation.py --several-only   # only the masks-per-pass part
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from kneurons.evaluation.masked import predict_masked
from kneurons.evaluation.masking import ablated, unit_masks
from kneurons.model.batching import tokenize
from kneurons.model.classifier import (
    Architecture,
    EsmClassifier,
    alphabet,
    build_random,
    load_classifier,
    save_classifier,
    units_of,
)
from kneurons.model.predict import predict_logits, prepare_batches
from kneurons.selection.ranking import select
from kneurons.vocab import NEURON_TYPES

AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWY"


def random_scores(model: EsmClassifier, layer_types, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frames = []
    for lt in layer_types:
        n = units_of(model.encoder, lt)
        for layer in range(model.num_layers):
            frame = pd.DataFrame({"layer": layer, "neuron": np.arange(n), "score": rng.random(n)})
            frames.append(frame.assign(layer_type=lt))
    return pd.concat(frames, ignore_index=True)


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def timed_cpu(fn) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process): CPU time is less disturbed by other
    processes competing for the cores, so overheads are also given on it."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def hook_arithmetic_seconds(batches, masks, means=None, repeats: int = 3) -> float:
    """The masking hooks' arithmetic alone for one pass over the test set: the same in-place
    multiply (and add, for mean ablation) on tensors of the shapes the hooked modules output,
    (T, B, units) per batch. Measured in isolation, it is a contention-robust estimate of the
    masking overhead (the forward timings below are noisy on a shared machine)."""
    work = []
    for _, batch in batches:
        b, t = batch.shape
        for key, mask in masks.items():
            if bool(mask.all()):
                continue  # `ablated` registers no hook for an all-ones mask
            fill = None if means is None else (1.0 - mask) * means[key]
            work.append((torch.randn(t, b, len(mask)), mask, fill))
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for out, mask, fill in work:  # what `kneurons.evaluation.masking.ablated`'s hook does
            if fill is None:
                out.mul_(mask)
            else:
                torch.addcmul(fill, out, mask, out=out)
        best = min(best, time.perf_counter() - start)
    return best


def import_seconds() -> float:
    """A fresh interpreter importing what an evaluation job imports (median of 3)."""
    code = (
        "import kneurons.model.predict, kneurons.evaluation.masked, kneurons.evaluation.masking, "
        "kneurons.model.classifier, kneurons.selection.ranking, pyarrow"
    )
    times = [timed(lambda: subprocess.run([sys.executable, "-c", code], check=True)) for _ in "123"]
    return float(np.median(times))


def several_masks(model, sequences, device, args) -> dict:
    """Masks per pass: plain forward vs one mask per pass vs `args.per_pass` per pass, all on
    batches of `args.batch_tokens` padded tokens (interleaved, best of `args.repeats`)."""
    tokens = tokenize(alphabet(), sequences)
    batches = prepare_batches(tokens, model.encoder.padding_idx, args.batch_tokens)
    scores = random_scores(model, ["value"])
    masks = []
    for seed in range(args.masks):
        shuffled = scores.assign(score=np.random.default_rng(100 + seed).random(len(scores)))
        masks.append(unit_masks(select(shuffled, args.retention), "keep"))
    per_pass_tokens = max(b.numel() for _, b in batches) * args.per_pass
    big_batches = prepare_batches(tokens, model.encoder.padding_idx, per_pass_tokens)
    residues = sum(len(t) - 2 for t in tokens)
    out = {}

    def plain():
        out["plain"] = predict_logits(model, None, device, batches=batches)

    def plain_big():
        predict_logits(model, None, device, batches=big_batches)

    def one():
        out["one"] = predict_masked(model, batches, masks, device, max_tokens=1)

    def several():
        out["several"] = predict_masked(model, batches, masks, device, max_tokens=per_pass_tokens)

    def hooked():  # a hook anywhere sends predict_masked down fair-esm's layers (the path before)
        handle = model.encoder.layers[0].fc2.register_forward_hook(lambda *_: None)
        try:
            out["hooked"] = predict_masked(model, batches, masks, device, max_tokens=1)
        finally:
            handle.remove()

    plain()  # warm-up
    big = f"plain forward, {per_pass_tokens}-token batches"
    before = "one mask per pass, fair-esm + hooks"
    times = {
        "plain forward": [],
        big: [],
        "one mask per pass": [],
        f"{args.per_pass} masks per pass": [],
        before: [],
    }
    for _ in range(args.repeats):
        for name, run in zip(times, (plain, plain_big, one, several, hooked), strict=True):
            times[name].append(timed(run))
    best = {name: min(ts) for name, ts in times.items()}
    rate = {name: residues * args.masks / seconds for name, seconds in best.items()}
    rate["plain forward"] = residues / best["plain forward"]
    rate[big] = residues / best[big]
    pairs = list(zip(out["one"], out["several"], strict=True))
    identical = all(torch.equal(a, b) for a, b in pairs)
    same_accuracy = all(torch.equal(a.argmax(1), b.argmax(1)) for a, b in pairs)
    print()
    print(
        f"masks per pass: {args.masks} masks (random {args.retention:g}% of value), "
        f"{len(sequences)} sequences x {args.length} residues, batches of <= "
        f"{args.batch_tokens} tokens ({len(batches)} batches)"
    )
    print(
        f"{'condition':40s} {'best s':>8s} {'residues/s per mask':>20s} {'vs plain':>9s} "
        f"{'vs plain, same pass size':>25s}"
    )
    for name in times:
        same = rate[big] if name == f"{args.per_pass} masks per pass" else rate["plain forward"]
        print(
            f"{name:40s} {best[name]:8.2f} {rate[name]:20,.0f} "
            f"{rate[name] / rate['plain forward']:9.3f} {rate[name] / same:25.3f}"
        )
    print(f"logits identical one vs several per pass: {identical}; accuracies identical: "
          f"{same_accuracy}")  # fmt: skip
    versus = list(zip(out["one"], out["hooked"], strict=True))
    largest = max(float((a - b).abs().max()) for a, b in versus)
    agree = all(torch.equal(a.argmax(1), b.argmax(1)) for a, b in versus)
    print(
        f"batch-first masked forward vs fair-esm's layers with hooks (one mask per pass): "
        f"{best[before] / best['one mask per pass']:.2f}x faster; largest logit difference "
        f"{largest:.1e}; predictions identical: {agree}"
    )
    return {"rate": rate, "identical": identical}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500, help="test sequences")
    parser.add_argument("--length", type=int, default=256, help="residues per sequence")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=16384)
    parser.add_argument("--retention", type=float, default=10.0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--masks", type=int, default=8, help="masks for the masks-per-pass part")
    parser.add_argument("--per-pass", type=int, default=4, help="masks per pass (several)")
    parser.add_argument(
        "--batch-tokens", type=int, default=4096, help="padded tokens per batch of sequences"
    )
    parser.add_argument(
        "--targets", type=int, default=69, help="targets of one evaluation job (fixed cost)"
    )
    parser.add_argument("--several-only", action="store_true")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(
        f"ESM-2 8M shape, random init; {args.n} sequences x {args.length} residues; "
        f"{args.threads} threads; device {device}; torch {torch.__version__}; "
        f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs"
    )
    if os.getloadavg()[0] > args.threads + 0.5:
        print("warning: other processes compete for the CPUs; timings are upper bounds")

    torch.manual_seed(0)
    model = EsmClassifier(build_random(Architecture(6, 320, 20), seed=0), num_classes=6)
    rng = np.random.default_rng(0)
    sequences = ["".join(rng.choice(list(AMINO_ACIDS), args.length)) for _ in range(args.n)]

    if args.several_only:
        several_masks(model.eval(), sequences, device, args)
        return

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.pt"
        save_classifier(path, model, {"classes": [str(c) for c in range(1, 7)]})
        t_import = import_seconds()
        t_load = timed(lambda: load_classifier(path, device=device))
        model, _ = load_classifier(path, device=device)
    holder = {}

    def prepare():
        tokens = tokenize(alphabet(), sequences)
        holder["batches"] = prepare_batches(tokens, model.encoder.padding_idx, args.max_tokens)

    t_prepare = timed(prepare)
    print(f"  fixed costs measured (import {t_import:.1f} s)", file=sys.stderr, flush=True)
    batches = holder["batches"]

    all_types = list(NEURON_TYPES)
    scores_all = random_scores(model, all_types)
    one = select(scores_all[scores_all["layer_type"] == "key"], args.retention)
    masks_one = unit_masks(one, "keep")
    masks_all = unit_masks(select(scores_all, args.retention, "all"), "keep")
    means = {
        key: torch.randn(len(mask), generator=torch.Generator().manual_seed(1))
        for key, mask in masks_all.items()
    }

    def forward(masks=None, means=None):
        if masks is None:
            return predict_logits(model, None, device, batches=batches)
        with ablated(model, masks, means):
            return predict_logits(model, None, device, batches=batches)

    conditions = {
        "plain forward": lambda: forward(),
        "zero, one layer type (6 hooks)": lambda: forward(masks_one),
        "zero, all layer types (36 hooks)": lambda: forward(masks_all),
        "mean, all layer types (36 hooks)": lambda: forward(masks_all, means),
    }
    hook_cost = {
        f"zero, {lt} (6 hooks)": hook_arithmetic_seconds(
            batches, {k: m for k, m in masks_all.items() if k[0] == lt}
        )
        for lt in all_types
    }
    hook_cost["zero, all layer types (36 hooks)"] = hook_arithmetic_seconds(batches, masks_all)
    hook_cost["mean, all layer types (36 hooks)"] = hook_arithmetic_seconds(
        batches, masks_all, means
    )
    forward()  # warm-up (allocator, thread pool)
    times = {name: [] for name in conditions}
    cpu = {name: [] for name in conditions}
    for rep in range(args.repeats):
        for name, run in conditions.items():
            wall, used = timed_cpu(run)
            times[name].append(wall)
            cpu[name].append(used)
            print(f"  {rep + 1}: {name}: {wall:.2f} s, cpu {used:.2f} s", file=sys.stderr)

    plain = min(times["plain forward"])
    tokens_total = sum(b.numel() for _, b in batches)
    print()
    print(f"{'fixed cost per job':40s} {'seconds':>9s}")
    print(f"{'  import (fresh interpreter)':40s} {t_import:9.2f}")
    print(f"{'  load checkpoint':40s} {t_load:9.2f}")
    print(f"{'  tokenise + bucket test set':40s} {t_prepare:9.2f}")
    print()
    plain_cpu = min(cpu["plain forward"])
    print(
        f"{'forward over the test set':40s} {'min s':>8s} {'median s':>9s} {'overhead':>9s}"
        f" {'min cpu s':>10s} {'cpu overhead':>13s}"
    )
    for name, ts in times.items():
        best, best_cpu = min(ts), min(cpu[name])
        overhead = cpu_overhead = ""
        if name != "plain forward":
            overhead = f"{100 * (best / plain - 1):+8.1f}%"
            cpu_overhead = f"{100 * (best_cpu / plain_cpu - 1):+12.1f}%"
        print(
            f"{name:40s} {best:8.2f} {float(np.median(ts)):9.2f} {overhead:>9s}"
            f" {best_cpu:10.2f} {cpu_overhead:>13s}"
        )
    print()
    print(f"{'hook arithmetic alone, one pass':40s} {'seconds':>8s} {'share of plain':>16s}")
    for name, seconds in hook_cost.items():
        print(f"{name:40s} {seconds:8.3f} {100 * seconds / plain:15.2f}%")
    masked = min(times["zero, one layer type (6 hooks)"])
    fixed = t_import + t_load + t_prepare
    print()
    print(
        f"one mask's forward: {masked:.1f} s ({tokens_total / masked:,.0f} padded tokens/s; "
        f"{len(batches)} batches); fixed cost of a job {fixed:.1f} s, per target of a job "
        f"evaluating {args.targets} targets: {fixed / args.targets:.3f} s (one job per target "
        f"before: {fixed:.1f} s)"
    )
    several_masks(model, sequences, device, args)


if __name__ == "__main__":
    main()
