"""Running the real Snakefile from tests: the command line and a tiny config in a work dir."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml
from make_tiny_tsv import write_uniprot_tsv

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


def snakemake_command(workdir: Path, config: Path, *args: str, cores: int = 2) -> list[str]:
    """`snakemake` on this repository's Snakefile, run in `workdir` with `config`."""
    return [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(workdir),
            "--configfile", str(config), "--cores", str(cores), *args]  # fmt: skip


def run_snakemake(workdir: Path, config: Path, *args: str, cores: int = 2):
    return subprocess.run(
        snakemake_command(workdir, config, *args, cores=cores),
        capture_output=True,
        text=True,
        timeout=900,
    )


def write_config(workdir: Path, config: dict | None = None, **changes) -> Path:
    """Write `config` (default: tests/config/tiny.yaml reading a fresh tiny TSV in `workdir`)
    with `section__key=value` changes applied; returns its path."""
    if config is None:
        config = yaml.safe_load((REPO / "tests/config/tiny.yaml").read_text())
        config["data"]["input"] = str(write_uniprot_tsv(workdir / "tiny.tsv"))
    for dotted, value in changes.items():
        section, key = dotted.split("__")
        config[section][key] = value
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


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
