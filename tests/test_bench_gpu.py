"""benchmarks/bench_gpu.py: the prepared GPU benchmark runs, and says so cleanly without CUDA."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "bench_gpu.py"


def run_script(*args: str, env: dict | None = None, timeout: float = 600):
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=REPO,
    )


def alive(pid: int, wait: float = 5.0) -> bool:
    """Whether `pid` still runs (a zombie does not count), after up to `wait` seconds."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return False
        if state == "Z":
            return False
        time.sleep(0.1)
    return True


def load_benchmark():
    spec = importlib.util.spec_from_file_location("bench_gpu", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_quick_gpu_run_prints_one_numeric_json_line_per_figure():
    run = run_script("--quick", "--skip-pipeline")
    assert run.returncode == 0, run.stderr[-3000:]
    records = [json.loads(line) for line in run.stdout.splitlines()]
    for record in records:
        value = record["value"]
        assert isinstance(value, int | float) and not isinstance(value, bool), record
    figures = {record["figure"] for record in records}
    assert figures == {
        "environment",
        "finetune_residues_per_s",
        "ig_s_per_example",
        "ig_shared_pass_ratio",
        "forward_residues_per_s",
        "masked_evals_per_s",
        "total_wall_s",
    }
    precisions = {(r["figure"], r["precision"]) for r in records}
    for figure in ("forward_residues_per_s", "masked_evals_per_s", "ig_s_per_example"):
        assert {(figure, p) for p in ("fp32", "tf32", "bf16")} <= precisions
    assert records[0]["figure"] == "environment" and records[-1]["figure"] == "total_wall_s"


def test_without_cuda_it_prints_skipped_and_exits_0():
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}  # hides any GPU from torch
    run = run_script(env=env, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    assert [json.loads(line) for line in run.stdout.splitlines()] == [
        {"figure": "skipped", "reason": "no CUDA device"}
    ]


def test_pipeline_time_limit_stops_the_run_and_counts_the_jobs_done(tmp_path):
    """What the pipeline figure does on a timeout, with a stand-in for Snakemake."""
    bench = load_benchmark()
    child = "import time; time.sleep(60)"
    stand_in = (
        "import subprocess, sys, time\n"
        f"job = subprocess.Popen([sys.executable, '-c', {child!r}])\n"  # a job of the run
        "print('job', job.pid)\n"
        "print('1 of 3 steps (33%) done', flush=True)\n"
        "time.sleep(60)\n"
    )
    run = bench.run_bounded([sys.executable, "-c", stand_in], tmp_path / "log", timeout=3)
    assert run.timed_out and 2.5 < run.seconds < 10
    assert bench.snakemake_progress(run.output) == (1, 1, 3)
    job = int(run.output.split("job ")[1].split()[0])
    assert not alive(job)  # the whole process group was stopped

    done = bench.run_bounded(
        [sys.executable, "-c", "print('3 of 3 steps (100%) done')"], tmp_path / "log2", 30
    )
    assert not done.timed_out and done.returncode == 0
    assert bench.snakemake_progress(done.output) == (1, 3, 3)
