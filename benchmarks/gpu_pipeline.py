"""The pipeline figure of benchmarks/bench_gpu.py (`pipeline_wall_s`, its docstring): the
planted-motif config end to end under a time limit, in a process group of its own that is
stopped as a whole when the limit passes."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from gpu_tools import REPO, Report, note

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
