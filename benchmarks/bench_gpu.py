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
  6 layers = 36 modules), `kneurons.scoring.engine.score_neurons` with 16 Gauss-Legendre steps, not
  adaptive, on 16 examples, after a one-example warm-up: seconds per example, with the
  completeness gaps (mean and max |gap|, mean |F(1) - F(0)|, pairs above the default
  tolerance); at the config default max_tokens 8192 in fp32 and (CUDA) at 65536 in fp32, TF32
  and bf16 (the library's `autocast` option);
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
import math
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWY"
SHAPES = {"8M": (6, 320, 20), "35M": (12, 480, 20)}  # num_layers, embed_dim, attention_heads
NUM_CLASSES = 6
MASKED_TYPE = "value"
PRECISIONS = ("fp32", "tf32", "bf16")


@dataclass(frozen=True)
class Sizes:
    length: int = 256  # residues per sequence
    n_train: int = 1024  # fine-tuning: training sequences per epoch (2 epochs)
    n_val: int = 64
    train_max_tokens: int = 8192  # TrainOptions' default
    train_max_batch: int = 32
    ig_examples: int = 16
    ig_steps: int = 16
    ig_max_tokens: tuple[int, ...] = (8192, 65536)  # the config default, and a GPU-sized one
    n_eval: int = 256
    n_masks: int = 32
    retention: float = 10.0  # percent of the units kept by a mask
    # (sequence batch tokens, predict_masked max_tokens)
    eval_tokens: tuple[tuple[int, int], ...] = ((16384, 16384), (16384, 65536), (65536, 65536))
    repeats: int = 1  # timed runs of a masked evaluation (seconds each), after a warm-up pass
    forward_repeats: int = 5  # of a plain forward (a fraction of a second; minimum taken)


FULL = Sizes()
QUICK = replace(
    FULL, length=32, n_train=16, n_val=8, ig_examples=2, ig_steps=4, n_eval=16, n_masks=4,
    forward_repeats=1,
)  # fmt: skip


def note(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def plain(value):
    """JSON-safe: numpy scalars to Python, non-finite floats to None, recursively."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def first_line(err: BaseException) -> str:
    lines = [line for line in str(err).splitlines() if line.strip()]
    return f"{type(err).__name__}: {lines[0] if lines else ''}".rstrip(": ")


class Report:
    """Prints the JSON lines; counts the figures that failed."""

    def __init__(self, device_label: str):
        self.device_label = device_label
        self.errors = 0

    def emit(self, figure, value, unit, model=None, precision=None, **detail):
        record = {"figure": figure, "value": value, "unit": unit, "device": self.device_label,
                  "model": model, "precision": precision, "detail": detail}  # fmt: skip
        print(json.dumps(plain(record), allow_nan=False), flush=True)

    @contextmanager
    def guard(self, figure, model=None, precision=None, device=None, **detail):
        """A figure that raises prints its line with value null and the error; the run goes on."""
        try:
            yield
        except Exception as err:
            traceback.print_exc(file=sys.stderr)
            self.errors += 1
            self.emit(figure, None, None, model, precision, error=first_line(err), **detail)
            if device is not None and device.type == "cuda":
                import torch

                torch.cuda.empty_cache()


def model_label(shape: str) -> str:
    return f"esm2 {shape} shape, random init"


def sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def best_of(fn, device, repeats: int):
    """(minimum seconds, median seconds, the last result) of `repeats` synchronised calls."""
    times, out = [], None
    for _ in range(max(1, repeats)):
        sync(device)
        start = time.perf_counter()
        out = fn()
        sync(device)
        times.append(time.perf_counter() - start)
    times.sort()
    return times[0], times[len(times) // 2], out


def reset_peak(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_gib(device) -> float | None:
    import torch

    if device.type != "cuda":
        return None
    return round(torch.cuda.max_memory_allocated(device) / 2**30, 3)


@contextmanager
def precision(name: str, device):
    """fp32 (as is), tf32 (cuBLAS fp32 matmuls in TF32) or bf16 (autocast)."""
    import torch

    if name == "fp32":
        yield
    elif name == "tf32":
        # the legacy flag only: torch refuses a mix of it and the newer `fp32_precision` API,
        # and nothing in the library sets either
        previous = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = True
        try:
            yield
        finally:
            torch.backends.cuda.matmul.allow_tf32 = previous
    elif name == "bf16":
        with torch.autocast(device.type, dtype=torch.bfloat16):
            yield
    else:
        raise ValueError(f"unknown precision {name!r}")


def random_sequences(n: int, length: int, seed: int) -> list[str]:
    import numpy as np

    rng = np.random.default_rng(seed)
    letters = np.array(list(AMINO_ACIDS))
    return ["".join(row) for row in letters[rng.integers(0, len(letters), (n, length))]]


def random_labels(n: int, seed: int) -> list[int]:
    import numpy as np

    return np.random.default_rng(seed).integers(0, NUM_CLASSES, n).tolist()


def make_model(shape: str):
    import torch

    from kneurons.model.classifier import EsmClassifier, build_random
    from kneurons.model.spec import Architecture

    torch.manual_seed(0)
    return EsmClassifier(build_random(Architecture(*SHAPES[shape]), seed=0), NUM_CLASSES)


def free(device) -> None:
    import gc

    import torch

    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


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


def ig_figure(report: Report, device, sizes: Sizes, max_tokens: int, prec: str) -> None:
    from kneurons.model.batching import tokenize
    from kneurons.model.classifier import alphabet
    from kneurons.scoring.engine import gap_summary, score_neurons
    from kneurons.vocab import LAYER_TYPES

    model = make_model("8M").to(device).eval()
    tokens = tokenize(alphabet(), random_sequences(sizes.ig_examples, sizes.length, seed=2))
    labels = random_labels(sizes.ig_examples, 2)
    layer_types = list(LAYER_TYPES)
    options = {
        "steps": sizes.ig_steps,
        "quadrature": "gausslegendre",
        "adaptive": False,
        "max_tokens": max_tokens,
        "autocast": prec == "bf16",  # the library's own bf16 autocast
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


def random_masks(model, n: int, retention: float, seed: int = 3) -> list[dict]:
    """`n` masks keeping a random `retention` % of the `value` units of every layer."""
    import torch

    from kneurons.model.classifier import units_of

    units = units_of(model.encoder, MASKED_TYPE)
    keep = max(1, round(units * retention / 100))
    generator = torch.Generator().manual_seed(seed)
    masks = []
    for _ in range(n):
        mask = {}
        for layer in range(model.num_layers):
            m = torch.zeros(units)
            m[torch.randperm(units, generator=generator)[:keep]] = 1.0
            mask[(MASKED_TYPE, layer)] = m
        masks.append(mask)
    return masks


def agreement(reference, other) -> dict:
    """Largest |logit difference| and argmax agreement of `other` against `reference` (N, C)."""
    import torch

    top2 = reference.topk(2, dim=1).values
    same = reference.argmax(1) == other.argmax(1)
    return {
        "max_abs_logit_diff_vs_fp32": float((reference - other).abs().max()),
        "argmax_agree": bool(same.all()),
        "argmax_agree_fraction": float(same.float().mean()),
        "fp32_top2_margin_median": float(torch.median(top2[:, 0] - top2[:, 1])),
    }


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
# The pipeline, end to end


@dataclass
class Bounded:
    seconds: float
    returncode: int | None
    timed_out: bool
    output: str


def run_bounded(command: list[str], log_path: Path, timeout: float, cwd=None) -> Bounded:
    """Run `command` in a process group of its own, output to `log_path`; past `timeout`
    seconds the whole group is stopped (SIGTERM, then SIGKILL). Never raises on a timeout."""
    start = time.perf_counter()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, cwd=cwd, start_new_session=True
        )
        try:
            returncode = proc.wait(timeout=timeout)
            timed_out = False
        except subprocess.TimeoutExpired:
            timed_out = True
        seconds = time.perf_counter() - start
        if timed_out:
            returncode = stop_group(proc)
        else:
            stop_group(proc, grace=0)  # leftovers of the group, if any
    return Bounded(seconds, returncode, timed_out, Path(log_path).read_text(errors="replace"))


def stop_group(proc: subprocess.Popen, grace: float = 10) -> int | None:
    """SIGTERM to `proc`'s process group (Snakemake cancels its jobs), SIGKILL after `grace`."""
    if grace:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        return proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        return None


def snakemake_progress(output: str) -> tuple[int, int | None, int | None]:
    """(progress lines, jobs done, jobs in all) from Snakemake's 'N of M steps (P%) done'."""
    lines = [line for line in output.splitlines() if "steps (" in line]
    done = total = None
    for line in lines:
        match = re.search(r"(\d+) of (\d+) steps", line)
        if match:
            done, total = int(match.group(1)), int(match.group(2))
    return len(lines), done, total


def find_snakemake() -> str | None:
    beside = Path(sys.executable).with_name("snakemake")
    return str(beside) if beside.exists() else shutil.which("snakemake")


def pipeline_config(source: Path, workdir: Path) -> Path:
    """A copy of config `source` in `workdir`, with a relative `data.input` that names a file of
    this repository (tests/config/tiny.yaml's) made absolute."""
    import yaml

    config = yaml.safe_load(source.read_text())
    data = config.get("data") or {}
    given = data.get("input")
    if isinstance(given, str) and not Path(given).is_absolute() and (REPO / given).exists():
        data["input"] = str(REPO / given)
    path = workdir / "bench_config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def pipeline_figure(report: Report, device, args, started: float) -> None:
    figure = "pipeline_wall_s"
    source = args.pipeline_config
    if source is None and device.type != "cuda":
        report.emit(
            figure, None, "s",
            skipped="on CPU: tests/config/tiny.yaml takes about 3 min on 2 cores (README); "
            "--pipeline-config runs a config anyway",
        )  # fmt: skip
        return
    source = Path(source or REPO / "config/synthetic.yaml").resolve()
    snakemake = find_snakemake()
    if snakemake is None:
        report.emit(figure, None, "s", skipped="no snakemake executable found")
        return
    left = args.budget - (time.perf_counter() - started)
    timeout = min(args.pipeline_timeout, max(30.0, left))
    with tempfile.TemporaryDirectory(prefix="bench_gpu_", ignore_cleanup_errors=True) as tmp:
        workdir = Path(tmp) / "work"
        workdir.mkdir()
        config = pipeline_config(source, Path(tmp))
        settings = [f"device={device.type}"]
        if device.type == "cuda":  # small jobs share the GPU (README, "Running on a GPU")
            import torch

            memory = torch.cuda.get_device_properties(device).total_memory / 2**30
            settings.append(f"gpu_memory_gb={memory:.1f}")
        command = [snakemake, "-s", str(REPO / "Snakefile"), "-d", str(workdir),
                   "--configfile", str(config), "--cores", "all",
                   "--config", *settings]  # fmt: skip
        note(f"pipeline: {' '.join(command)} (time limit {timeout:.0f} s)")
        run = run_bounded(command, Path(tmp) / "snakemake.log", timeout)
    n_lines, done, total = snakemake_progress(run.output)
    finished = run.returncode == 0 and not run.timed_out
    tail = [line for line in run.output.splitlines() if line.strip()][-12:]
    if not finished:
        note("pipeline output, last lines:\n" + "\n".join(tail))
    name = str(source.relative_to(REPO) if source.is_relative_to(REPO) else source)
    report.emit(
        figure, run.seconds, "s", model=f"{name} end to end", precision=None,
        finished=finished, timed_out=run.timed_out, returncode=run.returncode,
        time_limit_s=timeout, progress_lines=n_lines, jobs_done=done, jobs_total=total,
        config=name, log_tail=None if finished else tail,
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


def main(argv=None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    import torch  # the only heavy import before deciding whether to run at all

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(json.dumps({"figure": "skipped", "reason": "no CUDA device"}), flush=True)
        return 0
    device = torch.device(args.device)
    if args.threads or device.type == "cpu":
        # on CPU one thread unless told: on a shared machine, more threads than free cores make
        # every step many times slower (2 threads on 2 busy cores: 10x), not faster
        torch.set_num_threads(args.threads or 1)
    sizes = QUICK if args.quick else FULL
    cuda = device.type == "cuda"
    if cuda:
        if device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
        label = torch.cuda.get_device_name(device)
    else:
        label = "cpu"
    report = Report(label)
    sections = {}

    def section(name):
        sections[name] = time.perf_counter() - started
        note(f"{name} ({sections[name]:.0f} s since start)")

    with report.guard("environment", device=device):
        environment(report, device, args, sizes)
    precisions = PRECISIONS if cuda or args.cpu_precision else ("fp32",)
    if not cuda and not args.cpu_precision:
        report.emit(
            "precision", None, None,
            skipped="TF32 and bf16 autocast are measured on CUDA only (--cpu-precision runs "
            "them on CPU: a check of the code, not a measurement)",
        )  # fmt: skip

    section("fine-tuning")
    train_precisions = ("fp32", "tf32") if cuda else ("fp32",)
    for shape in SHAPES:
        for prec in train_precisions:
            with report.guard("finetune_residues_per_s", model_label(shape), prec, device):
                finetune_figure(report, shape, device, sizes, prec)
            free(device)

    section("integrated gradients")
    ig_runs = [(sizes.ig_max_tokens[0], "fp32")]
    if cuda or args.cpu_precision:
        largest = sizes.ig_max_tokens[-1]
        ig_runs += [(largest, p) for p in PRECISIONS if (largest, p) not in ig_runs]
    for max_tokens, prec in ig_runs:
        with report.guard("ig_s_per_example", model_label("8M"), prec, device,
                          max_tokens=max_tokens):  # fmt: skip
            ig_figure(report, device, sizes, max_tokens, prec)
        free(device)

    section("masked evaluation")
    for shape in SHAPES:
        settings = sizes.eval_tokens if shape == "8M" else sizes.eval_tokens[:1]
        with report.guard("masked_evals_per_s", model_label(shape), device=device):
            evaluation_figures(report, shape, device, sizes, precisions, settings)
        free(device)

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
