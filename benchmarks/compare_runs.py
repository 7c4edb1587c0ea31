"""Compare two runs' results folders: are two versions of the code giving the same answers?

    python benchmarks/compare_runs.py BEFORE/results AFTER/results
    python benchmarks/compare_runs.py BEFORE/results AFTER/results --rtol 1e-6 --common-columns

Every parquet file (except the store, whose keys name the code, and benchmark timings) is
compared as a table: exactly by default (`pandas.testing.assert_frame_equal`); with `--rtol`,
up to float rounding: every numeric value (also inside list-valued cells) within `--atol` +
rtol x the largest |value| of its column in BEFORE (rounding in a sum scales with the sum's
terms, not with the one value), every other value equal; the largest difference of each table
is printed, relative to its column's scale. `--common-columns` compares the columns both tables
have (a later version may add columns) and names the others. Every markdown, reStructuredText
and TSV file is compared byte for byte. Prints the files that differ or are missing and a count
of the equal ones; exit status 1 if any table differs or is missing.
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


def _numbers(column: pd.Series) -> np.ndarray | None:
    """The column's numbers as one float array (list-valued cells flattened in order), or None
    for a column of anything else (text, booleans)."""
    if pd.api.types.is_bool_dtype(column):
        return None
    if pd.api.types.is_numeric_dtype(column):
        return column.to_numpy(dtype=float)
    cells = column.dropna()
    if len(cells) == 0 or not all(isinstance(c, list | tuple | np.ndarray) for c in cells):
        return None
    try:
        flat = [np.asarray(c, dtype=float).ravel() for c in column]
    except (TypeError, ValueError):
        return None
    return np.concatenate(flat) if flat else np.zeros(0)


def within_rounding(left: pd.DataFrame, right: pd.DataFrame, rtol: float, atol: float):
    """(equal, largest relative difference, what differs) of two tables of the same columns:
    numbers within atol + rtol x the column's largest |value| (NaN where both are NaN), the rest
    equal."""
    if list(left.columns) != list(right.columns) or len(left) != len(right):
        return False, float("nan"), "columns or rows differ"
    worst, problem = 0.0, ""
    for column in left.columns:
        x, y = _numbers(left[column]), _numbers(right[column])
        if x is None or y is None:
            same = left[column].reset_index(drop=True).equals(right[column].reset_index(drop=True))
            if not same:
                return False, worst, f"column {column!r} differs"
            continue
        if x.shape != y.shape:
            return False, worst, f"column {column!r}: list lengths differ"
        both = np.isnan(x) & np.isnan(y)
        if np.any(np.isnan(x) != np.isnan(y)):
            return False, worst, f"column {column!r}: NaN in one table only"
        scale = float(np.max(np.abs(x[~both]))) if np.any(~both) else 0.0
        diff = np.abs(x - y)[~both]
        if diff.size == 0:
            continue
        relative = float(diff.max()) / scale if scale > 0 else float(diff.max())
        worst = max(worst, relative)
        if np.any(diff > atol + rtol * scale):
            problem = problem or f"column {column!r}: {relative:.3g} of its scale"
    return not problem, worst, problem


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
        if SKIPPED & set(name.parts):
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
        if rtol is None:
            try:
                pd.testing.assert_frame_equal(left, right, check_exact=True)
            except AssertionError as err:
                different.append(f"{name}: {' '.join(str(err).split())[:200]}")
                continue
        else:
            same, worst, problem = within_rounding(left, right, rtol, atol)
            if not same:
                different.append(f"{name}: {problem}")
                continue
            if worst > 0:
                notes.append(f"{name}: equal within tolerance, largest difference {worst:.3g} "
                             "of its column's scale")  # fmt: skip
        equal += 1
    return equal, different, missing, notes


def compare_texts(before: Path, after: Path) -> tuple[int, list[str]]:
    same, different = 0, []
    for pattern in ("*.md", "*.rst", "*.tsv"):
        for path in sorted(before.rglob(pattern)):
            name = path.relative_to(before)
            other = after / name
            if SKIPPED & set(name.parts) or not other.exists():
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
