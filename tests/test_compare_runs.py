"""benchmarks/compare_runs.py: two results folders compared exactly, or up to float rounding."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]


def load_script():
    spec = importlib.util.spec_from_file_location(
        "compare_runs", REPO / "benchmarks" / "compare_runs.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write(root: Path, name: str, frame: pd.DataFrame) -> None:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path)


def test_exact_tolerance_and_columns(tmp_path, capsys):
    compare = load_script()
    before, after = tmp_path / "before", tmp_path / "after"
    scores = pd.DataFrame(
        {
            "unit": [0, 1, 2],
            "score": [0.5, 0.25, np.nan],
            "kept": [True, False, True],
            "probs": [[0.1, 0.9], [0.5, 0.5], [1.0, 0.0]],
        }
    )
    write(before, "scores/m/layer0.parquet", scores)
    rounded = scores.assign(
        score=scores["score"] + 3e-13, probs=[[0.1, 0.9 - 1e-12], [0.5, 0.5], [1.0, 0.0]]
    )
    write(after, "scores/m/layer0.parquet", rounded)
    write(before, "summary/m/auc.parquet", pd.DataFrame({"auc": [0.75]}))
    write(after, "summary/m/auc.parquet", pd.DataFrame({"auc": [0.75], "unit_kind": ["neuron"]}))
    write(before, "d/store/x.parquet", pd.DataFrame({"a": [1]}))  # the store is never compared
    (before / "summary" / "m" / "summary.md").write_text("same\n")
    (after / "summary" / "m" / "summary.md").write_text("same\n")

    # exact: the rounding difference and the new column both differ
    assert compare.main([str(before), str(after)]) == 1
    out = capsys.readouterr().out
    assert "table differs: scores/m/layer0.parquet" in out
    assert "table differs: summary/m/auc.parquet" in out
    assert "1 text files identical, 0 differ" in out

    # within a tolerance and on the common columns: equal, and the notes say what was set aside
    assert compare.main([str(before), str(after), "--rtol", "1e-9", "--common-columns"]) == 0
    out = capsys.readouterr().out
    assert "2 tables equal, 0 differ, 0 missing" in out
    assert "summary/m/auc.parquet: columns compared without unit_kind" in out
    # 1e-12 in a list cell, of a column whose largest value is 1
    assert "scores/m/layer0.parquet: equal within tolerance, largest difference 1e-12" in out

    # a real change is not rounding; a lost table is missing
    write(after, "scores/m/layer0.parquet", scores.assign(score=[0.5, 0.26, np.nan]))
    (after / "summary" / "m" / "auc.parquet").unlink()
    assert compare.main([str(before), str(after), "--rtol", "1e-9", "--common-columns"]) == 1
    out = capsys.readouterr().out
    assert "scores/m/layer0.parquet: column 'score': 0.02 of its scale" in out
    assert "missing after: summary/m/auc.parquet" in out
