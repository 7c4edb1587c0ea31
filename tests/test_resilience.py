"""Failures injected into real Snakemake runs: a killed job, and cluster dry runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from workflow_helpers import REPO, snakemake_command, write_config

from kneurons.io import read_parquet_metadata

TARGETS = [
    "results/tiny/models/tiny/metrics.json",
    "results/tiny/scores/tiny/integrated_gradients/key/layer0.parquet",
    "results/tiny/scores/tiny/activation/ffn_in/layer1.parquet",
]


def tiny_config(workdir: Path, epochs: int) -> Path:
    return write_config(workdir, finetune__epochs=epochs)


def command(workdir: Path, config: Path, *args: str) -> list[str]:
    return snakemake_command(workdir, config, *args, cores=1)


@pytest.mark.integration
def test_killed_finetune_resumes_and_matches_an_uninterrupted_run(tmp_path):
    epochs = 60
    clean_dir, killed_dir = tmp_path / "clean", tmp_path / "killed"
    clean_dir.mkdir()
    killed_dir.mkdir()

    # Kill the whole Snakemake process group once the first epoch's state is on disk.
    config = tiny_config(killed_dir, epochs)
    proc = subprocess.Popen(
        command(killed_dir, config, *TARGETS),
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    state = killed_dir / "results/tiny/models/tiny/finetune_state.pt"
    deadline = time.time() + 300
    while not state.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert state.exists(), "training never wrote its resumable state"
    time.sleep(0.3)  # let it get a few epochs further
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()

    models = killed_dir / "results/tiny/models/tiny"
    assert not (models / "model.pt").exists() and not (models / "metrics.json").exists()
    # SIGKILL may land while the state is being written: then only a temporary file (never a
    # half-written state) is left, and the next write of the state removes it.
    saved_epoch = torch.load(state, weights_only=True)["epoch"]
    assert 1 <= saved_epoch < epochs

    # A killed Snakemake leaves its lock; unlocking and rerunning completes the job.
    subprocess.run(command(killed_dir, config, "--unlock"), check=True, capture_output=True)
    resumed = subprocess.run(command(killed_dir, config, *TARGETS), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    log = (killed_dir / "logs/tiny/finetune/tiny.log").read_text()
    assert f"resuming after epoch {saved_epoch}" in log
    assert not state.exists()
    assert not list(models.glob(".*.tmp")), "a temporary file was left behind"

    clean = subprocess.run(
        command(clean_dir, tiny_config(clean_dir, epochs), *TARGETS), capture_output=True, text=True
    )
    assert clean.returncode == 0, clean.stderr[-3000:]

    # Determinism: same config and seed, bit-identical metrics, weights and scores. (Score files
    # also record their wall time in the metadata, so the tables are compared, not the bytes.)
    metrics_file = "results/tiny/models/tiny/metrics.json"
    assert (killed_dir / metrics_file).read_bytes() == (clean_dir / metrics_file).read_bytes()
    for name in TARGETS[1:]:
        a, b = pd.read_parquet(killed_dir / name), pd.read_parquet(clean_dir / name)
        pd.testing.assert_frame_equal(a, b, check_exact=True)
        meta_a, meta_b = (
            read_parquet_metadata(killed_dir / name),
            read_parquet_metadata(clean_dir / name),
        )
        for timing in ("seconds", "threads"):  # wall time and threads of the job
            meta_a.pop(timing, None)
            meta_b.pop(timing, None)
        assert meta_a == meta_b, name
    a = torch.load(killed_dir / "results/tiny/models/tiny/model.pt", weights_only=True)
    b = torch.load(clean_dir / "results/tiny/models/tiny/model.pt", weights_only=True)
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
    metrics = json.loads((clean_dir / "results/tiny/models/tiny/metrics.json").read_text())
    assert 0 <= metrics["test"]["accuracy"] <= 1


def test_slurm_profile_dry_run_without_slurm(tmp_path):
    """Partition and account come from the environment (no file to edit); GPU rules go to
    KNEURONS_SLURM_GPU_PARTITION."""
    config = tiny_config(tmp_path, 2)
    env = {
        **os.environ,
        "KNEURONS_SLURM_PARTITION": "short",
        "KNEURONS_SLURM_GPU_PARTITION": "gpu",
        "KNEURONS_SLURM_ACCOUNT": "mylab",
    }
    run = subprocess.run(
        command(tmp_path, config, "--workflow-profile", str(REPO / "profiles/slurm"), "--dry-run"),
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    out = run.stdout + run.stderr
    assert "slurm_account=mylab" in out and "slurm_partition=short" in out
    assert "slurm_partition=gpu" in out  # finetune and score_neurons
    assert "finetune" in out and "score_neurons" in out


def local_rules() -> set[str]:
    """Rules declared `localrule: True` (run on the submit host, never submitted)."""
    names = set()
    for path in (REPO / "rules").glob("*.smk"):
        for block in path.read_text().split("\nrule ")[1:]:
            name, body = block.split(":", 1)
            if "localrule: True" in body.split("\nrule ")[0]:
                names.add(name.strip())
    return names


def test_default_config_submits_tens_of_jobs_on_slurm(tmp_path):
    """A dry run of the shipped default config through the SLURM profile: every job that would
    be a cluster submission (a group job counts once) is counted."""
    run = subprocess.run(
        snakemake_command(
            tmp_path,
            REPO / "config/config.yaml",
            "--workflow-profile",
            str(REPO / "profiles/slurm"),
            "--dry-run",
        ),  # fmt: skip
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    out = run.stdout + run.stderr
    local = local_rules()
    assert {"fetch_uniprot", "fetch_pretrained", "provenance", "score_random"} <= local
    jobs = [line.split()[1].rstrip(":") for line in out.splitlines() if line.startswith("rule ")]
    groups = [line for line in out.splitlines() if "Group job" in line]
    submitted = [rule for rule in jobs if rule not in local and rule != "all"] + groups
    # the default: 3 scored methods x 6 layers, 6 layer types evaluated, 6 layer types of
    # class-specific targets, the data chain as one group, the site table, fine-tuning, the
    # unmasked evaluation, the neuron profiles and the summaries as one group
    assert len(jobs) > 300  # hundreds of cached targets ...
    expected = 18 + 6 + 6 + 1 + 1 + 1 + 1 + 1 + 1
    assert len(submitted) == expected, sorted(submitted)  # ... tens of submissions
