"""Numbers on the command line: nested --config values arrive as strings; and
`models.<id>.replicates` expanded into one model entry per replicate."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from workflow_helpers import REPO, run_snakemake, schema_defaults, write_config

from kneurons.configuration import (
    coerce_numbers,
    expand_replicates,
    group_names,
    replicate_groups,
)

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


# models.<id>.replicates (kneurons.configuration.expand_replicates)

BASE = {"source": "random", "name": "esm2_t6_8M_UR50D", "seed": 0}


def test_replicates_expand_into_ids_and_seeds():
    models = {"m": {**BASE, "replicates": 3}, "other": {"source": "pretrained", "name": "x"}}
    out = expand_replicates(models, finetune_seed=7)
    assert list(out) == ["m", "m_rep2", "m_rep3", "other"]
    assert out["m"] == BASE  # replicate 1: the entry as written, under its own id
    assert out["m_rep2"] == {**BASE, "finetune_seed": 8}
    assert out["m_rep3"] == {**BASE, "finetune_seed": 9}
    assert out["other"] == models["other"]
    assert replicate_groups(out) == [["m", "m_rep2", "m_rep3"]]
    assert group_names(replicate_groups(out)) == {"m": ["m", "m_rep2", "m_rep3"]}
    # an explicit finetune_seed is the first replicate's seed
    explicit = expand_replicates({"m": {**BASE, "finetune_seed": 4, "replicates": 2}}, 0)
    assert [e["finetune_seed"] for e in explicit.values()] == [4, 5]
    # expanding an expanded config changes nothing (jobs rebuild the DAG from it)
    assert expand_replicates(out, 7) == out


def test_a_config_without_replicates_is_unchanged():
    models = {
        "a0": {**BASE, "finetune_seed": 0},
        "a1": {**BASE, "finetune_seed": 1},
        "b": {"source": "pretrained", "name": "esm2_t6_8M_UR50D"},
        "c": {**BASE, "replicates": 1},  # the schema's default: the key is dropped
    }
    out = expand_replicates(models, 0)
    assert out == {**{k: v for k, v in models.items() if k != "c"}, "c": BASE}
    assert list(out) == list(models)
    validated = schema_defaults(models={"m": dict(BASE)})["models"]
    assert validated["m"]["replicates"] == 1 and expand_replicates(validated, 0) == {"m": BASE}


def test_replicate_ids_and_seeds_that_collide_are_refused():
    with pytest.raises(ValueError, match=r"^models\.m\.replicates: .*'m_rep2', which is already"):
        expand_replicates({"m": {**BASE, "replicates": 2}, "m_rep2": dict(BASE)}, 0)
    # a replicate's seed is another, otherwise identical, model's: the same fine-tuning twice
    clash = {"m": {**BASE, "replicates": 3}, "s": {**BASE, "finetune_seed": 2}}
    with pytest.raises(ValueError, match=r"^models\.m\.replicates: replicate 'm_rep3' .* seed 2"):
        expand_replicates(clash, 0)
    with pytest.raises(ValueError, match="models.m.replicates"):  # the implicit seed too
        expand_replicates({"m": {**BASE, "replicates": 2}, "s": {**BASE, "finetune_seed": 0}}, 0)
    # another starting point (seed) or seeds outside the range are fine
    assert len(expand_replicates({**clash, "s": {**BASE, "seed": 1, "finetune_seed": 2}}, 0)) == 4
    assert len(expand_replicates({**clash, "s": {**BASE, "finetune_seed": 3}}, 0)) == 4
    with pytest.raises(ValueError) as err:
        expand_replicates(clash, 0)
    assert "\n" not in str(err.value)


def test_replicate_config_errors_stop_the_dag_with_one_line(tmp_path: Path):
    base = yaml.safe_load(write_config(tmp_path).read_text())
    (entry,) = base["models"].values()
    base["models"] = {"m": {**entry, "replicates": 2}, "m_rep2": entry}
    run = run_snakemake(tmp_path, write_config(tmp_path, base, name="bad.yaml"), "--dry-run")
    assert run.returncode != 0
    assert "Error in config: models.m.replicates: replicate 2 would be model 'm_rep2'" in (
        run.stderr
    )
    assert "Traceback" not in run.stderr


def test_a_number_where_a_pattern_or_an_integer_is_asked_for_becomes_the_number():
    # evaluation.max_tokens: `auto` or an integer; --config hands "4096" over as a string
    out = coerce_numbers({"evaluation": {"max_tokens": "4096"}}, SCHEMA)
    assert out["evaluation"]["max_tokens"] == 4096
    out = coerce_numbers({"evaluation": {"max_tokens": "auto"}}, SCHEMA)
    assert out["evaluation"]["max_tokens"] == "auto"
