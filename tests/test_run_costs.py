"""benchmarks/run_costs.py reads a run's benchmark files and logs in the per-dataset layout."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def load_script():
    spec = importlib.util.spec_from_file_location("run_costs", REPO / "benchmarks" / "run_costs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def job(workdir: Path, relative: str, wall: float, log: str) -> None:
    bench = workdir / "results" / "ds-1" / "benchmarks" / f"{relative}.tsv"
    bench.parent.mkdir(parents=True, exist_ok=True)
    bench.write_text(f"s\th:m:s\tmax_rss\n{wall}\t0:00:10\t100\n")
    path = workdir / "logs" / "ds-1" / f"{relative}.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(log)


def test_compute_targets_and_fixed_cost_per_rule(tmp_path, capsys, monkeypatch):
    costs = load_script()
    job(
        tmp_path,
        "evaluate_masked/m/zero/layer_type/key/keep",
        110.0,
        "2026-12-07 06:26:45,000 INFO rule evaluate_masked: 2 thread(s), device cpu\n"
        "2026-12-07 06:28:40,000 INFO 66 targets (1 layer types or groups x 22 methods x 3 "
        "retention levels): 66 distinct masks, 0 from the store, 66 computed (0 of them for a bad "
        "store entry) in 100.00 s (1.5 s per mask)\n",
    )
    job(
        tmp_path,
        "score_neurons/m/integrated_gradients/layer0",
        20.0,
        "2026-12-07 06:20:00,000 INFO start\n"
        "2026-12-07 06:20:15,000 INFO layer 0: key scored on 32 examples in 15.00 s\n",
    )
    jobs = costs.job_rows(tmp_path)
    masked = jobs.set_index("rule").loc["evaluate_masked"]
    assert masked["compute_s"] == 100.0 and masked["targets"] == 66
    assert jobs.set_index("rule").loc["score_neurons", "compute_s"] == 15.0
    monkeypatch.setattr(sys, "argv", ["run_costs.py", str(tmp_path)])
    costs.main()
    out = capsys.readouterr().out
    assert "summed wall time of all 2 benchmarked jobs: 130.0 s" in out
    # fixed cost: (110 - 100) + (20 - 15) of 130 s
    assert "fixed share of the wall time of the jobs that state their compute" in out
    assert "11.5%" in out
