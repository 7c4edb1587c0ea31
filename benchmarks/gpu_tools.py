"""Shared parts of benchmarks/bench_gpu.py (its docstring describes the run): the sizes, the
JSON-line report, timing and memory on a device, precisions, random inputs, models and masks.
Heavy imports (torch, numpy, kneurons) stay inside the functions, so that importing this is
cheap."""

from __future__ import annotations

import json
import math
import sys
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, replace
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
