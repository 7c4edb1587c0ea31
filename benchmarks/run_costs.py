"""Where a finished run's time went: per rule, job wall time against the compute its logs report,
so the fixed cost (interpreter, imports, checkpoint load, tokenising) of every job is visible.

    python benchmarks/run_costs.py path/to/workdir          # the directory Snakemake ran in

Reads `results/<dataset>/benchmarks/**/*.tsv` (Snakemake's `benchmark:` files: wall seconds per
job) and the job logs under `logs/<dataset>/` (`results/benchmarks` and `logs/` before the
layout of issue 25). Two measures of a job's fixed cost:
- `fixed_s`, where the log's last line states the compute: `evaluate_masked`,
  `evaluate_classes` and their per-model forms (`evaluate_masked_model`,
  `evaluate_classes_model`) "computed in X s", `score_neurons` "scored on N examples in X s".
  Fixed cost = wall time minus that compute (start-up, imports, checkpoint load, tokenising,
  writing); for the evaluations it is also divided over the job's targets (one output file per
  target x method x retention level, or layer type x method x factor x level).
- `startup_s`, for every job whose log has timestamped lines: wall time minus the span between
  its first line (written once the job's imports are done, `kneurons.jobs.start_job`) and its
  last: the interpreter and imports before, and the exit after. A lower bound on the fixed cost
  (loading and tokenising fall inside the span), but available for every rule.
Prints one table, the fixed share of the wall time of the rules that state their compute, and
the share of the whole run's summed job wall time spent before and after the logged spans
(`fixed_s` where stated, else `startup_s`).
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pandas as pd

# "66 computed (0 of them for a bad store entry) in 223.62 s" / "37 computed in 153.93 s"
MASKED = re.compile(r"computed(?: \([^)]*\))? in ([\d.]+) s")
COMPUTE = {
    "evaluate_masked": MASKED,
    "evaluate_masked_model": MASKED,
    "evaluate_classes": re.compile(r"computed in ([\d.]+) s"),
    "evaluate_classes_model": re.compile(r"computed in ([\d.]+) s"),
    "score_neurons": re.compile(r"scored on \d+ examples in ([\d.]+) s"),
}
TARGETS = re.compile(r"(\d+) targets \(")
TIMESTAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ", flags=re.M)


def logged_span(text: str) -> float | None:
    """Seconds between the first and the last timestamped line of a job log (None: fewer than
    one such line)."""
    stamps = TIMESTAMP.findall(text)
    if not stamps:
        return None
    first, last = (pd.Timestamp(s.replace(",", ".")) for s in (stamps[0], stamps[-1]))
    return (last - first).total_seconds()


def benchmark_roots(workdir: Path) -> list[tuple[Path, Path]]:
    """(benchmark folder, its log folder): `results/<dataset>/benchmarks` with
    `logs/<dataset>` (the layout since issue 25), and `results/benchmarks` with `logs`."""
    roots = [
        (folder, workdir / "logs" / folder.parent.name)
        for folder in sorted((workdir / "results").glob("*/benchmarks"))
    ]
    if (workdir / "results/benchmarks").is_dir():
        roots.append((workdir / "results/benchmarks", workdir / "logs"))
    return roots


def job_rows(workdir: Path) -> pd.DataFrame:
    rows = []
    for root, logs in benchmark_roots(workdir):
        for path in sorted(root.rglob("*.tsv")):
            rows.append(job_row(path, root, logs))
    return pd.DataFrame(rows)


def job_row(path: Path, root: Path, logs: Path) -> dict:
    """One job: its rule, wall time, and what its log says (compute, targets, start-up)."""
    relative = path.relative_to(root).with_suffix("")
    rule = relative.parts[0] if len(relative.parts) > 1 else relative.name
    wall = float(pd.read_csv(path, sep="\t")["s"].iloc[-1])
    row = {"rule": rule, "job": str(relative), "wall_s": wall}
    log = logs / relative.with_suffix(".log")
    text = log.read_text() if log.is_file() else ""
    span = logged_span(text)
    if span is not None:
        row["startup_s"] = max(0.0, wall - span)
    if rule in COMPUTE and text:
        found = COMPUTE[rule].findall(text)
        if found:
            row["compute_s"] = sum(float(x) for x in found)
        targets = TARGETS.search(text)
        if targets:
            row["targets"] = int(targets.group(1))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workdir", type=Path)
    args = parser.parse_args()
    jobs = job_rows(args.workdir)
    if jobs.empty:
        raise SystemExit(f"no benchmark files under {args.workdir / 'results'}")
    for column in ("compute_s", "targets", "startup_s"):
        if column not in jobs:
            jobs[column] = float("nan")
    jobs["fixed_s"] = jobs["wall_s"] - jobs["compute_s"]
    table = jobs.groupby("rule", sort=False).agg(
        jobs=("job", "size"),
        wall_s=("wall_s", "sum"),
        mean_wall_s=("wall_s", "mean"),
        compute_s=("compute_s", "sum"),
        fixed_s=("fixed_s", "sum"),
        startup_s=("startup_s", "sum"),
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
    fixed = jobs["fixed_s"].where(stated, jobs["startup_s"])
    known = fixed.notna()
    if known.any():
        print(
            f"fixed share of the summed wall time of the {int(known.sum())} jobs with a log "
            f"(fixed_s where stated, else startup_s): {fixed[known].sum():.1f} s of "
            f"{jobs.loc[known, 'wall_s'].sum():.1f} s = "
            f"{fixed[known].sum() / jobs.loc[known, 'wall_s'].sum():.1%}"
        )


if __name__ == "__main__":
    main()
