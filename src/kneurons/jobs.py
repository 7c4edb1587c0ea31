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
import socket
import sys
from typing import TYPE_CHECKING

from kneurons.errors import DataError, ModelError, damaged_input_line, disk_error_line

if TYPE_CHECKING:
    import torch


def resolve_device(name: str = "auto") -> torch.device:
    """Config key `device`: auto (CUDA when present, else CPU), cpu or cuda. CUDA asked for
    where torch finds none is one line (`ModelError`) naming the key and the host."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0 or (device.index is not None and device.index >= count):
            build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "CPU only"
            raise ModelError(
                f"config key device: {name}, but torch {torch.__version__} ({build}) finds "
                f"{count} CUDA device(s) on {socket.gethostname()}; set device: auto or cpu, "
                "or run this job where a GPU is visible"
            )
    return device


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


def _console_record(record: logging.LogRecord) -> bool:
    """A job's log record for the console: WARNING and above, and `kneurons.progress` lines."""
    return record.levelno >= logging.WARNING or record.pathname.endswith(
        os.path.join("kneurons", "progress.py")
    )


def start_job(snakemake, seed: int = 0) -> tuple[logging.Logger, torch.device | None]:
    """Send logs to the rule's log file, use exactly the job's threads, seed everything.

    Returns a logger and the torch device chosen by config key `device` (auto: CUDA if present),
    which the rule passes as `params.job` with `deterministic` (scripts never read the config);
    in a job that has not imported torch (see the module docstring), None.
    """
    log_path = snakemake.log[0] if len(snakemake.log) else None
    handlers = [logging.FileHandler(log_path, mode="w")] if log_path else []
    # The console (stderr) gets warnings, errors and the progress lines of long loops; the log
    # file gets everything (Snakemake's console shows each job's last line from it).
    console = logging.StreamHandler(sys.stderr)
    console.addFilter(_console_record)
    handlers.append(console)
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


def _job_files(names) -> list[str]:
    """A job's input or output files (Snakemake's named lists, nested lists flattened)."""
    out = []
    if not isinstance(names, list | tuple) and not hasattr(names, "__iter__"):
        return out  # e.g. a namespace of named inputs without the list (tests' stand-ins)
    for item in names:
        out.extend(_job_files(item) if isinstance(item, list | tuple) else [str(item)])
    return out


def failure_line(err: BaseException, inputs, outputs) -> str | None:
    """The one line for a job's error, or None for an error that is a bug (its traceback is
    what a developer needs): a known input error (`DataError`, `ModelError`), a full disk or a
    read-only or forbidden folder, an input file that does not read (checked only now, after
    the failure)."""
    if isinstance(err, DataError | ModelError):
        return " ".join(str(err).split()) or type(err).__name__
    if isinstance(err, OSError):
        line = disk_error_line(err, _job_files(outputs))
        if line is not None:
            return line
    if isinstance(err, Exception):
        return damaged_input_line(f for f in _job_files(inputs) if not f.endswith(".py"))
    return None


def _report(rule: str, log_path: str | None, message: str) -> None:
    """The line to the job's log file: through the logging `start_job` set up, else written
    directly (a job that failed before `start_job` still leaves a log). A log that cannot be
    written (the disk is full) is skipped without a traceback: stderr gets the line anyway."""
    logging.raiseExceptions = False
    to_file = log_path and any(
        getattr(h, "baseFilename", None) == os.path.abspath(log_path)
        for h in logging.getLogger().handlers
    )
    if to_file:
        logging.getLogger(rule).error("%s", message)
    elif log_path:
        _append(log_path, f"ERROR {message}\n")


def _append(path: str, text: str) -> None:
    try:
        with open(path, "a") as fh:
            fh.write(text)
    except OSError:
        pass


def run_job(main, snakemake) -> None:
    """Run `main(snakemake)`; a known error (`failure_line`) is logged as one line (no
    traceback) and the job exits 1. The line is the error's message with its whitespace
    collapsed: a message that quotes a multi-line text (a library's own error) stays one line."""
    try:
        main(snakemake)
    except Exception as err:
        inputs, outputs = getattr(snakemake, "input", []), getattr(snakemake, "output", [])
        message = failure_line(err, inputs, outputs)
        if message is None:
            raise
        logs = getattr(snakemake, "log", [])
        log_path = logs[0] if len(logs) else None
        _report(snakemake.rule, log_path, message)
        print(f"Error in rule {snakemake.rule}: {message}", file=sys.stderr)
        sys.exit(1)


def in_process(job, rule: str, inputs, outputs, log_path: str, *args, **kwargs):
    """Run the body of a rule that runs in Snakemake's own process (`run:`) as `run_job` runs a
    script: the log file exists whatever happens, and a known error (`failure_line`) stops the
    job with one line (a WorkflowError, which Snakemake prints without a traceback) instead of
    a stack of frames."""
    _append(log_path, "")
    try:
        return job(*args, **kwargs)
    except Exception as err:
        message = failure_line(err, inputs, outputs)
        if message is None:
            raise
        _append(log_path, f"ERROR {message}\n")
        from snakemake.exceptions import WorkflowError

        raise WorkflowError(f"Error in rule {rule}: {message}") from None
