"""Compare two runs' results folders: are two versions of the code giving the same answers?

    python benchmarks/compare_runs.py BEFORE/results AFTER/results
    python benchmarks/compare_runs.py BEFORE/results AFTER/results --rtol 1e-6 --common-columns

Every parquet file (except the store, whose keys name the code, and benchmark timings) is
compared as a table with `pandas.testing.assert_frame_equal`: exactly by default; with `--rtol`
/ `--atol`, numbers within those tolerances count as equal (float rounding), and for each table
the largest absolute difference over its numeric columns is printed. `--common-columns` compares
the columns both tables have (a later version may add columns) and names the others. Every
markdown, reStructuredText and TSV file is compared byte for byte. Prints the files that differ
or are missing and a count of the equal ones; exit status 1 if any table differs or is missing.
Used for the issue-25 comparison (the layout move must not change a number; training logs differ
in their wall-time columns only) and the issue-28 one (faster engines: equal up to rounding).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

SKIPPED = {"store", "benchmarks"}


def largest_difference(left: pd.DataFrame, right: pd.DataFrame) -> float:
    """The largest absolute difference over the numeric columns both tables have (same shape
    and order; NaN where both are NaN counts as equal); 0 when there is none."""
    worst = 0.0
    if len(left) != len(right):
        return float("nan")
    for column in left.columns.intersection(right.columns):
        a, b = left[column], right[column]
        if not (pd.api.types.is_numeric_dtype(a) and pd.api.types.is_numeric_dtype(b)):
            continue
        if pd.api.types.is_bool_dtype(a) or pd.api.types.is_bool_dtype(b):
            continue
        x, y = a.to_numpy(dtype=float), b.to_numpy(dtype=float)
        both = np.isnan(x) & np.isnan(y)
        diff = np.abs(x - y)[~both]
        if diff.size:
            worst = max(worst, float(np.nan_to_num(diff, nan=np.inf).max()))
    return worst


def compare_tables(
    before: Path,
    after: Path,
    rtol: float | None = None,
    atol: float = 0.0,
    common_columns: bool = False,
) -> tuple[int, list[str], list[str], list[str]]:
    """(equal, different, missing, notes): notes name the columns only one side has
    (`common_columns`) and the largest difference of tables equal within the tolerance."""
    equal, different, missing, notes = 0, [], [], []
    for path in sorted(before.rglob("*.parquet")):
        name = path.relative_to(before)
        if name.parts[0] in SKIPPED:
            continue
        other = after / name
        if not other.exists():
            missing.append(str(name))
            continue
        left, right = pd.read_parquet(path), pd.read_parquet(other)
        if common_columns:
            shared = [c for c in left.columns if c in right.columns]
            only = sorted(set(left.columns) ^ set(right.columns))
            if only:
                notes.append(f"{name}: columns compared without {', '.join(map(str, only))}")
            left, right = left[shared], right[shared]
        exact = rtol is None
        try:
            pd.testing.assert_frame_equal(
                left, right, check_exact=exact, rtol=rtol or 0.0, atol=atol
            )
        except AssertionError as err:
            largest = largest_difference(left, right)
            different.append(
                f"{name}: largest |difference| {largest:.3g}; {' '.join(str(err).split())[:200]}"
            )
            continue
        if not exact:
            largest = largest_difference(left, right)
            if largest > 0:
                notes.append(f"{name}: equal within tolerance, largest |difference| {largest:.3g}")
        equal += 1
    return equal, different, missing, notes


def compare_texts(before: Path, after: Path) -> tuple[int, list[str]]:
    same, different = 0, []
    for pattern in ("*.md", "*.rst", "*.tsv"):
        for path in sorted(before.rglob(pattern)):
            name = path.relative_to(before)
            other = after / name
            if name.parts[0] in SKIPPED or not other.exists():
                continue
            if path.read_bytes() == other.read_bytes():
                same += 1
            else:
                different.append(str(name))
    return same, different


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--rtol", type=float, help="relative tolerance (default: exact)")
    parser.add_argument("--atol", type=float, default=0.0, help="absolute tolerance (with --rtol)")
    parser.add_argument(
        "--common-columns", action="store_true", help="compare the columns both tables have"
    )
    args = parser.parse_args(argv)
    equal, different, missing, notes = compare_tables(
        args.before, args.after, args.rtol, args.atol, args.common_columns
    )
    same, texts = compare_texts(args.before, args.after)
    for line in notes:
        print(f"note: {line}")
    for line in different:
        print(f"table differs: {line}")
    for line in missing:
        print(f"missing after: {line}")
    for line in texts:
        print(f"text differs: {line}")
    print(f"{equal} tables equal, {len(different)} differ, {len(missing)} missing; "
          f"{same} text files identical, {len(texts)} differ")  # fmt: skip
    return 1 if different or missing else 0


if __name__ == "__main__":
    sys.exit(main())
