"""The tiny config on a real SLURM cluster through profiles/slurm, with faults injected.

Needs a running cluster whose jobs see this checkout and /tmp: `.ci/slurm-cluster` (as root)
starts a one-node one; without one (or with KNEURONS_SLURM_TEST=0) these tests skip. The
cluster has no accounting database, so job status comes from squeue
(`--slurm-status-command squeue`), as docs/running.md says."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
from workflow_helpers import REPO, snakemake_command


def _cluster_missing() -> str | None:
    """Why no SLURM cluster can run these tests, or None when one can."""
    if os.environ.get("KNEURONS_SLURM_TEST") == "0":
        return "KNEURONS_SLURM_TEST=0"
    if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
        return "SLURM is not installed (no sinfo/sbatch); `.ci/slurm-cluster` (as root) starts one"
    try:
        states = subprocess.run(
            ["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, timeout=20
        ).stdout.split()
    except subprocess.TimeoutExpired:
        return "sinfo does not answer: no SLURM controller is running"
    if not any(state.rstrip("*~#") in ("idle", "mix", "alloc") for state in states):
        return f"no SLURM node is up (sinfo: {states or 'no nodes'}); run `.ci/slurm-cluster`"
    return None


pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(_cluster_missing() is not None, reason=str(_cluster_missing())),
]

# partition and account come from the environment (profiles/slurm); the test cluster has no
# accounting, so any account name is accepted and shows in squeue
ENV = {"KNEURONS_SLURM_PARTITION": "debug", "KNEURONS_SLURM_ACCOUNT": "kneurons"}
RUN_TIMEOUT = 900
SUBMITTED = re.compile(r"has been submitted with SLURM jobid (\d+) \(log: (\S+)\)")
# written by the data group job and the fine-tuning job, the first two submissions
FINISHED_FIRST = [
    "results/tiny/data/cleaned.parquet",
    "results/tiny/data/train.parquet",
    "results/tiny/data/val.parquet",
    "results/tiny/data/test.parquet",
    "results/tiny/models/tiny/model.pt",
    "results/tiny/models/tiny/metrics.json",
    "results/tiny/models/tiny/training_log.tsv",
]


def slurm_command(workdir: Path, config: Path, *args: str) -> list[str]:
    return snakemake_command(
        workdir,
        config,
        "--workflow-profile",
        str(REPO / "profiles/slurm"),
        "--slurm-status-command",
        "squeue",
        "--slurm-init-seconds-before-status-checks",
        "5",  # the default 40 s would make the tiny run mostly waiting
        "--latency-wait",
        "5",
        *args,
    )


def start(workdir: Path, config: Path, log: Path) -> subprocess.Popen:
    with log.open("w") as out:
        return subprocess.Popen(
            slurm_command(workdir, config),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, killed as a whole in the test
            env={**os.environ, **ENV},
        )


def our_jobs(workdir: Path) -> list[dict[str, str]]:
    """Queued and running SLURM jobs submitted from `workdir`."""
    out = subprocess.run(
        ["squeue", "-h", "-o", "%i|%T|%a|%P|%k|%Z"], capture_output=True, text=True, timeout=30
    ).stdout
    keys = ("id", "state", "account", "partition", "comment", "workdir")
    jobs = [dict(zip(keys, line.split("|"), strict=True)) for line in out.splitlines()]
    return [job for job in jobs if Path(job["workdir"]).resolve() == workdir.resolve()]


def cancel_all(workdir: Path) -> None:
    """Cancel the jobs submitted from `workdir` and wait until they have left the queue."""
    deadline = time.time() + 120
    while (jobs := our_jobs(workdir)) and time.time() < deadline:
        subprocess.run(["scancel", *(job["id"] for job in jobs)], capture_output=True)
        time.sleep(1)
    assert not our_jobs(workdir), "jobs left in the queue"


def running_job(proc: subprocess.Popen, workdir: Path, rule: str, log: Path) -> dict[str, str]:
    """The first job of `rule` seen RUNNING, while the run goes on."""
    deadline = time.time() + RUN_TIMEOUT
    while time.time() < deadline:
        assert proc.poll() is None, f"the run ended early:\n{log.read_text()[-3000:]}"
        for job in our_jobs(workdir):
            if job["state"] == "RUNNING" and job["comment"].startswith(f"rule_{rule}"):
                return job
        time.sleep(0.2)
    raise AssertionError(f"no {rule} job ran within {RUN_TIMEOUT} s")


def finish(proc: subprocess.Popen, log: Path) -> str:
    try:
        proc.wait(timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    text = log.read_text()
    assert proc.returncode == 0, text[-5000:]
    return text


def submissions(log_text: str, workdir: Path) -> list[tuple[str, str]]:
    """(SLURM job id, the job's log folder relative to .snakemake/slurm_logs) per submission."""
    logs = workdir / ".snakemake/slurm_logs"
    return [
        (jobid, str(Path(path).parent.relative_to(logs)))
        for jobid, path in SUBMITTED.findall(log_text)
    ]


def assert_eval_tables_equal(workdir: Path, reference: Path) -> None:
    def tables(root: Path) -> list[Path]:
        return sorted(p.relative_to(root) for p in (root / "results/tiny/eval").rglob("*.parquet"))

    # the session's local run may have been extended by other tests (more variants): every
    # table the cluster run wrote must be one of its tables, and equal
    names = tables(workdir)
    assert len(names) == 17, names  # tiny config: 4 methods x 2 layer types x 2 levels + unmasked
    assert set(names) <= set(tables(reference)), sorted(set(names) - set(tables(reference)))
    for name in names:
        pd.testing.assert_frame_equal(
            pd.read_parquet(workdir / name), pd.read_parquet(reference / name), check_exact=True
        )


@pytest.fixture
def workdir(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    procs: list[subprocess.Popen] = []
    yield work, procs
    for proc in procs:  # a failed test leaves no Snakemake and no jobs behind
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    cancel_all(work)


@pytest.fixture(scope="module")
def reference(tiny_run):
    """The same config run locally (the session's shared tiny run)."""
    assert tiny_run.run.returncode == 0, tiny_run.run.stderr[-3000:]
    return tiny_run


def test_slurm_run_retries_a_cancelled_job_and_matches_a_local_run(workdir, reference):
    work, procs = workdir
    log = work.parent / "run.log"
    procs.append(proc := start(work, reference.config, log))

    # cancel a scoring job while it runs (one that ends before scancel reaches it: the next)
    while True:
        job = running_job(proc, work, "score_neurons", log)
        if subprocess.run(["scancel", job["id"]], capture_output=True).returncode == 0:
            break
    # partition and account came from the environment
    assert (job["partition"], job["account"]) == ("debug", "kneurons")

    text = finish(proc, log)
    assert f"SLURM-job '{job['id']}' failed" in text
    submitted = submissions(text, work)
    folders = Counter(folder for _, folder in submitted)
    cancelled = dict(submitted)[job["id"]]
    assert folders[cancelled] == 2, f"{cancelled} was not resubmitted: {folders}"
    # one submission per job (the cancelled one twice), none of the submit host's local rules
    assert len(submitted) == len(folders) + 1 > 5
    kinds = {folder.split("/")[0] for folder in folders}
    assert {"rule_finetune", "rule_score_neurons", "rule_evaluate_unmasked"} <= kinds
    assert "group_data_clean_dataset_prepare_dataset" in kinds
    assert not kinds & {"rule_provenance", "rule_select_units", "rule_score_random"}
    assert_eval_tables_equal(work, reference.workdir)


def test_slurm_head_killed_mid_run_resumes_without_redoing_finished_jobs(workdir, reference):
    work, procs = workdir
    log = work.parent / "killed.log"
    procs.append(proc := start(work, reference.config, log))

    # kill the Snakemake process (and its group) once scoring runs: data and model are done
    running_job(proc, work, "score_neurons", log)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    cancel_all(work)  # its orphaned jobs; the rerun submits them again
    finished = {name: (work / name).stat().st_mtime_ns for name in FINISHED_FIRST}

    unlock = subprocess.run(
        slurm_command(work, reference.config, "--unlock"), capture_output=True, text=True
    )
    assert unlock.returncode == 0, unlock.stderr[-3000:]
    log = work.parent / "resumed.log"
    procs.append(proc := start(work, reference.config, log))
    text = finish(proc, log)

    kinds = {folder.split("/")[0] for _, folder in submissions(text, work)}
    # the cancelled scoring is submitted again, the finished data and fine-tuning jobs are not
    assert "rule_score_neurons" in kinds
    assert not kinds & {"rule_finetune", "group_data_clean_dataset_prepare_dataset"}
    assert {name: (work / name).stat().st_mtime_ns for name in FINISHED_FIRST} == finished
    assert_eval_tables_equal(work, reference.workdir)
