"""Numbers on the command line: nested --config values arrive as strings."""

from __future__ import annotations

from pathlib import Path

import yaml
from workflow_helpers import REPO, run_snakemake, write_config

from kneurons.configuration import coerce_numbers

SCHEMA = yaml.safe_load((REPO / "config/schema.yaml").read_text())


def test_strings_become_the_numbers_the_schema_asks_for():
    config = {
        "scoring": {"n_examples": "3", "layer_types": ["key"], "random_seeds": "2"},
        "finetune": {"lr": "1e-3", "epochs": "2"},
        "evaluation": {"retention": ["50", "12.5"], "bootstrap": {"n": "100", "level": "0.9"}},
        "data": {"input": "123", "classes": ["1", "2"], "min_length": "x"},
        "models": {"m": {"source": "random", "name": "007", "seed": "4"}},
    }
    out = coerce_numbers(config, SCHEMA)
    assert out["scoring"] == {"n_examples": 3, "layer_types": ["key"], "random_seeds": 2}
    assert out["finetune"] == {"lr": 0.001, "epochs": 2}
    assert out["evaluation"]["retention"] == [50, 12.5]
    assert out["evaluation"]["bootstrap"] == {"n": 100, "level": 0.9}
    # where the schema allows a string, or the text is no number, nothing changes
    assert out["data"] == {"input": "123", "classes": ["1", "2"], "min_length": "x"}
    assert out["models"]["m"] == {"source": "random", "name": "007", "seed": 4}


def test_strings_become_the_booleans_the_schema_asks_for():
    config = {
        "class_specific": {"enabled": "true", "factors": ["0", "2"]},
        "residues": {"enabled": "False"},
        "profiles": {"enabled": "yes"},  # not a boolean word: left for validation to refuse
    }
    out = coerce_numbers(config, SCHEMA)
    assert out["class_specific"] == {"enabled": True, "factors": [0, 2]}
    assert out["residues"] == {"enabled": False}
    assert out["profiles"] == {"enabled": "yes"}


def test_numbers_on_the_command_line_pass_validation(tmp_path: Path):
    config = write_config(tmp_path)
    run = run_snakemake(
        tmp_path, config, "--dry-run", "--config", "scoring={n_examples: 3}", "finetune={lr: 0.01}"
    )
    assert run.returncode == 0, run.stderr[-2000:]
    bad = run_snakemake(tmp_path, config, "--dry-run", "--config", "scoring={n_examples: x}")
    assert bad.returncode != 0 and "n_examples" in bad.stdout + bad.stderr
