"""Shared fixtures: tiny random-init ESM-2 classifiers and a small UniProt-format TSV."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch
from make_tiny_tsv import AMINO_ACIDS, write_uniprot_tsv  # noqa: F401 (re-exported for tests)
from workflow_helpers import TinyRun, copy_workflow, run_snakemake, write_config

from kneurons.model.batching import tokenize
from kneurons.model.classifier import Architecture, EsmClassifier, alphabet, build_random

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _deterministic_threads():
    torch.set_num_threads(1)


@pytest.fixture
def tiny_model() -> EsmClassifier:
    """2 layers, width 32, 4 heads, 3 classes; head initialised with a fixed seed."""
    torch.manual_seed(0)
    model = EsmClassifier(build_random(Architecture(2, 32, 4), seed=1), num_classes=3)
    return model.eval()


@pytest.fixture
def tiny_tokens() -> list[torch.Tensor]:
    rng = random.Random(0)
    seqs = ["".join(rng.choice(AMINO_ACIDS) for _ in range(n)) for n in (12, 30, 7, 21)]
    seqs[1] = seqs[1][:10] + "XU" + seqs[1][12:]
    return tokenize(alphabet(), seqs)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> TinyRun:
    """The tiny pipeline, run once per session from a copy of the workflow (tests that edit the
    library edit the copy); tests that share it must leave its outputs as they found them."""
    root = tmp_path_factory.mktemp("tiny_run")
    repo = copy_workflow(root / "repo")
    workdir = root / "work"
    workdir.mkdir()
    config = write_config(workdir)
    return TinyRun(repo, workdir, config, run_snakemake(workdir, config, repo=repo))
