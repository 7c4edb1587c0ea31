"""What a user can get wrong, through the real `snakemake`: each mistake ends the run with one
line that names the file, line or key, and no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from make_tiny_tsv import write_uniprot_tsv
from workflow_helpers import REPO, run_snakemake


def tiny_config(workdir: Path, tsv: Path, **sections) -> Path:
    config = yaml.safe_load((REPO / "tests/config/tiny.yaml").read_text())
    config["data"]["input"] = str(tsv)
    for section, values in sections.items():
        config[section] = {**config.get(section, {}), **values}
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def rows_of(tsv: Path) -> list[dict]:
    """The tiny table's rows, with UniProt's Length column."""
    lines = write_uniprot_tsv(tsv).read_text().splitlines()
    header = lines[0].split("\t")
    rows = [dict(zip(header, line.split("\t"), strict=True)) for line in lines[1:]]
    return [{**row, "Length": str(len(row["Sequence"]))} for row in rows]


def write_rows(tsv: Path, rows: list[dict]) -> Path:
    columns = ["Entry", "EC number", "Length", "Sequence"]  # sequence last, as UniProt's
    lines = ["\t".join(columns), *("\t".join(row[c] for c in columns) for row in rows)]
    tsv.write_text("\n".join(lines) + "\n")
    return tsv


def one_class(tsv: Path) -> Path:
    """Every EC number set to class 3."""
    return write_rows(tsv, [{**row, "EC number": "3.1.1.1"} for row in rows_of(tsv)])


def cut_short(tsv: Path) -> Path:
    """The last row stops inside its sequence (a truncated download)."""
    write_rows(tsv, rows_of(tsv))
    tsv.write_text(tsv.read_text().rstrip("\n")[:-7] + "\n")
    return tsv


def too_short(tsv: Path) -> Path:
    """Every sequence shorter than the tiny config's minimum (20 residues)."""
    rows = [{**row, "Sequence": row["Sequence"][:10], "Length": "10"} for row in rows_of(tsv)]
    return write_rows(tsv, rows)


CASES = {
    # name: (make the input, config changes, target, rule, words the line must hold)
    "one class": (one_class, {}, "results/tiny/data/train.parquet", "clean_dataset",
                  ["only one class left"]),
    "truncated file": (cut_short, {}, "results/tiny/data/train.parquet", "clean_dataset",
                       ["line", "Length"]),
    "no rows left": (too_short, {}, "results/tiny/data/train.parquet", "clean_dataset",
                     ["no rows left", "too_short"]),
    "missing checkpoint": (write_uniprot_tsv,
                           {"models": {"tiny": {"source": "checkpoint", "path": "/nope/m.pt"}}},
                           None, None, ["Error in config: models.tiny", "/nope/m.pt"]),
    "qkv without query": (write_uniprot_tsv, {"evaluation": {"scopes": ["qkv"]}}, None, None,
                          ["Error in config: evaluation.scopes"]),
    "bad retention": (write_uniprot_tsv, {"evaluation": {"retention": [150]}}, None, None,
                      ["retention"]),
}  # fmt: skip


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_a_user_mistake_ends_with_one_line(tmp_path, case):
    make, changes, target, rule, words = CASES[case]
    tsv = make(tmp_path / "enzymes.tsv")
    config = tiny_config(tmp_path, tsv, **changes)
    run = run_snakemake(tmp_path, config, *([target] if target else ["--dry-run"]))
    assert run.returncode != 0
    output = run.stdout + run.stderr
    assert "Traceback" not in output, output[-3000:]
    if rule:  # a job's error: one "Error in rule" line naming the user's file
        lines = [
            line for line in run.stderr.splitlines() if line.startswith(f"Error in rule {rule}: ")
        ]
        assert lines, run.stderr[-3000:]
        assert str(tsv) in lines[0] and all(w in lines[0] for w in words), lines[0]
    else:  # the DAG build: the key named before any job runs, as the last line
        assert all(w in output for w in words), output[-3000:]
        last = output.strip().splitlines()[-1]
        assert "File " not in output and ("config" in last or "retention" in output), last
        assert not (tmp_path / "results/tiny/models").exists()
