"""Benchmark for one GPU: every figure of a GPU run, one JSON line each, in under 5 minutes.

    python benchmarks/bench_gpu.py                       # on a machine with one GPU (<= 5 min)
    python benchmarks/bench_gpu.py --skip-pipeline       # without the pipeline (about 1 min)
    python benchmarks/bench_gpu.py --quick --skip-pipeline   # a smoke test (the tests run it)
    python benchmarks/bench_gpu.py --device cpu --quick --skip-pipeline  # the same on CPU (~1 min)

Setup: ESM-2 8M architecture (6 layers, width 320, 20 heads) and 35M architecture (12 layers,
width 480, 20 heads), random weights (fair-esm's initialisation, seed 0), a 6-class head,
random sequences of 256 residues with random labels, one process, `--device` (cuda; on CPU one
torch thread unless `--threads`). Timings are wall-clock between `torch.cuda.synchronize()`
calls, after a warm-up. stdout holds only JSON lines, one per figure, each an object with
`figure`, `value`, `unit`, `device`, `model`, `precision` and `detail`; progress goes to stderr.
The figures, in order:
- `environment`: torch, CUDA and cuDNN versions, the GPU's name and memory (value: GPUs seen);
- `finetune_residues_per_s`: `kneurons.model.train.finetune` (the pipeline's AdamW loop) for 2
epochs
  of 1024 training sequences (8192 padded tokens, at most 32 sequences per batch) and 64
  validation ones; the value is epoch 2's residues/s as finetune's own history measures it
  (epoch 1 is the warm-up); both shapes, fp32 and (CUDA) TF32;
- `ig_s_per_example`: integrated gradients over the full sweep of the 8M shape (6 layer types x
  6 layers = 36 modules), `kneurons.scoring.methods.score_neurons` with 16 Gauss-Legendre steps, not
  adaptive, on 16 examples, after a one-example warm-up: seconds per example, with the
  completeness gaps (mean and max |gap|, mean |F(1) - F(0)|, pairs above the default
  tolerance); at the config default max_tokens 8192 in fp32 and (CUDA) at 65536 in fp32, TF32
  and bf16 (the library's `autocast` option);
- `ig_shared_pass_ratio`: the same full sweep at the default max_tokens in fp32 with a layer's
  query and key sharing their rows (the engine's default) over it with them apart (the engine
  before: `share_query_key` False); detail: both times and the largest score difference,
  absolute and relative to the largest score (issue 28);
- `forward_residues_per_s`: the plain forward (`kneurons.model.predict.predict_logits`) over 256
  test sequences in length-sorted batches of `batch_tokens` padded tokens: 16384 (the
  pipeline's `evaluation.max_tokens`) and 65536; the minimum of 5 runs;
- `masked_evals_per_s`: `kneurons.model.predict.predict_masked` with 32 random keep-10% masks of the
  `value` units of every layer over the same 256 sequences; value: masks per second (one mask
  = the whole test set); detail: residues/s per mask, its ratio to the plain forward, masks per
  pass, and that every setting gives the logits of the first; (batch tokens, mask tokens) =
  (16384, 16384) (a pipeline job at the default: one mask per pass), (16384, 65536) (four per
  pass) and (65536, 65536); the 35M shape at the default only; one timed run after a warm-up
  pass (a run takes seconds);
- the same two with `precision` tf32 (`torch.backends.cuda.matmul.allow_tf32`) and bf16
  (`torch.autocast`), CUDA only, at the pipeline's default sizes, with the largest |logit
  difference| against fp32 and whether the argmax predictions agree (random weights: the
  logits of a random head differ little between classes, so the median fp32 margin between
  the top two logits is given beside it);
- `pipeline_wall_s`: the planted-motif config end to end, `snakemake --cores all --configfile
  config/synthetic.yaml --config device=cuda gpu_memory_gb=<the card's>` (small jobs share the
  GPU by their memory estimates) in a fresh temporary directory, under a time
  limit: `--pipeline-timeout` (240 s), but no more than what is left of `--budget` (280 s), so
  that the whole run ends within 5 minutes whatever the front part took; a run cut short is
  reported as such (`finished` false, `timed_out` true, the jobs done from Snakemake's
  "steps (" lines), never as an exception. On CPU it is skipped (the smallest config,
  tests/config/tiny.yaml, takes about 3 min on 2 cores; README); `--pipeline-config` runs a
  given config anyway;
- `total_wall_s`: the whole run, with the time each part started.
Sizes: the front part (everything before the pipeline) should take about a minute on one GPU,
which chose 16 IG examples, 256 evaluation sequences and 32 masks (cost, not statistics);
`--quick` shrinks every size (32 residues, 16 training and evaluation sequences, 2 IG examples
at 4 steps, 4 masks) to test the script, not the GPU. Without CUDA (and without `--device cpu`)
the script prints `{"figure": "skipped", "reason": "no CUDA device"}` and exits 0. A figure
that fails prints its line with value null and `error` (traceback on stderr), the others still
run, and the exit status is 1. A figure that cannot run here (`precision` and the pipeline on
CPU) prints value null and `skipped`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from contextlib import nullcontext
from dataclasses import asdict
from pathlib import Path

# the shared parts live beside this file: found also when it is loaded by path (the tests)
if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_pipeline import pipeline_figure, run_bounded, snakemake_progress  # noqa: E402, F401
from gpu_tools import (  # noqa: E402
    FULL,
    MASKED_TYPE,
    PRECISIONS,
    QUICK,
    SHAPES,
    Report,
    Sizes,
    agreement,
    best_of,
    free,
    make_model,
    model_label,
    note,
    peak_gib,
    precision,
    random_labels,
    random_masks,
    random_sequences,
    reset_peak,
    sync,
)

# ---------------------------------------------------------------------------------------------
# Figures


def environment(report: Report, device, args, sizes: Sizes) -> None:
    import torch

    detail = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average": round(os.getloadavg()[0], 2),
        "torch_threads": torch.get_num_threads(),
        "quick": args.quick,
        "sizes": asdict(sizes),
    }
    gpus = 0
    if device.type == "cuda":
        gpus = torch.cuda.device_count()
        props = torch.cuda.get_device_properties(device)
        detail.update(
            cuda=torch.version.cuda,
            cudnn=torch.backends.cudnn.version(),
            gpu=props.name,
            gpu_memory_gib=round(props.total_memory / 2**30, 1),
            capability=f"{props.major}.{props.minor}",
            multiprocessors=props.multi_processor_count,
            bf16_supported=torch.cuda.is_bf16_supported(),
        )
    report.emit("environment", gpus, "GPUs", **detail)


def finetune_figure(report: Report, shape: str, device, sizes: Sizes, prec: str) -> None:
    import pandas as pd

    from kneurons.model.batching import length_batches
    from kneurons.model.classifier import alphabet
    from kneurons.model.train import TrainOptions, finetune

    n = sizes.n_train + sizes.n_val
    frame = pd.DataFrame(
        {"sequence": random_sequences(n, sizes.length, seed=1), "label": random_labels(n, 1)}
    )
    train = frame.iloc[: sizes.n_train].reset_index(drop=True)
    val = frame.iloc[sizes.n_train :].reset_index(drop=True)
    options = TrainOptions(
        epochs=2,
        max_tokens=sizes.train_max_tokens,
        max_batch_size=sizes.train_max_batch,
        seed=0,
    )
    lengths = [sizes.length + 2] * sizes.n_train
    steps = len(length_batches(lengths, options.max_tokens, options.max_batch_size))
    model = make_model(shape)
    reset_peak(device)
    with precision(prec, device):
        start = time.perf_counter()
        model, history = finetune(model, alphabet(), train, val, options, device, log=note)
        sync(device)
        total = time.perf_counter() - start
    last, first = history.iloc[-1], history.iloc[0]
    report.emit(
        "finetune_residues_per_s", float(last["residues_per_second"]), "residues/s",
        model_label(shape), prec,
        epoch_seconds=float(last["seconds"]),
        warmup_epoch_residues_per_s=float(first["residues_per_second"]),
        residues_per_epoch=sizes.n_train * sizes.length,
        sequences_per_epoch=sizes.n_train, length=sizes.length, steps_per_epoch=steps,
        max_tokens=options.max_tokens, max_batch_size=options.max_batch_size,
        seconds_with_validation_2_epochs=round(total, 3),
        peak_gpu_memory_gib=peak_gib(device),
    )  # fmt: skip


def ig_figure(
    report: Report, device, sizes: Sizes, max_tokens: int, prec: str, share_query_key: bool = True
):
    from kneurons.model.batching import tokenize
    from kneurons.model.classifier import alphabet
    from kneurons.scoring.adaptive import gap_summary
    from kneurons.scoring.methods import score_neurons
    from kneurons.vocab import NEURON_TYPES

    model = make_model("8M").to(device).eval()
    tokens = tokenize(alphabet(), random_sequences(sizes.ig_examples, sizes.length, seed=2))
    labels = random_labels(sizes.ig_examples, 2)
    layer_types = list(NEURON_TYPES)
    options = {
        "steps": sizes.ig_steps,
        "quadrature": "gausslegendre",
        "adaptive": False,
        "max_tokens": max_tokens,
        "autocast": prec == "bf16",  # the library's own bf16 autocast
        "share_query_key": share_query_key,
    }
    context = (lambda: precision("tf32", device)) if prec == "tf32" else nullcontext
    with context():
        # warm-up: one example, two layer types (kernels, allocator)
        score_neurons(
            "integrated_gradients", model, tokens[:1], labels[:1], ["value", "ffn_in"], None,
            device, options,
        )  # fmt: skip
        reset_peak(device)
        seconds, _, result = best_of(
            lambda: score_neurons(
                "integrated_gradients", model, tokens, labels, layer_types, None, device, options
            ),
            device,
            1,
        )
    gaps = gap_summary(result.gaps)
    modules = len(layer_types) * model.num_layers
    if not share_query_key:
        return seconds, result
    report.emit(
        "ig_s_per_example", seconds / sizes.ig_examples, "s/example", model_label("8M"), prec,
        n_examples=sizes.ig_examples, length=sizes.length, modules=modules,
        layer_types=layer_types, steps=sizes.ig_steps, quadrature="gausslegendre",
        adaptive=False, max_tokens=max_tokens, seconds=round(seconds, 3),
        rows_per_s=sizes.ig_examples * modules * sizes.ig_steps / seconds,
        gap_mean_abs=gaps["gap_mean_abs"], gap_max_abs=gaps["gap_max_abs"],
        delta_mean_abs=gaps["delta_mean_abs"], rel_gap_max=gaps.get("rel_gap_max"),
        n_pairs=gaps["n_examples"], n_above_tolerance=gaps.get("n_above_tolerance"),
        peak_gpu_memory_gib=peak_gib(device),
    )  # fmt: skip
    return seconds, result


def shared_pass_figure(report: Report, device, sizes: Sizes, shared) -> None:
    """`ig_shared_pass_ratio`: the full sweep's time with a layer's query and key sharing their
    rows (the engine's default, `shared`: (seconds, result) of `ig_figure`) over the same sweep
    with them apart (the engine before), at the default pass size in fp32, and the largest
    score difference between the two, absolute and relative to the largest score."""
    import numpy as np

    apart_s, apart = ig_figure(report, device, sizes, sizes.ig_max_tokens[0], "fp32", False)
    shared_s, result = shared
    largest = max(float(np.abs(v).max()) for v in apart.scores.values())
    diff = max(float(np.abs(result.scores[m] - apart.scores[m]).max()) for m in apart.scores)
    report.emit(
        "ig_shared_pass_ratio", shared_s / apart_s, "ratio", model_label("8M"), "fp32",
        shared_s=round(shared_s, 3), apart_s=round(apart_s, 3),
        max_tokens=sizes.ig_max_tokens[0], largest_score_difference=diff,
        relative_to_largest_score=diff / largest if largest else None,
    )  # fmt: skip


def evaluation_figures(report: Report, shape: str, device, sizes: Sizes, precisions, settings):
    """Plain forward and masked evaluation of one shape, at `settings` (batch tokens, mask
    tokens) in fp32 and, for the first setting only, in the other `precisions`."""
    import torch

    from kneurons.evaluation.masked import predict_masked
    from kneurons.model.batching import tokenize
    from kneurons.model.classifier import alphabet
    from kneurons.model.predict import predict_logits, prepare_batches

    label = model_label(shape)
    model = make_model(shape).to(device).eval()
    tokens = tokenize(alphabet(), random_sequences(sizes.n_eval, sizes.length, seed=4))
    residues = sizes.n_eval * sizes.length
    masks = random_masks(model, sizes.n_masks, sizes.retention)
    padding_idx = model.encoder.padding_idx
    batches = {bt: prepare_batches(tokens, padding_idx, bt) for bt, _ in settings}
    fp32_forward, forward_rate, fp32_masked = {}, {}, {}

    # the plain forward: fp32 at every batch size, then the other precisions at the first
    runs = [(bt, "fp32") for bt in batches] + [(settings[0][0], p) for p in precisions[1:]]
    for bt, prec in runs:
        with report.guard("forward_residues_per_s", label, prec, device, batch_tokens=bt):
            with precision(prec, device):
                predict_logits(model, None, device, batches=batches[bt][:1])  # warm-up
                reset_peak(device)
                best, median, logits = best_of(
                    lambda b=bt: predict_logits(model, None, device, batches=batches[b]),
                    device,
                    sizes.forward_repeats,
                )
            detail = {}
            if prec == "fp32":
                fp32_forward[bt], forward_rate[bt] = logits, residues / best
            elif bt in fp32_forward:
                detail = agreement(fp32_forward[bt], logits)
                detail["speedup_vs_fp32"] = residues / best / forward_rate[bt]
            report.emit(
                "forward_residues_per_s", residues / best, "residues/s", label, prec,
                batch_tokens=bt, batches=len(batches[bt]), sequences=sizes.n_eval,
                length=sizes.length, seconds_min=best, seconds_median=median,
                peak_gpu_memory_gib=peak_gib(device), **detail,
            )  # fmt: skip

    # masked evaluation: fp32 at every setting, then the other precisions at the first
    runs = [(s, "fp32") for s in settings] + [(settings[0], p) for p in precisions[1:]]
    for (bt, mt), prec in runs:
        with report.guard("masked_evals_per_s", label, prec, device, batch_tokens=bt,
                          mask_tokens=mt):  # fmt: skip
            largest = max(b.numel() for _, b in batches[bt])
            per_pass = max(1, mt // largest)
            with precision(prec, device):
                # warm-up: one pass of the largest shape
                predict_masked(model, batches[bt][:1], masks[:per_pass], device, max_tokens=mt)
                reset_peak(device)
                best, median, outs = best_of(
                    lambda b=bt, m=mt: predict_masked(
                        model, batches[b], masks, device, max_tokens=m
                    ),
                    device,
                    sizes.repeats,
                )
            stacked = torch.cat(outs)
            per_mask = residues * len(masks) / best
            detail = {}
            if prec == "fp32":
                if fp32_masked:  # rows never interact: every setting gives the first's logits
                    first = next(iter(fp32_masked.values()))
                    detail["max_abs_diff_vs_first_setting"] = float((first - stacked).abs().max())
                fp32_masked[(bt, mt)] = stacked
            elif (bt, mt) in fp32_masked:
                detail = agreement(fp32_masked[(bt, mt)], stacked)
            fp32_rate = forward_rate.get(bt)
            report.emit(
                "masked_evals_per_s", len(masks) / best, "masks/s", label, prec,
                batch_tokens=bt, mask_tokens=mt, masks_per_pass_max=per_pass,
                n_masks=len(masks), mask=f"keep {sizes.retention:g}% of {MASKED_TYPE}, random",
                sequences=sizes.n_eval, length=sizes.length, residues_per_s_per_mask=per_mask,
                ratio_to_fp32_plain_forward=per_mask / fp32_rate if fp32_rate else None,
                seconds_min=best, seconds_median=median, peak_gpu_memory_gib=peak_gib(device),
                **detail,
            )  # fmt: skip


# ---------------------------------------------------------------------------------------------


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a test of the script")
    parser.add_argument("--skip-pipeline", action="store_true")
    parser.add_argument("--pipeline-timeout", type=float, default=240.0, help="seconds")
    parser.add_argument(
        "--budget", type=float, default=280.0,
        help="seconds for the whole run: the pipeline gets at most what is left (at least 30)",
    )  # fmt: skip
    parser.add_argument(
        "--pipeline-config", default=None,
        help="config of the pipeline figure (default config/synthetic.yaml; none on CPU)",
    )  # fmt: skip
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: 1 on CPU)"
    )
    parser.add_argument(
        "--cpu-precision", action="store_true",
        help="run the TF32/bf16 comparison on CPU too: a check of the code, not a measurement",
    )  # fmt: skip
    return parser.parse_args(argv)


def pick_device(args):
    """(device, its label) to run on, torch's CPU threads set; None where CUDA is asked for and
    there is none."""
    import torch  # the only heavy import before deciding whether to run at all

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        return None
    device = torch.device(args.device)
    if args.threads or device.type == "cpu":
        # on CPU one thread unless told: on a shared machine, more threads than free cores make
        # every step many times slower (2 threads on 2 busy cores: 10x), not faster
        torch.set_num_threads(args.threads or 1)
    if device.type == "cuda":
        if device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
        return device, torch.cuda.get_device_name(device)
    return device, "cpu"


# ---------------------------------------------------------------------------------------------
# Sections, in the order main runs them


def environment_section(report: Report, device, args, sizes: Sizes, cuda: bool) -> tuple:
    """The environment line; returns the precisions to measure (on CPU fp32 alone, and a
    `precision` line that says so, unless --cpu-precision)."""
    with report.guard("environment", device=device):
        environment(report, device, args, sizes)
    precisions = PRECISIONS if cuda or args.cpu_precision else ("fp32",)
    if not cuda and not args.cpu_precision:
        report.emit(
            "precision", None, None,
            skipped="TF32 and bf16 autocast are measured on CUDA only (--cpu-precision runs "
            "them on CPU: a check of the code, not a measurement)",
        )  # fmt: skip
    return precisions


def finetune_section(report: Report, device, sizes: Sizes, cuda: bool) -> None:
    train_precisions = ("fp32", "tf32") if cuda else ("fp32",)
    for shape in SHAPES:
        for prec in train_precisions:
            with report.guard("finetune_residues_per_s", model_label(shape), prec, device):
                finetune_figure(report, shape, device, sizes, prec)
            free(device)


def ig_section(report: Report, device, args, sizes: Sizes, cuda: bool) -> None:
    ig_runs = [(sizes.ig_max_tokens[0], "fp32")]
    if cuda or args.cpu_precision:
        largest = sizes.ig_max_tokens[-1]
        ig_runs += [(largest, p) for p in PRECISIONS if (largest, p) not in ig_runs]
    shared = None
    for max_tokens, prec in ig_runs:
        with report.guard("ig_s_per_example", model_label("8M"), prec, device,
                          max_tokens=max_tokens):  # fmt: skip
            out = ig_figure(report, device, sizes, max_tokens, prec)
            if (max_tokens, prec) == ig_runs[0]:
                shared = out
        free(device)
    if shared is not None:
        with report.guard("ig_shared_pass_ratio", model_label("8M"), "fp32", device):
            shared_pass_figure(report, device, sizes, shared)
        free(device)


def evaluation_section(report: Report, device, sizes: Sizes, precisions) -> None:
    for shape in SHAPES:
        settings = sizes.eval_tokens if shape == "8M" else sizes.eval_tokens[:1]
        with report.guard("masked_evals_per_s", model_label(shape), device=device):
            evaluation_figures(report, shape, device, sizes, precisions, settings)
        free(device)


def main(argv=None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    picked = pick_device(args)
    if picked is None:
        print(json.dumps({"figure": "skipped", "reason": "no CUDA device"}), flush=True)
        return 0
    device, label = picked
    sizes = QUICK if args.quick else FULL
    cuda = device.type == "cuda"
    report = Report(label)
    sections = {}

    def section(name):
        sections[name] = time.perf_counter() - started
        note(f"{name} ({sections[name]:.0f} s since start)")

    precisions = environment_section(report, device, args, sizes, cuda)
    section("fine-tuning")
    finetune_section(report, device, sizes, cuda)
    section("integrated gradients")
    ig_section(report, device, args, sizes, cuda)
    section("masked evaluation")
    evaluation_section(report, device, sizes, precisions)
    if not args.skip_pipeline:
        section("pipeline")
        with report.guard("pipeline_wall_s", device=device):
            pipeline_figure(report, device, args, started)
    else:
        note("pipeline skipped (--skip-pipeline)")

    total = time.perf_counter() - started
    report.emit("total_wall_s", total, "s", sections_started_at_s=sections, errors=report.errors)
    return 1 if report.errors else 0


if __name__ == "__main__":
    sys.exit(main())
