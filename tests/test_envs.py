"""The conda environment for `--sdm conda` pins the same versions that pip installs."""

import re
import tomllib
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
# Snakemake itself runs the workflow; jobs in the conda environment do not import it.
NOT_IN_JOB_ENV = {"snakemake"}


def pins(requirements):
    out = {}
    for req in requirements:
        name, version = re.fullmatch(r"([A-Za-z0-9_.-]+)==([^\s;]+)", req.strip()).groups()
        out[name.lower()] = version
    return out


def test_conda_env_matches_pyproject_pins():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pip_pins = pins(project["dependencies"])
    env = yaml.safe_load((REPO / "envs/kneurons.yaml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    env_pins = pins(line for line in pip_section if not line.startswith("-"))
    expected = {k: v for k, v in pip_pins.items() if k not in NOT_IN_JOB_ENV}
    assert env_pins == expected
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python"))
    assert python == "python=3.11"
