"""Results per dataset: everything made from a dataset goes to `results/<dataset>/`, named by
`data.name` or by the input's name and a digest of its content and of the data settings
(`kneurons.configuration.dataset_id`), so that two datasets in one clone keep their own results."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml
from workflow_helpers import REPO, run_snakemake, write_config

from kneurons.configuration import dataset_id

TINY = yaml.safe_load((REPO / "tests/config/tiny.yaml").read_text())


def data_block(**changes):
    data = {key: value for key, value in TINY["data"].items() if key != "name"}
    return {**data, **changes}


def test_a_name_is_the_folder_as_given():
    assert dataset_id(data_block(name="my_enzymes"), {"input": "ab12"}) == "my_enzymes"


def test_without_a_name_the_id_is_the_file_name_and_a_digest_of_content_and_settings():
    data = data_block(input="path/to/Swiss Enzymes.tsv.gz")
    first = dataset_id(data, {"input": "ab12"})
    assert first.startswith("Swiss_Enzymes-") and len(first.split("-")[-1]) == 8
    # the same bytes elsewhere, and keys that do not describe this dataset's rows: the same id
    assert (
        dataset_id({**data, "input": "/elsewhere/Swiss Enzymes.tsv.gz"}, {"input": "ab12"}) == first
    )
    assert dataset_id({**data, "uniprot": {"query": "x"}}, {"input": "ab12"}) == first
    # other bytes, another setting, another name: a folder of their own
    assert dataset_id(data, {"input": "cd34"}) != first
    assert dataset_id({**data, "min_length": 21}, {"input": "ab12"}) != first
    assert dataset_id({**data, "split": {**data["split"], "seed": 1}}, {"input": "ab12"}) != first


def test_downloads_and_the_planted_motif_task_are_named_by_their_settings():
    download = data_block(input=None, uniprot={"query": "reviewed:true"})
    synthetic = data_block(input=None, synthetic={"n_per_class": 10})
    assert dataset_id(download, {}).startswith("uniprot-")
    assert dataset_id(synthetic, {}).startswith("synthetic-")
    other_query = data_block(input=None, uniprot={"query": "reviewed:false"})
    assert dataset_id(other_query, {}) != dataset_id(download, {})
    permuted = data_block(input=None, synthetic={"n_per_class": 10, "permute_labels": True})
    assert dataset_id(permuted, {}) != dataset_id(synthetic, {})


def test_a_name_of_a_shared_folder_is_refused(tmp_path):
    config = yaml.safe_load(write_config(tmp_path).read_text())
    config["data"]["name"] = "store"
    run = run_snakemake(tmp_path, write_config(tmp_path, config), "--dry-run")
    assert run.returncode != 0
    assert "Error in config: data.name: 'store' is the name of a shared folder" in run.stderr


def run_folders(workdir: Path) -> set[str]:
    return {p.name for p in (workdir / "results").iterdir()} - {"store", "input"}


@pytest.mark.integration
def test_two_datasets_in_one_clone_keep_their_own_results(tmp_path):
    first = yaml.safe_load(write_config(tmp_path).read_text())
    del first["data"]["name"]
    tsv = Path(first["data"]["input"])
    lines = tsv.read_text().splitlines(keepends=True)
    other = tmp_path / "other.tsv"
    other.write_text("".join(lines[:-9]))  # another dataset: the same file less 9 rows
    second = {**first, "data": {**first["data"], "input": str(other)}}
    configs = [write_config(tmp_path, c, name=f"{i}.yaml") for i, c in enumerate([first, second])]

    for config in configs:
        run = run_snakemake(tmp_path, config)
        assert run.returncode == 0, run.stderr[-3000:]
    folders = sorted(run_folders(tmp_path))
    assert len(folders) == 2 and {f.split("-")[0] for f in folders} == {"tiny", "other"}
    cleaned = {
        f: len(pd.read_parquet(tmp_path / "results" / f / "data/cleaned.parquet")) for f in folders
    }
    assert (
        cleaned[next(f for f in folders if f.startswith("tiny"))]
        > cleaned[next(f for f in folders if f.startswith("other"))]
    )
    for folder in folders:
        assert (tmp_path / "results" / folder / "summary/tiny/summary.html").is_file()
        assert (tmp_path / "logs" / folder / "finetune/tiny.log").is_file()
    # the second run overwrote nothing of the first: running the first again has nothing to do
    again = run_snakemake(tmp_path, configs[0])
    assert again.returncode == 0, again.stderr[-3000:]
    assert "Nothing to be done" in again.stdout + again.stderr, again.stderr[-6000:]


def readme_command(prefix: str) -> list[str]:
    """The README's command line that starts with `prefix`, split as a shell would."""
    import shlex

    line = next(
        line for line in (REPO / "README.md").read_text().splitlines() if line.startswith(prefix)
    )
    return shlex.split(line)


@pytest.mark.integration
def test_the_readme_command_for_own_data_offline_downloads_nothing(tmp_path):
    """The documented one command for a local TSV without pretrained weights: its DAG has no
    download, and a file too small for the config stops with a line naming the key."""
    import subprocess

    from workflow_helpers import SNAKEMAKE

    tsv = Path(write_config(tmp_path).parent / "tiny.tsv")
    words = readme_command("snakemake --cores all --configfile config/cpu_8M.yaml --config")
    args = [str(REPO / w) if w.startswith("config/") else w for w in words[1:]]
    args = [a.replace("path/to/enzymes.tsv", str(tsv)) for a in args]
    command = [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(tmp_path), *args]
    plan = subprocess.run([*command, "--dry-run"], capture_output=True, text=True, timeout=600)
    assert plan.returncode == 0, plan.stderr[-3000:]
    assert "rule finetune" in plan.stdout
    assert "fetch_pretrained" not in plan.stdout and "fetch_uniprot" not in plan.stdout

    small = [a.replace("}", ", min_per_class: 40}") if a.startswith("data=") else a for a in args]
    command = [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(tmp_path), *small]
    run = subprocess.run(
        [*command, "--until", "prepare_dataset"], capture_output=True, text=True, timeout=600
    )
    assert run.returncode != 0
    errors = [line for line in run.stderr.splitlines() if line.startswith("Error in rule")]
    assert errors and "lower data.min_per_class" in errors[0], run.stderr[-2000:]
    assert "Traceback" not in run.stderr


def test_a_relative_input_missing_from_the_working_directory_is_one_line(tmp_path):
    """`-d DIR` reads a config's relative data.input from DIR: a missing file says so."""
    config = yaml.safe_load(write_config(tmp_path).read_text())
    config["data"]["input"] = "tests/data/tiny_uniprot.tsv"  # relative to the clone, not tmp_path
    run = run_snakemake(tmp_path, write_config(tmp_path, config, name="relative.yaml"), "-n")
    assert run.returncode != 0 and "Traceback" not in run.stderr
    assert (
        "Error in config: data.input: no such file: tests/data/tiny_uniprot.tsv (a relative "
        f"path is read from the working directory, {tmp_path}: with -d/--directory give an "
        "absolute path)"
    ) in run.stderr.splitlines()
