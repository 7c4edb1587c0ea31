"""Homology clusters with MMseqs2, and the check that no homologous pair crosses two splits.

`mmseqs easy-cluster` alone does not separate homologues: its greedy set cover puts each
sequence in one representative's cluster, but two members of different clusters can still be
similar above the threshold (on 3,149 Swiss-Prot enzymes at 30% identity / 80% coverage, 279
such pairs). So the clusters are joined by every hit of an all-against-all `easy-search` with
the same thresholds; the joined clusters (connected components) are what the homology split
keeps whole, and `cross_split_pairs` searches between the splits to prove it.

The workflow runs MMseqs2 in its own rule (`cluster_sequences`, envs/mmseqs2.yaml) with
`threshold_args` and `HIT_FIELDS`, then joins its files with `clusters_from_files`; nothing here
clusters in-process. `python -m kneurons.data.homology check` runs the leak check on a finished
split.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

from kneurons.data.options import SPLIT_NAMES, DatasetOptions
from kneurons.errors import DataError

HIT_FIELDS = ("query", "target", "fident", "alnlen", "qcov", "tcov", "evalue")


def threshold_args(identity: float, coverage: float) -> list[str]:
    """MMseqs2 flags for "homologous": identity and coverage of both sequences (cov-mode 0)."""
    return ["--min-seq-id", f"{identity:g}", "-c", f"{coverage:g}", "--cov-mode", "0"]


def mmseqs_path() -> str:
    path = shutil.which("mmseqs")
    if path is None:
        raise DataError(
            "MMseqs2 not found (no `mmseqs` on PATH): install it (apt-get install mmseqs2, or "
            "conda install -c bioconda mmseqs2) or set data.split.method: random"
        )
    return path


def fasta_text(sequences: pd.Series) -> str:
    """FASTA with the index (accessions) as identifiers."""
    return "".join(f">{name}\n{seq}\n" for name, seq in sequences.items())


def read_clusters(path) -> pd.DataFrame:
    """easy-cluster's `*_cluster.tsv`: one (representative, member) row per sequence."""
    return pd.read_csv(path, sep="\t", header=None, names=["representative", "member"], dtype=str)


def read_hits(path) -> pd.DataFrame:
    """easy-search output written with `--format-output` HIT_FIELDS."""
    hits = pd.read_csv(path, sep="\t", header=None, names=list(HIT_FIELDS))
    return hits.astype({"query": str, "target": str})


def join_clusters(accessions, clusters: pd.DataFrame, hits: pd.DataFrame) -> tuple[pd.Series, dict]:
    """Connected components of (cluster membership + search hits), named by their first accession.

    Returns accession -> component id, and counts for the dataset card.
    """
    accessions = sorted(map(str, accessions))
    parent = {a: a for a in accessions}

    def root(a: str) -> str:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    def join(a: str, b: str) -> None:
        ra, rb = root(a), root(b)
        if ra != rb:  # the smaller accession names the component
            parent[max(ra, rb)] = min(ra, rb)

    unknown = (set(clusters["member"]) | set(hits["query"]) | set(hits["target"])) - set(parent)
    if unknown:
        raise DataError(f"MMseqs2 output names an unknown sequence {sorted(unknown)[0]!r}")
    missing = set(parent) - set(clusters["member"])
    if missing:
        raise DataError(f"MMseqs2 clusters miss sequence {sorted(missing)[0]!r}")
    for representative, member in zip(clusters["representative"], clusters["member"], strict=True):
        join(representative, member)
    cluster_of = dict(zip(clusters["member"], clusters["representative"], strict=True))
    pairs = hits[hits["query"] != hits["target"]]
    crossing = 0
    for query, target in zip(pairs["query"], pairs["target"], strict=True):
        crossing += cluster_of[query] != cluster_of[target]
        join(query, target)
    component = pd.Series({a: root(a) for a in accessions}, name="cluster")
    info = {
        "n_mmseqs_clusters": int(clusters["representative"].nunique()),
        "n_hits": int(len(pairs)),
        "n_hits_between_mmseqs_clusters": int(crossing),
        "n_joined_clusters": int(component.nunique()),
    }
    return component, info


def clusters_from_files(accessions, clusters_path, hits_path, version_path=None):
    """`join_clusters` on the files written by the workflow's `cluster_sequences` rule."""
    component, info = join_clusters(accessions, read_clusters(clusters_path), read_hits(hits_path))
    if version_path is not None:
        info = {"mmseqs_version": Path(version_path).read_text().strip(), **info}
    return component, info


def _run(args: list[str]) -> str:
    done = subprocess.run(args, capture_output=True, text=True)
    if done.returncode != 0:
        last = (done.stderr.strip() or done.stdout.strip()).splitlines()[-1:] or [""]
        raise DataError(f"mmseqs {args[1]} failed (exit {done.returncode}): {last[0]}")
    return done.stdout


def search(
    queries: pd.Series, targets: pd.Series, identity: float, coverage: float, threads: int = 1
) -> pd.DataFrame:
    """All hits of `queries` against `targets` (Series accession -> sequence) above thresholds."""
    mmseqs = mmseqs_path()
    with tempfile.TemporaryDirectory(prefix="kneurons_mmseqs_") as tmp:
        tmp = Path(tmp)
        (tmp / "q.fasta").write_text(fasta_text(queries))
        (tmp / "t.fasta").write_text(fasta_text(targets))
        _run(
            [
                mmseqs,
                "easy-search",
                str(tmp / "q.fasta"),
                str(tmp / "t.fasta"),
                str(tmp / "hits.tsv"),
                str(tmp / "work"),
                *threshold_args(identity, coverage),
                "--format-output",
                ",".join(HIT_FIELDS),
                "--threads",
                str(threads),
            ]
        )
        return read_hits(tmp / "hits.tsv")


def cross_split_pairs(
    splits: dict[str, pd.DataFrame], identity: float, coverage: float, threads: int = 1
) -> pd.DataFrame:
    """Every pair of sequences in two different splits that MMseqs2 finds above the thresholds.

    Each split is searched against all the others together, so every pair is tried from both
    ends (a search is not symmetric: prefiltering starts from the query). A pair found both
    ways is listed once. An empty frame means no homologous pair leaks across splits.
    """
    columns = [*HIT_FIELDS, "query_split", "target_split"]
    frames = {n: splits[n] for n in SPLIT_NAMES if n in splits and len(splits[n])}
    split_of = pd.Series(
        {acc: name for name, f in frames.items() for acc in f["accession"]}, dtype=str
    )
    found = []
    for name, frame in frames.items():
        others = [f for n, f in frames.items() if n != name]
        if not others:
            continue
        queries = frame.set_index("accession")["sequence"]
        targets = pd.concat(others).set_index("accession")["sequence"]
        found.append(search(queries, targets, identity, coverage, threads))
    if not found:
        return pd.DataFrame(columns=columns)
    hits = pd.concat(found, ignore_index=True)
    hits["query_split"] = hits["query"].map(split_of)
    hits["target_split"] = hits["target"].map(split_of)
    pair = hits[["query", "target"]].apply(lambda r: tuple(sorted(r)), axis=1)
    return hits[~pair.duplicated()].reset_index(drop=True).loc[:, columns]


def read_splits(data_dir: str | Path) -> dict[str, pd.DataFrame]:
    """train/val/test.parquet of a finished split; a missing or unreadable one is a DataError."""
    folder = Path(data_dir)
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder (expected train/val/test.parquet in it)")
    splits = {}
    for name in SPLIT_NAMES:
        path = folder / f"{name}.parquet"
        if not path.is_file():
            raise DataError(f"{path}: not found (run the data stage first)")
        try:
            splits[name] = pd.read_parquet(path, columns=["accession", "sequence"])
        except Exception as err:  # pyarrow's errors: name the file, briefly
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise DataError(f"{path}: unreadable split table ({first})") from None
    return splits


def main(argv: list[str] | None = None) -> int:
    """`python -m kneurons.data.homology check results/data`: exit 1 if a homologous pair crosses,
    2 (one line on stderr) if the check cannot run."""
    parser = argparse.ArgumentParser(prog="python -m kneurons.data.homology")
    parser.add_argument("command", choices=["check"])
    parser.add_argument("data_dir", help="folder with train/val/test.parquet")
    parser.add_argument("--identity", type=float, default=DatasetOptions.identity)
    parser.add_argument("--coverage", type=float, default=DatasetOptions.coverage)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    try:
        splits = read_splits(args.data_dir)
        pairs = cross_split_pairs(splits, args.identity, args.coverage, args.threads)
    except DataError as err:
        print(f"{parser.prog}: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    sizes = ", ".join(f"{n} {len(f)}" for n, f in splits.items())
    print(
        f"{len(pairs)} pair(s) across splits at >= {args.identity:g} identity and "
        f">= {args.coverage:g} coverage ({sizes})"
    )
    if len(pairs):
        print(pairs.head(20).to_string(index=False))
    return 1 if len(pairs) else 0


if __name__ == "__main__":
    sys.exit(main())
