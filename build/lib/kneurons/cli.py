"""`kneurons`: the command line beside the workflow.

    kneurons store verify [--store results/store] [--dry-run]
        check every entry of the store (its header's key and its checksum); remove bad
        entries and temporary files left by interrupted jobs
    kneurons store prune [--dry-run] [SNAKEMAKE ARGS ...]
        remove the entries that no target of the config uses (run in the workflow's folder;
        the arguments, e.g. --configfile config/synthetic.yaml, are Snakemake's)

Run either while no job of that results folder runs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys

from kneurons import store, vocab

PRUNE_DRY_RUN = "KNEURONS_PRUNE_DRY_RUN"  # read by rule prune_store (rules/store.smk)


def _verify(args) -> int:
    if not os.path.isdir(args.store):
        print(f"kneurons store verify: no store at {args.store}", file=sys.stderr)
        return 1
    report = store.verify(args.store, remove=not args.dry_run)
    for line in report.lines("would be removed" if args.dry_run else "removed"):
        print(line)
    return 0


def _prune(args, snakemake_args: list[str]) -> int:
    beside = os.path.join(os.path.dirname(sys.executable), "snakemake")  # this environment's
    executable = beside if os.path.isfile(beside) else shutil.which("snakemake")
    if executable is None:
        print("kneurons store prune: snakemake is not on PATH", file=sys.stderr)
        return 1
    env = dict(os.environ, **({PRUNE_DRY_RUN: "1"} if args.dry_run else {}))
    command = [executable, "prune_store", "--cores", "1", *snakemake_args]  # target first
    return subprocess.call(command, env=env)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kneurons", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    store_parser = commands.add_parser("store", help="check or prune results/store")
    actions = store_parser.add_subparsers(dest="action", required=True)
    verify = actions.add_parser("verify", help="check every entry; remove the bad ones")
    verify.add_argument("--store", default=vocab.STORE_DIR, help="default: %(default)s")
    verify.add_argument("--dry-run", action="store_true", help="report only, remove nothing")
    prune = actions.add_parser(
        "prune",
        help="remove the entries no target of the config uses (extra arguments go to snakemake)",
    )
    prune.add_argument("--dry-run", action="store_true", help="report only, remove nothing")
    args, rest = parser.parse_known_args(argv)
    if args.action == "verify":
        if rest:
            parser.error(f"unrecognized arguments: {' '.join(rest)}")
        return _verify(args)
    return _prune(args, rest)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
