"""Where a finished run's time went: per rule, job wall time against the compute its logs report,
so the fixed cost (interpreter, imports, checkpoint load, tokenising) of every job is visible.

    python benchmarks/run_costs.py path/to/workdir          # the directory Snakemake ran in

Reads `results/benchmarks/**/*.tsv` (Snakemake's `benchmark:` files: wall seconds per job) and
the job logs under `logs/`, whose last line states the compute: `evaluate_masked`,
`evaluate_classes` and their per-model forms (`evaluate_masked_model`, `evaluate_classes_model`)
"computed in X s", `score_neurons` "scored on N examples in X s". Fixed cost of
a job = its wall time minus that compute; for the evaluations it is also divided over the job's
targets (one output file per method x retention level, or method x factor x level). Rules whose
logs state no compute (data preparation, fine-tuning, summaries) are listed with their wall time
only. Prints one table and the fixed share of the summed job wall time of the rules that state
their compute.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pandas as pd

COMPUTE = {
    "evaluate_masked": re.compile(r"computed in ([\d.]+) s"),
    "evaluate_masked_model": re.compile(r"computed in ([\d.]+) s"),
    "evaluate_classes": re.compile(r"computed in ([\d.]+) s"),
    "evaluate_classes_model": re.compile(r"computed in ([\d.]+) s"),
    "score_neurons": re.compile(r"scored on \d+ examples in ([\d.]+) s"),
}
TARGETS = re.compile(r"(\d+) targets \(")


def job_rows(workdir: Path) -> pd.DataFrame:
    rows = []
    for path in sorted((workdir / "results/benchmarks").rglob("*.tsv")):
        relative = path.relative_to(workdir / "results/benchmarks").with_suffix("")
        rule = relative.parts[0] if len(relative.parts) > 1 else relative.name
        wall = float(pd.read_csv(path, sep="\t")["s"].iloc[-1])
        row = {"rule": rule, "job": str(relative), "wall_s": wall}
        log = workdir / "logs" / relative.with_suffix(".log")
        if rule in COMPUTE and log.is_file():
            text = log.read_text()
            found = COMPUTE[rule].findall(text)
            if found:
                row["compute_s"] = sum(float(x) for x in found)
            targets = TARGETS.search(text)
            if targets:
                row["targets"] = int(targets.group(1))
        rows.append(row)
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workdir", type=Path)
    args = parser.parse_args()
    jobs = job_rows(args.workdir)
    if jobs.empty:
        raise SystemExit(f"no benchmark files under {args.workdir / 'results/benchmarks'}")
    for column in ("compute_s", "targets"):
        if column not in jobs:
            jobs[column] = float("nan")
    jobs["fixed_s"] = jobs["wall_s"] - jobs["compute_s"]
    table = jobs.groupby("rule", sort=False).agg(
        jobs=("job", "size"),
        wall_s=("wall_s", "sum"),
        mean_wall_s=("wall_s", "mean"),
        compute_s=("compute_s", "sum"),
        fixed_s=("fixed_s", "sum"),
        targets=("targets", "sum"),
    )
    stated = jobs["compute_s"].notna()
    table.loc[~table.index.isin(jobs.loc[stated, "rule"]), ["compute_s", "fixed_s"]] = float("nan")
    table["fixed_per_target_s"] = table["fixed_s"] / table["targets"].where(table["targets"] > 0)
    print(table.round(3).to_string())
    if stated.any():
        share = jobs.loc[stated, "fixed_s"].sum() / jobs.loc[stated, "wall_s"].sum()
        print(
            f"\nfixed share of the wall time of the jobs that state their compute "
            f"({', '.join(sorted(set(jobs.loc[stated, 'rule'])))}): {share:.1%}"
        )
    print(f"summed wall time of all {len(jobs)} benchmarked jobs: {jobs['wall_s'].sum():.1f} s")


if __name__ == "__main__":
    main()
