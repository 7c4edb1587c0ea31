"""Compare two runs' results folders: are two versions of the code giving the same answers?

    python benchmarks/compare_runs.py BEFORE/results AFTER/results

Every parquet file (except the store, whose keys name the code, and benchmark timings) is
compared as a table with `pandas.testing.assert_frame_equal(check_exact=True)`; every markdown,
reStructuredText and TSV file byte for byte. Prints the files that differ or are missing and a
count of the equal ones; exit status 1 if any table differs or is missing. Used for the
issue-25 comparison (the layout move must not change a number); training logs differ in their
wall-time columns only.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

SKIPPED = {"store", "benchmarks"}


def compare_tables(before: Path, after: Path) -> tuple[int, list[str], list[str]]:
    equal, different, missing = 0, [], []
    for path in sorted(before.rglob("*.parquet")):
        name = path.relative_to(before)
        if name.parts[0] in SKIPPED:
            continue
        other = after / name
        if not other.exists():
            missing.append(str(name))
            continue
        try:
            pd.testing.assert_frame_equal(
                pd.read_parquet(path), pd.read_parquet(other), check_exact=True
            )
        except AssertionError as err:
            different.append(f"{name}: {' '.join(str(err).split())[:200]}")
            continue
        equal += 1
    return equal, different, missing


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    args = parser.parse_args()
    equal, different, missing = compare_tables(args.before, args.after)
    same, texts = compare_texts(args.before, args.after)
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
