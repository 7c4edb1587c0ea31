"""The edge between Snakemake and the library: logging, threads, seeds and device for one job.

Torch is imported only by the jobs that use it: importing it costs ~3 s of a job's start-up, and
the jobs without a model (data preparation, summaries, provenance, downloads) would pay it for
nothing. A job script imports its modules before `start_job` runs, so torch is already loaded
exactly when the job needs it.
"""

from __future__ import annotations

import logging
import os
import random
import sys
from typing import TYPE_CHECKING

from kneurons.errors import DataError, ModelError

if TYPE_CHECKING:
    import torch


def resolve_device(name: str = "auto") -> torch.device:
    """Config key `device`: auto (CUDA when present, else CPU), cpu or cuda."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def deterministic_algorithms(torch) -> None:
    """`torch.use_deterministic_algorithms(True)` without importing TorchInductor.

    Since torch 2.x that call imports `torch._inductor.config` to set Inductor's own flag, which
    pulls in TorchDynamo and sympy: 2.6 s measured here, a third of a small evaluation job's
    wall time. No job compiles a model, so unless Inductor is already loaded (then its flag is
    set too) only the eager-mode switch is set, through the function torch's own call uses.
    """
    if "torch._inductor.config" in sys.modules or not hasattr(
        torch._C, "_set_deterministic_algorithms"
    ):
        torch.use_deterministic_algorithms(True)
    else:
        torch._C._set_deterministic_algorithms(True, warn_only=False)


def start_job(snakemake, seed: int = 0) -> tuple[logging.Logger, torch.device | None]:
    """Send logs to the rule's log file, use exactly the job's threads, seed everything.

    Returns a logger and the torch device chosen by config key `device` (auto: CUDA if present),
    which the rule passes as `params.job` with `deterministic` (scripts never read the config);
    in a job that has not imported torch (see the module docstring), None.
    """
    log_path = snakemake.log[0] if len(snakemake.log) else None
    handlers = [logging.FileHandler(log_path, mode="w")] if log_path else []
    handlers.append(logging.StreamHandler(sys.stderr))
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        handlers=handlers,
        force=True,
    )
    logging.captureWarnings(True)
    random.seed(seed)
    logger = logging.getLogger(snakemake.rule)
    torch = sys.modules.get("torch")
    if torch is None:
        logger.info("rule %s: %d thread(s), no torch", snakemake.rule, snakemake.threads)
        return logger, None
    torch.set_num_threads(max(1, int(snakemake.threads)))
    torch.manual_seed(seed)
    job = snakemake.params.job  # config keys device, deterministic (rules/common.smk, JOB)
    device = resolve_device(job["device"])
    # Deterministic kernels: always on CPU (cheap there); on CUDA only on request (config
    # `deterministic: true`), since they are slower and cuBLAS needs a fixed workspace.
    if device.type == "cpu" or job["deterministic"]:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        deterministic_algorithms(torch)
        torch.backends.cudnn.benchmark = False
    logger.info("rule %s: %d thread(s), device %s", snakemake.rule, snakemake.threads, device)
    return logger, device


def run_job(main, snakemake) -> None:
    """Run `main(snakemake)`; a known input error is logged as one line (no traceback), exit 1.

    The line is the error's message with its whitespace collapsed: a message that quotes a
    multi-line text (a library's own error) stays one line."""
    try:
        main(snakemake)
    except (DataError, ModelError) as err:
        message = " ".join(str(err).split()) or type(err).__name__
        logging.getLogger(snakemake.rule).error("%s", message)
        print(f"Error in rule {snakemake.rule}: {message}", file=sys.stderr)
        sys.exit(1)
