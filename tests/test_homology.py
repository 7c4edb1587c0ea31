"""Homology-aware split: whole clusters per split, and no homologous pair across splits.

The split logic is tested on planted cluster ids without MMseqs2; the tests marked
`needs_mmseqs` run the real binary (skipped when `mmseqs` is not on PATH) on families of
planted near-duplicates, which must each land in one split.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from kneurons.data import homology
from kneurons.data.clean import clean_dataset
from kneurons.data.homology import HIT_FIELDS, cross_split_pairs, join_clusters
from kneurons.data.options import DatasetOptions
from kneurons.data.split import homology_split, split_dataset
from kneurons.errors import DataError

REPO = Path(__file__).resolve().parents[1]
STANDARD = "ACDEFGHIKLMNPQRSTVWY"
needs_mmseqs = pytest.mark.skipif(
    shutil.which("mmseqs") is None, reason="MMseqs2 (`mmseqs`) not installed"
)


def mutate(rng: random.Random, sequence: str, fraction: float) -> str:
    seq = list(sequence)
    for i in rng.sample(range(len(seq)), int(fraction * len(seq))):
        seq[i] = rng.choice(STANDARD.replace(seq[i], ""))
    return "".join(seq)


def family_table(n_families: int = 24, seed: int = 0) -> pd.DataFrame:
    """Families of 1, 2, 3 or 5 sequences (copies at ~90% identity), classes 1-3 in turn.

    Unrelated random sequences share ~6% identity, so only family members are homologous.
    """
    rng = random.Random(seed)
    rows = []
    for f in range(n_families):
        base = "".join(rng.choice(STANDARD) for _ in range(rng.randint(90, 140)))
        for copy in range((1, 2, 3, 5)[f % 4]):
            sequence = base if copy == 0 else mutate(rng, base, 0.1)
            rows.append((f"F{f:02d}_{copy}", f"{f % 3 + 1}.1.1.1", sequence))
    return pd.DataFrame(rows, columns=["accession", "ec_numbers", "sequence"])


def family_of(accessions: pd.Series) -> pd.Series:
    return accessions.str.split("_").str[0]


# --- the split, on given clusters ------------------------------------------------------------


def planted(n_singletons: int = 60, seed: int = 0) -> pd.DataFrame:
    """Per class: clusters of 12, 6, 3, 3 and many singletons."""
    rows = []
    for cls in "123":
        sizes = [12, 6, 3, 3] + [1] * n_singletons
        for k, size in enumerate(sizes):
            rows += [(f"{cls}{k:03d}{i}", cls, f"C{cls}{k:03d}") for i in range(size)]
    df = pd.DataFrame(rows, columns=["accession", "ec_class", "cluster"])
    return df.sample(frac=1, random_state=seed).reset_index(drop=True)


def test_homology_split_keeps_clusters_whole_and_is_stratified():
    df = planted()
    split = homology_split(df, (0.8, 0.1, 0.1), seed=0)
    assert (df.assign(split=split).groupby("cluster")["split"].nunique() == 1).all()
    counts = pd.crosstab(df["ec_class"], split)
    n = len(df) // 3  # 84 per class
    for cls in "123":  # targets 8.4, 8.4, 67.2: whole singletons get within one row
        assert abs(counts.loc[cls, "val"] - 0.1 * n) < 1
        assert abs(counts.loc[cls, "test"] - 0.1 * n) < 1
        assert counts.loc[cls].sum() == n
    # The big families go to training; val and test get families too, not only singletons.
    rows = df.assign(split=split, size=df["cluster"].map(df["cluster"].value_counts()))
    big = rows.drop_duplicates("cluster").set_index("cluster")["split"]
    assert (big[[f"C{c}000" for c in "123"]] == "train").all()
    assert (rows.loc[rows["split"] == "val", "size"] == 3).sum() == 9
    assert (rows.loc[rows["split"] == "test", "size"] == 3).sum() == 9


def test_homology_split_is_seeded_and_row_order_free():
    df = planted()
    first = homology_split(df, (0.8, 0.1, 0.1), seed=0)
    shuffled = df.sample(frac=1, random_state=9)
    again = homology_split(shuffled, (0.8, 0.1, 0.1), seed=0)
    pd.testing.assert_series_equal(first, again.loc[first.index])
    other = homology_split(df, (0.8, 0.1, 0.1), seed=1)
    assert not first.equals(other)


def test_homology_split_gives_a_huge_cluster_to_train():
    # One cluster holds 90% of class 1: it cannot be split, so val/test get none of it.
    rows = [(f"A{i}", "1", "BIG") for i in range(90)] + [(f"B{i}", "1", f"S{i}") for i in range(10)]
    df = pd.DataFrame(rows, columns=["accession", "ec_class", "cluster"])
    split = homology_split(df, (0.8, 0.1, 0.1), seed=0)
    assert (split[:90] == "train").all()
    assert split[90:].value_counts().to_dict() == {"val": 5, "test": 5}


def test_join_clusters_merges_clusters_linked_by_a_hit():
    clusters = pd.DataFrame(
        {"representative": ["A", "A", "C", "C", "E"], "member": ["A", "B", "C", "D", "E"]}
    )
    hits = pd.DataFrame(
        {"query": ["B", "D", "A"], "target": ["D", "C", "A"], "fident": [0.4, 0.9, 1.0]}
    )
    component, info = join_clusters(list("EDCBA"), clusters, hits)
    assert component.to_dict() == {"A": "A", "B": "A", "C": "A", "D": "A", "E": "E"}
    assert info == {
        "n_mmseqs_clusters": 3,
        "n_hits": 2,  # the self hit does not count
        "n_hits_between_mmseqs_clusters": 1,
        "n_joined_clusters": 2,
    }


def test_join_clusters_rejects_foreign_or_missing_sequences():
    clusters = pd.DataFrame({"representative": ["A", "A"], "member": ["A", "B"]})
    no_hits = pd.DataFrame({"query": [], "target": []}, dtype=str)
    with pytest.raises(DataError, match="unknown sequence 'B'"):
        join_clusters(["A"], clusters, no_hits)
    with pytest.raises(DataError, match="miss sequence 'C'"):
        join_clusters(["A", "B", "C"], clusters, no_hits)


def test_split_dataset_needs_clusters_for_homology():
    cleaned, report = clean_dataset(family_table(), DatasetOptions())
    options = DatasetOptions(split_method="homology")
    with pytest.raises(DataError, match="no clusters given"):
        split_dataset(cleaned, report, options)
    partial = pd.Series({"F00_0": "x"})
    with pytest.raises(DataError, match="accession 'F01_0' has no cluster"):
        split_dataset(cleaned, report, options, partial)


def test_families_as_clusters_land_in_one_split():
    table = family_table()
    cleaned, report = clean_dataset(table, DatasetOptions())
    clusters = pd.Series(family_of(cleaned["accession"]).to_numpy(), index=cleaned["accession"])
    options = DatasetOptions(split_method="homology", fractions=(0.6, 0.2, 0.2))
    splits, card = split_dataset(cleaned, report, options, clusters)
    rows = pd.concat(splits.values())
    assert (rows.groupby("cluster")["split"].nunique() == 1).all()
    assert card["clusters"] == {n: f["cluster"].nunique() for n, f in splits.items()}
    assert sum(card["clusters"].values()) == card["n_clusters"] == 24
    assert card["largest_cluster"] == 5


def test_missing_mmseqs_is_one_clear_line(monkeypatch):
    monkeypatch.setattr(homology.shutil, "which", lambda name: None)
    with pytest.raises(DataError, match=r"MMseqs2 not found .*split.method: random"):
        homology.mmseqs_path()


# --- with the real MMseqs2 ---------------------------------------------------------------------


def mmseqs_clusters(cleaned: pd.DataFrame, folder: Path, identity: float, coverage: float):
    """What rule cluster_sequences (rules/data.smk) runs on cleaned.fasta, then the join that
    prepare_dataset does on its files (`clusters_from_files`)."""
    mmseqs = homology.mmseqs_path()
    fasta = folder / "cleaned.fasta"
    fasta.write_text(homology.fasta_text(cleaned.set_index("accession")["sequence"]))
    thresholds = homology.threshold_args(identity, coverage)

    def run(*args) -> str:
        return subprocess.run(
            [mmseqs, *map(str, args)], capture_output=True, text=True, check=True
        ).stdout

    (folder / "mmseqs_version.txt").write_text(run("version"))
    run("easy-cluster", fasta, folder / "clu", folder / "tmp", *thresholds, "--threads", 1)
    run(
        "easy-search", fasta, fasta, folder / "hits.tsv", folder / "tmp", *thresholds,
        "--format-output", ",".join(HIT_FIELDS), "--threads", 1,
    )  # fmt: skip
    return homology.clusters_from_files(
        cleaned["accession"],
        folder / "clu_cluster.tsv",
        folder / "hits.tsv",
        folder / "mmseqs_version.txt",
    )


@pytest.fixture(scope="module")
def mmseqs_prepared(tmp_path_factory):
    """clean_dataset -> MMseqs2 as in the workflow -> split_dataset, on the planted families."""
    options = DatasetOptions(split_method="homology", fractions=(0.6, 0.2, 0.2))
    cleaned, report = clean_dataset(family_table(), options)
    folder = tmp_path_factory.mktemp("mmseqs")
    clusters, clustering = mmseqs_clusters(cleaned, folder, options.identity, options.coverage)
    return split_dataset(cleaned, {**report, "clustering": clustering}, options, clusters)


@needs_mmseqs
def test_planted_near_duplicates_land_in_one_split(mmseqs_prepared):
    splits, card = mmseqs_prepared
    rows = pd.concat(splits.values())
    assert len(rows) == len(family_table())
    # MMseqs2 found exactly the planted families, and each lies in one split.
    assert (rows.groupby(family_of(rows["accession"]))["cluster"].nunique() == 1).all()
    assert rows["cluster"].nunique() == 24
    assert (rows.groupby("cluster")["split"].nunique() == 1).all()
    assert all(len(frame) for frame in splits.values())
    clustering = card["clustering"]
    assert clustering["n_joined_clusters"] == card["n_clusters"] == 24
    assert clustering["mmseqs_version"]


@needs_mmseqs
def test_no_homologous_pair_across_splits(mmseqs_prepared):
    splits, _ = mmseqs_prepared
    pairs = cross_split_pairs(splits, identity=0.3, coverage=0.8)
    assert pairs.empty


@needs_mmseqs
def test_check_finds_the_leaks_of_a_random_split(tmp_path, capsys):
    options = DatasetOptions(fractions=(0.6, 0.2, 0.2))
    splits, _ = split_dataset(*clean_dataset(family_table(), options), options)
    for name, frame in splits.items():
        frame.to_parquet(tmp_path / f"{name}.parquet")
    assert homology.main(["check", str(tmp_path)]) == 1
    first = capsys.readouterr().out.splitlines()[0]
    n_pairs = int(first.split()[0])

    rows = pd.concat(splits.values())
    fam = family_of(rows["accession"])
    expected = 0  # pairs of one family in two splits
    for _, members in rows.groupby(fam):
        per_split = members["split"].value_counts()
        expected += (len(members) ** 2 - (per_split**2).sum()) // 2
    assert n_pairs == expected > 0
    assert first.startswith(f"{expected} pair(s) across splits at >= 0.3 identity")


@needs_mmseqs
def test_cluster_rule_in_the_workflow(tmp_path):
    """clean_dataset -> cluster_sequences (shell rule) -> prepare_dataset on the tiny config."""
    from make_tiny_tsv import write_uniprot_tsv

    config = yaml.safe_load((REPO / "tests/config/tiny.yaml").read_text())
    config["data"]["input"] = str(write_uniprot_tsv(tmp_path / "tiny.tsv"))
    config["data"]["split"]["method"] = "homology"
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    snakemake = str(Path(sys.executable).with_name("snakemake"))
    run = subprocess.run(
        [snakemake, "results/tiny/data/dataset_card.md", "-s", str(REPO / "Snakefile")]
        + ["-d", str(tmp_path), "--cores", "2", "--configfile", str(tmp_path / "config.yaml")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    card = json.loads((tmp_path / "results/tiny/data/dataset_card.json").read_text())
    assert card["split_method"] == "homology"
    assert card["clustering"]["n_joined_clusters"] == card["n_clusters"]
    assert card["n_input_rows"] == card["n_kept"] + card["n_dropped"]
    assert card["source"]["type"] == "file"
    for name, output in card["outputs"].items():
        frame = pd.read_parquet(tmp_path / output["path"])
        assert len(frame) == output["rows"] == card["totals"][name]
        assert frame["cluster"].nunique() == card["clusters"][name]
    assert "homology split: MMseqs2" in (tmp_path / "results/tiny/data/dataset_card.md").read_text()


def test_check_without_a_finished_split_is_one_line(tmp_path, capsys):
    """`python -m kneurons.data.homology check` on a missing folder, or one without every split,
    says so in one line on stderr (exit 2), no traceback; MMseqs2 is not needed to say it."""
    missing = tmp_path / "nope"
    assert homology.main(["check", str(missing)]) == 2
    out = capsys.readouterr()
    assert out.out == "" and out.err.splitlines() == [
        f"python -m kneurons.data.homology: {missing}: no such folder "
        "(expected train/val/test.parquet in it)"
    ]
    pd.DataFrame({"accession": ["A"], "sequence": ["MK"]}).to_parquet(tmp_path / "train.parquet")
    (tmp_path / "val.parquet").write_text("not parquet")
    assert homology.main(["check", str(tmp_path)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and f"{tmp_path / 'val.parquet'}: unreadable split table" in err[0]
    (tmp_path / "val.parquet").unlink()
    assert homology.main(["check", str(tmp_path)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [f"python -m kneurons.data.homology: {tmp_path / 'val.parquet'}: not found "
                   "(run the data stage first)"]  # fmt: skip


def test_check_command_line_on_a_missing_folder(tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "kneurons.data.homology", "check", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1 and str(tmp_path / "nope") in run.stderr
