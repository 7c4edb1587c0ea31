"""Running the real Snakefile from tests: the command line and a tiny config in a work dir."""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml
from make_tiny_tsv import write_uniprot_tsv

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
# The run folder of tests/config/tiny.yaml (data.name: tiny), before a vocab path in it.
TINY_RUN = "results/tiny/"


def snakemake_command(
    workdir: Path, config: Path, *args: str, cores: int = 2, repo: Path = REPO
) -> list[str]:
    """`snakemake` on the Snakefile of `repo` (this repository), run in `workdir` with `config`."""
    return [SNAKEMAKE, "-s", str(repo / "Snakefile"), "-d", str(workdir),
            "--configfile", str(config), "--cores", str(cores), *args]  # fmt: skip


def run_snakemake(workdir: Path, config: Path, *args: str, cores: int = 2, repo: Path = REPO):
    return subprocess.run(
        snakemake_command(workdir, config, *args, cores=cores, repo=repo),
        capture_output=True,
        text=True,
        timeout=900,
    )


def write_config(
    workdir: Path, config: dict | None = None, name: str = "config.yaml", **changes
) -> Path:
    """Write `config` (default: tests/config/tiny.yaml reading a fresh tiny TSV in `workdir`)
    with `section__key=value` changes applied, as `workdir/name`; returns its path."""
    if config is None:
        config = yaml.safe_load((REPO / "tests/config/tiny.yaml").read_text())
        config["data"]["input"] = str(write_uniprot_tsv(workdir / "tiny.tsv"))
    for dotted, value in changes.items():
        section, key = dotted.split("__")
        config[section][key] = value
    path = workdir / name
    path.write_text(yaml.safe_dump(config))
    return path


# What a workflow needs to run: a copy of these is a checkout of its own, whose code a test may
# edit without touching this repository.
WORKFLOW_PARTS = ("Snakefile", "rules", "workflow", "src", "config", "report", "envs", "profiles")


def copy_workflow(dest: Path) -> Path:
    """A copy of this repository's workflow and library at `dest`; returns `dest`."""
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for part in WORKFLOW_PARTS:
        source = REPO / part
        if source.is_dir():
            shutil.copytree(source, dest / part, ignore=ignore)
        else:
            dest.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / part)
    return dest


@dataclass
class TinyRun:
    """The tiny pipeline, run once from a copy of the workflow (`repo`) in `workdir`."""

    repo: Path
    workdir: Path
    config: Path
    run: subprocess.CompletedProcess

    def snakemake(self, *args: str, config: Path | None = None):
        return run_snakemake(self.workdir, config or self.config, *args, repo=self.repo)


def schema_defaults(**sections) -> dict:
    """A minimal config with Snakemake's validation filling in config/schema.yaml's defaults."""
    from snakemake.utils import validate

    config = {
        "data": {},
        "models": {"m": {"source": "random", "name": "esm2_t6_8M_UR50D"}},
        "finetune": {},
        "scoring": {"layer_types": ["key"], "methods": ["activation"]},
        "evaluation": {"retention": [50]},
        **sections,
    }
    validate(config, str(REPO / "config/schema.yaml"))
    return config
