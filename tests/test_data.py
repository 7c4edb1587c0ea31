"""Tests for the data stage: reading and cleaning (kneurons.data.clean), splitting and the card
(kneurons.data.split), and the shipped configs' data defaults.

The fixture table plants one or more rows of every awkward case, so each drop reason can be
checked against an exact count.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import random
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from workflow_helpers import schema_defaults

from kneurons.data.clean import (
    DROP_REASONS,
    OUTPUT_COLUMNS,
    clean_dataset,
    clean_sequences,
    label_rows,
)
from kneurons.data.options import (
    SPLIT_METHODS,
    DatasetOptions,
    ec_label,
    options_from_config,
    parse_ec_numbers,
)
from kneurons.data.split import SPLITTERS, card_markdown, random_split, split_dataset
from kneurons.data.tsv import read_uniprot_tsv
from kneurons.errors import DataError

REAL_TSV = Path("/work/shared/data/swissprot_enzymes.tsv")
STANDARD = "ACDEFGHIKLMNPQRSTVWY"
LONG_SEQUENCE = "".join(STANDARD[i % 20] for i in range(150))  # cropped to 100 in tests

# Good rows per class in the fixture (class 2 also gets the over-long row).
GOOD = {"1": 15, "2": 15, "3": 12, "4": 10}
EXPECTED_DROPPED = {
    "length_mismatch": 0,
    "empty_sequence": 1,
    "invalid_residues": 2,
    "too_short": 1,
    "too_long": 0,
    "no_ec": 2,
    "non_enzyme_has_ec": 0,
    "multiple_classes": 1,
    "class_not_selected": 2,
    "duplicate_sequence": 1,
    "duplicate_conflicting_labels": 2,
    "class_cap": 0,
}
EXPECTED_KEPT = {"1": 15, "2": 16, "3": 12, "4": 10}
OPTIONS = DatasetOptions(classes=("1", "2", "3", "4"), min_length=20, max_length=100)


def clean_and_split(table, options, non_enzymes=None):
    """The workflow's two steps for a random split: clean_dataset, then split_dataset."""
    cleaned, report = clean_dataset(table, options, non_enzymes)
    return split_dataset(cleaned, report, options)


def random_sequence(rng: random.Random, length: int) -> str:
    return "".join(rng.choice(STANDARD) for _ in range(length))


def fixture_rows() -> list[dict]:
    """~65 UniProt-style rows: the good rows per class, then one block per awkward case."""
    rng = random.Random(0)
    good_ecs = {
        "1": ["1.1.1.1", " 1.1.1.1 ", "1.1.1.1; 1.2.3.4", "1.-.-.-"],
        "2": ["2.7.11.1", "2.7.7.n1", "2.3.1.-"],
        "3": ["3.4.-.-", "3.5.1.n3", "3.1.3.16; 3.1.3.48"],
        "4": ["4.2.1.1", "4.1.-.-"],
    }
    rows = []
    for cls, n in GOOD.items():
        for i in range(n):
            sequence = random_sequence(rng, rng.randint(40, 80))
            if i == 0:
                sequence = sequence.lower()  # lowercase is normalised, not dropped
            if i == 1:
                sequence = "X" + sequence + "U"  # ESM has tokens for X and U
            ecs = good_ecs[cls][i % len(good_ecs[cls])]
            rows.append({"Entry": f"P{cls}{i:04d}", "EC number": ecs, "Sequence": sequence})

    def add(accession, ec, sequence):
        rows.append({"Entry": accession, "EC number": ec, "Sequence": sequence})

    add("LONG01", "2.1.1.1", LONG_SEQUENCE)
    add("NOEC01", "", random_sequence(rng, 50))
    add("NOEC02", "abc; 9.1.1.1", random_sequence(rng, 50))
    add("MULTI1", "1.1.1.1; 3.4.-.-", random_sequence(rng, 50))
    add("SEVEN1", "7.1.1.1", random_sequence(rng, 50))
    add("SEVEN2", "7.2.2.-", random_sequence(rng, 50))
    add("BAD001", "1.1.1.1", random_sequence(rng, 30) + "*")
    add("BAD002", "2.1.1.1", random_sequence(rng, 30) + "12" + random_sequence(rng, 10))
    add("EMPTY1", "3.1.1.1", "   ")
    add("SHORT1", "4.1.1.1", random_sequence(rng, 10))
    # Same sequence and class as P10002 (written in lower case): one copy dropped.
    add("ZDUP01", "1.9.9.9", rows[2]["Sequence"].lower())
    # One sequence labelled 2 and 3: both copies dropped.
    conflict = random_sequence(rng, 60)
    add("CONF01", "2.1.1.1", conflict)
    add("CONF02", "3.1.1.1", conflict)
    return rows


def write_tsv(path: Path, rows: list[dict], columns=None, gz: bool = False) -> Path:
    """Write a UniProt-style TSV with extra columns and a non-standard column order."""
    table = pd.DataFrame(rows)
    table["Length"] = table["Sequence"].str.strip().str.len().astype(str)
    table["Protein names"] = '"Quoted" enzyme'
    columns = columns or ["Sequence", "Protein names", "Entry", "Length", "EC number"]
    text = table[columns].to_csv(sep="\t", index=False, quoting=3)
    if gz:
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


@pytest.fixture
def tsv(tmp_path) -> Path:
    return write_tsv(tmp_path / "enzymes.tsv", fixture_rows())


@pytest.fixture
def table(tsv) -> pd.DataFrame:
    return read_uniprot_tsv(tsv)


@pytest.fixture
def prepared(table):
    return clean_and_split(table, OPTIONS)


# --- EC numbers ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("1.1.1.1; 3.4.-.-", ["1.1.1.1", "3.4.-.-"]),
        (" 1.1.1.1 ", ["1.1.1.1"]),
        ("3.5.1.n3", ["3.5.1.n3"]),
        ("2.7.11.22;", ["2.7.11.22"]),
        ("", []),
        ("   ", []),
    ],
)
def test_parse_ec_numbers(text, expected):
    assert parse_ec_numbers(text) == expected


@pytest.mark.parametrize(
    "ec, level, expected",
    [
        ("3.4.-.-", 1, "3"),
        ("3.4.-.-", 2, "3.4"),
        ("3.4.-.-", 3, None),
        ("3.-.-.-", 2, None),
        (" 1.1.1.1 ", 1, "1"),
        ("1.1.1.1", 4, "1.1.1.1"),
        ("3.5.1.n3", 1, "3"),
        ("3.5.1.n3", 2, "3.5"),
        ("3.5.1.n3", 4, "3.5.1.n3"),
        ("7.1.1.1", 1, "7"),
        ("3.4", 2, "3.4"),
        ("abc", 1, None),
        ("9.1.1.1", 1, None),
        ("0.1.1.1", 1, None),
        ("3.-.1.1", 1, None),
        ("3.n1.1.1", 1, None),
        ("1.1.1.1.1", 1, None),
        ("", 1, None),
    ],
)
def test_ec_label(ec, level, expected):
    assert ec_label(ec, level) == expected


def test_label_rows_level_2():
    df = pd.DataFrame(
        {
            "accession": ["A", "B", "C", "D", "E"],
            "ec_numbers": ["3.4.-.-", "3.-.-.-", "1.1.1.1; 1.2.1.1", "1.1.1.1;  1.1.-.-", "x"],
        }
    )
    kept, counts = label_rows(df, DatasetOptions(ec_level=2))
    assert kept["accession"].tolist() == ["A", "D"]
    assert kept["ec_class"].tolist() == ["3.4", "1.1"]
    assert kept["ec_numbers"].tolist() == ["3.4.-.-", "1.1.1.1; 1.1.-.-"]
    assert counts == {
        "no_ec": 2,
        "non_enzyme_has_ec": 0,
        "multiple_classes": 1,
        "class_not_selected": 0,
        "multiple_classes_kept_first": 0,
    }


def test_label_rows_spanning_two_classes_is_dropped_even_if_one_is_too_partial():
    df = pd.DataFrame({"accession": ["A"], "ec_numbers": ["1.1.1.1; 3.-.-.-"]})
    kept, counts = label_rows(df, DatasetOptions(ec_level=2))
    assert kept.empty and counts["multiple_classes"] == 1


# --- reading -------------------------------------------------------------------------------


def test_read_renames_and_keeps_extra_columns(table):
    assert list(table.columns) == ["sequence", "Protein names", "accession", "Length", "ec_numbers"]
    assert len(table) == len(fixture_rows())
    assert table.loc[0, "Protein names"] == '"Quoted" enzyme'
    assert (table.dtypes == "str").all()


def test_read_gz_matches_plain(tmp_path, table):
    gz = write_tsv(tmp_path / "enzymes.tsv.gz", fixture_rows(), gz=True)
    pd.testing.assert_frame_equal(read_uniprot_tsv(gz), table)


def test_read_missing_column_names_file_and_column(tmp_path):
    path = write_tsv(tmp_path / "bad.tsv", fixture_rows(), columns=["Entry", "Sequence", "Length"])
    with pytest.raises(DataError) as err:
        read_uniprot_tsv(path)
    message = str(err.value)
    assert message.startswith(f"{path}: missing column(s) 'EC number'")
    assert "found: Entry, Sequence, Length" in message
    assert "\n" not in message


@pytest.mark.parametrize("content", [b"", b"Entry\tEC number\tSequence\n", b"\x1f\x8bnot gzip"])
def test_read_empty_or_unreadable_names_file(tmp_path, content):
    path = tmp_path / ("bad.tsv.gz" if content.startswith(b"\x1f") else "bad.tsv")
    path.write_bytes(content)
    with pytest.raises(DataError, match="bad.tsv"):
        read_uniprot_tsv(path)


def test_read_missing_file_is_data_error(tmp_path):
    with pytest.raises(DataError, match="nope.tsv"):
        read_uniprot_tsv(tmp_path / "nope.tsv")


# --- cleaning --------------------------------------------------------------------------------


def cleaning_frame() -> pd.DataFrame:
    sequences = [" acdef\n", "ACD*1", "", "AC D", "MXBZUO", LONG_SEQUENCE]
    return pd.DataFrame(
        {"accession": [f"A{i}" for i in range(len(sequences))], "sequence": sequences}
    )


def test_clean_sequences_normalises_and_counts():
    options = DatasetOptions(min_length=6, max_length=100)
    kept, counts = clean_sequences(cleaning_frame(), options)
    assert kept["accession"].tolist() == ["A4", "A5"]
    assert kept["sequence"].tolist() == ["MXBZUO", LONG_SEQUENCE[:100]]
    assert kept["length"].tolist() == [6, 100]
    assert kept["cropped"].tolist() == [False, True]
    assert counts == {"empty_sequence": 1, "invalid_residues": 2, "too_short": 1, "too_long": 0}


def test_clean_sequences_centre_crop_and_drop():
    centre, _ = clean_sequences(cleaning_frame(), DatasetOptions(max_length=100, crop="centre"))
    assert centre.set_index("accession").loc["A5", "sequence"] == LONG_SEQUENCE[25:125]
    assert centre.set_index("accession").loc["A0", "sequence"] == "ACDEF"

    kept, counts = clean_sequences(cleaning_frame(), DatasetOptions(max_length=100, crop="drop"))
    assert "A5" not in kept["accession"].tolist()
    assert counts["too_long"] == 1 and not kept["cropped"].any()


def test_invalid_residues_error_names_accession():
    with pytest.raises(DataError) as err:
        clean_sequences(cleaning_frame(), DatasetOptions(invalid_residues="error"))
    assert str(err.value) == "row for accession A1: invalid residue(s) '*1' in sequence"


# --- clean and split ------------------------------------------------------------------------


def test_drop_counts_match_planted_cases(prepared):
    splits, card = prepared
    assert card["dropped"] == EXPECTED_DROPPED
    assert list(card["dropped"]) == list(DROP_REASONS)
    assert card["n_input_rows"] == len(fixture_rows())
    kept = pd.concat(splits.values())
    assert kept["ec_class"].value_counts().to_dict() == EXPECTED_KEPT
    assert card["n_input_rows"] == sum(card["dropped"].values()) + len(kept)
    dropped_accessions = {"NOEC01", "NOEC02", "MULTI1", "SEVEN1", "SEVEN2", "BAD001", "BAD002"}
    dropped_accessions |= {"EMPTY1", "SHORT1", "ZDUP01", "CONF01", "CONF02"}
    assert not dropped_accessions & set(kept["accession"])


def test_frames_have_contract_columns_and_types(prepared):
    splits, card = prepared
    assert list(splits) == ["train", "val", "test"]
    for name, frame in splits.items():
        assert tuple(frame.columns) == OUTPUT_COLUMNS
        assert frame["length"].dtype == "int64" and frame["label"].dtype == "int64"
        assert frame["cropped"].dtype == bool
        assert (frame["split"] == name).all()
        assert frame["accession"].is_monotonic_increasing
        assert frame.index.equals(pd.RangeIndex(len(frame)))
        assert (frame["length"] == frame["sequence"].str.len()).all()
        assert (frame["label"] == frame["ec_class"].map(card["label_index"])).all()
        assert frame["sequence"].str.fullmatch(r"[ACDEFGHIKLMNPQRSTVWYXBZUO]+").all()


def test_normalised_content(prepared):
    splits, _ = prepared
    kept = pd.concat(splits.values()).set_index("accession")
    rows = {r["Entry"]: r for r in fixture_rows()}
    assert kept.loc["P10000", "sequence"] == rows["P10000"]["Sequence"].upper()
    assert kept.loc["P10001", "ec_numbers"] == "1.1.1.1"
    assert kept.loc["P10002", "ec_numbers"] == "1.1.1.1; 1.2.3.4"
    assert kept.loc["P30001", "ec_class"] == "3"  # 3.5.1.n3
    assert kept.loc["LONG01", "sequence"] == LONG_SEQUENCE[:100]
    assert kept.loc["LONG01", "cropped"] and kept["cropped"].sum() == 1


def test_centre_crop_through_prepare(table):
    splits, card = clean_and_split(table, dataclasses.replace(OPTIONS, crop="centre"))
    kept = pd.concat(splits.values()).set_index("accession")
    assert kept.loc["LONG01", "sequence"] == LONG_SEQUENCE[25:125]
    assert card["cropped"] == 1


def test_crop_drop_through_prepare(table):
    _, card = clean_and_split(table, dataclasses.replace(OPTIONS, crop="drop"))
    assert card["dropped"]["too_long"] == 1 and card["cropped"] == 0
    assert sum(counts["2"] for counts in card["counts"].values()) == GOOD["2"]


def test_card_is_json_and_consistent(prepared):
    splits, card = prepared
    json.dumps(card)
    assert card["classes"] == ["1", "2", "3", "4"]
    assert card["label_index"] == {"1": 0, "2": 1, "3": 2, "4": 3}
    assert card["ec_level"] == 1 and card["split_method"] == "random"
    assert card["options"]["classes"] == ["1", "2", "3", "4"]
    assert card["options"]["fractions"] == [0.8, 0.1, 0.1]
    assert card["cropped"] == 1
    for name, frame in splits.items():
        assert card["totals"][name] == len(frame)
        assert card["counts"][name] == {
            c: int((frame["ec_class"] == c).sum()) for c in card["classes"]
        }


def test_split_is_stratified_and_disjoint(prepared):
    splits, card = prepared
    for name, frame in splits.items():
        assert set(frame["ec_class"]) == {"1", "2", "3", "4"}, name
    total = sum(card["totals"].values())
    assert 0.7 <= card["totals"]["train"] / total <= 0.9
    assert card["totals"] == {"train": 41, "val": 6, "test": 6}
    for column in ("accession", "sequence"):
        values = [set(frame[column]) for frame in splits.values()]
        assert sum(map(len, values)) == len(set().union(*values))


def test_deterministic_and_seeded(table):
    first, card = clean_and_split(table, OPTIONS)
    again, card_again = clean_and_split(table, OPTIONS)
    for name in first:
        pd.testing.assert_frame_equal(first[name], again[name])
    assert card == card_again

    other, _ = clean_and_split(table, dataclasses.replace(OPTIONS, seed=1))
    assert set(other["val"]["accession"]) != set(first["val"]["accession"])


def test_split_does_not_depend_on_row_order(table):
    # Dropping the duplicate makes "keep first" irrelevant, so row order should not matter.
    table = table[table["accession"] != "ZDUP01"]
    shuffled = table.sample(frac=1, random_state=3)
    a, _ = clean_and_split(table, OPTIONS)
    b, _ = clean_and_split(shuffled, OPTIONS)
    for name in a:
        pd.testing.assert_frame_equal(a[name], b[name])


def test_random_split_small_classes():
    df = pd.DataFrame({"accession": [f"A{i}" for i in range(5)], "ec_class": list("11122")})
    split = random_split(df, (0.8, 0.1, 0.1), seed=0)
    assert sorted(split[:3]) == ["test", "train", "val"]
    assert split[3:].tolist() == ["train", "train"]


def test_all_classes_when_none_selected(table):
    splits, card = clean_and_split(table, dataclasses.replace(OPTIONS, classes=None))
    assert card["classes"] == ["1", "2", "3", "4", "7"]
    assert card["dropped"]["class_not_selected"] == 0
    assert card["counts"]["train"]["7"] == 2  # too few to stratify: training only


def test_class_cap(table):
    options = dataclasses.replace(OPTIONS, max_per_class=11)
    splits, card = clean_and_split(table, options)
    kept = pd.concat(splits.values())
    assert kept["ec_class"].value_counts().to_dict() == {"1": 11, "2": 11, "3": 11, "4": 10}
    assert card["dropped"]["class_cap"] == 4 + 5 + 1
    again, _ = clean_and_split(table, options)
    assert set(pd.concat(again.values())["accession"]) == set(kept["accession"])


def test_min_per_class_error_names_class(table):
    with pytest.raises(
        DataError,
        match=r"class\(es\) '4' \(10\); min_per_class=11: lower data.min_per_class \(smallest "
        r"class: 10 rows\) or leave the class out with data.classes",
    ):
        clean_and_split(table, dataclasses.replace(OPTIONS, min_per_class=11))
    with pytest.raises(DataError, match=r"'5' \(0\)"):
        clean_and_split(table, dataclasses.replace(OPTIONS, classes=("1", "5")))


def test_duplicate_accession_is_error(table):
    table = pd.concat([table, table.iloc[[3]]], ignore_index=True)
    with pytest.raises(DataError, match="duplicate accession 'P10003'"):
        clean_and_split(table, OPTIONS)


def test_invalid_residues_error_through_prepare(table):
    with pytest.raises(DataError, match="accession BAD001: invalid residue"):
        clean_and_split(table, dataclasses.replace(OPTIONS, invalid_residues="error"))


# --- options ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes",
    [
        {"fractions": (0.8, 0.2, 0.0)},
        {"fractions": (0.5, 0.2, 0.2)},
        {"crop": "middle"},
        {"invalid_residues": "keep"},
        {"split_method": "cdhit"},
        {"multi_label": "all"},
        {"identity": 0},
        {"coverage": 1.5},
        {"classes": ("9",)},
        {"min_length": 50, "max_length": 40},
        {"ec_level": 5},
    ],
)
def test_bad_options_raise(changes):
    with pytest.raises(DataError, match="data options"):
        DatasetOptions(**changes)


def test_options_from_config():
    cfg = {
        "data": {
            "input": "x.tsv",
            "classes": [1, 2, 3, 4, 5, 6],
            "ec_level": 1,
            "min_length": 30,
            "max_length": 1022,
            "crop": "n_terminal",
            "invalid_residues": "drop",
            "max_per_class": None,
            "min_per_class": 10,
            "split": {
                "method": "homology",
                "train": 0.7,
                "val": 0.15,
                "test": 0.15,
                "identity": 0.4,
                "coverage": 0.5,
            },
            "seed": 3,
            "multi_label": "first",
            "non_enzymes": "ne.tsv",
            "uniprot": {"query": "reviewed:true", "per_class_cap": 10},
        }
    }
    options = options_from_config(cfg)
    assert options == DatasetOptions(
        classes=("1", "2", "3", "4", "5", "6"),
        min_length=30,
        min_per_class=10,
        fractions=(0.7, 0.15, 0.15),
        split_method="homology",
        identity=0.4,
        coverage=0.5,
        multi_label="first",
        seed=3,
    )
    assert options_from_config(cfg["data"]) == options
    assert options_from_config({"data": {"classes": None}}) == DatasetOptions()
    assert options_from_config({}) == DatasetOptions()
    assert options_from_config(None) == DatasetOptions()


def test_options_from_config_rejects_unknown_keys():
    with pytest.raises(DataError, match="max_lenght"):
        options_from_config({"data": {"max_lenght": 5}})
    with pytest.raises(DataError, match="split.tran"):
        options_from_config({"data": {"split": {"tran": 0.8}}})
    with pytest.raises(DataError, match="give all of train, val, test"):
        options_from_config({"data": {"split": {"train": 0.8, "val": 0.2}}})


# --- real data -----------------------------------------------------------------------------


@pytest.mark.skipif(not REAL_TSV.exists(), reason="shared Swiss-Prot table not available")
def test_real_swissprot_table():
    table = read_uniprot_tsv(REAL_TSV)
    options = DatasetOptions(min_length=30, max_per_class=50, min_per_class=10)
    splits, card = clean_and_split(table, options)
    assert card["classes"] == ["1", "2", "3", "4", "5", "6", "7"]
    assert card["n_input_rows"] == len(table)
    assert sum(card["totals"].values()) == 7 * 50
    assert card["n_input_rows"] == sum(card["dropped"].values()) + 7 * 50
    for frame in splits.values():
        assert set(frame["ec_class"]) == set(card["classes"])
        assert frame["length"].between(30, 1022).all()


# --- multi_label, non-enzymes ---------------------------------------------------------------


def test_multi_label_first_keeps_the_first_resolvable_label():
    df = pd.DataFrame(
        {
            "accession": ["A", "B", "C", "D"],
            "ec_numbers": ["1.1.1.1; 3.4.-.-", "3.-.-.-; 1.1.1.1", "2.7.1.1; 2.3.1.1", "4.1.1.1"],
        }
    )
    kept, counts = label_rows(df, DatasetOptions(ec_level=2, multi_label="first"))
    assert kept["ec_class"].tolist() == ["1.1", "1.1", "2.7", "4.1"]
    assert counts["multiple_classes"] == 0 and counts["multiple_classes_kept_first"] == 3
    kept, counts = label_rows(df, DatasetOptions(ec_level=1, multi_label="first"))
    assert kept["ec_class"].tolist() == ["1", "3", "2", "4"]  # "3.-.-.-" resolves at level 1
    assert counts["multiple_classes_kept_first"] == 2  # C is class 2 at level 1


def test_multi_label_first_through_prepare(table):
    splits, card = clean_and_split(table, dataclasses.replace(OPTIONS, multi_label="first"))
    kept = pd.concat(splits.values()).set_index("accession")
    assert kept.loc["MULTI1", "ec_class"] == "1"
    assert card["dropped"]["multiple_classes"] == 0
    assert card["relabelled"] == {"multiple_classes_kept_first": 1}
    assert card["n_input_rows"] == card["n_kept"] + card["n_dropped"]


def non_enzyme_rows(table) -> list[dict]:
    rng = random.Random(5)
    rows = [
        {"Entry": f"N{i:04d}", "EC number": "", "Sequence": random_sequence(rng, 60)}
        for i in range(12)
    ]
    rows.append({"Entry": "NEC001", "EC number": "3.1.1.1", "Sequence": random_sequence(rng, 60)})
    # Also in the enzyme table as P40000 (class 4): labelled two ways, both copies dropped.
    enzyme = table.set_index("accession").loc["P40000", "sequence"]
    rows.append({"Entry": "NDUP01", "EC number": "", "Sequence": enzyme})
    return rows


def test_non_enzyme_class(tmp_path, table):
    path = write_tsv(
        tmp_path / "non.tsv", non_enzyme_rows(table), columns=["Entry", "Sequence", "Length"]
    )
    non_enzymes = read_uniprot_tsv(path, require_ec=False)
    assert (non_enzymes["ec_numbers"] == "").all()
    non_enzymes.loc[non_enzymes["accession"] == "NEC001", "ec_numbers"] = "3.1.1.1"
    splits, card = clean_and_split(table, OPTIONS, non_enzymes=non_enzymes)
    assert card["classes"] == ["0", "1", "2", "3", "4"]
    assert card["label_index"]["0"] == 0
    assert card["input_rows"] == {"table": len(table), "non_enzymes": 14}
    assert card["dropped"]["non_enzyme_has_ec"] == 1
    assert (
        card["dropped"]["duplicate_conflicting_labels"]
        == EXPECTED_DROPPED["duplicate_conflicting_labels"] + 2
    )
    kept = pd.concat(splits.values())
    assert (kept["ec_class"] == "0").sum() == 12
    assert (kept.loc[kept["ec_class"] == "0", "label"] == 0).all()
    assert not {"NEC001", "NDUP01", "P40000"} & set(kept["accession"])
    assert card["n_input_rows"] == len(table) + 14 == card["n_kept"] + card["n_dropped"]


def test_non_enzyme_accession_also_in_table_is_error(table):
    other = table[table["accession"] == "P10003"].assign(ec_numbers="")
    with pytest.raises(DataError, match="duplicate accession 'P10003'"):
        clean_and_split(table, OPTIONS, non_enzymes=other)


@pytest.mark.skipif(not REAL_TSV.exists(), reason="shared Swiss-Prot table not available")
def test_real_non_enzyme_table_reads():
    table = read_uniprot_tsv(REAL_TSV.with_name("swissprot_nonenzymes.tsv"), require_ec=False)
    assert len(table) == 693 and (table["ec_numbers"] == "").all()


# --- the card --------------------------------------------------------------------------------


def test_card_accounts_for_rows_lengths_and_clusters(prepared):
    splits, card = prepared
    assert card["n_input_rows"] == card["n_kept"] + card["n_dropped"]
    assert card["n_dropped"] == sum(EXPECTED_DROPPED.values())
    assert card["n_kept"] == sum(card["totals"].values())
    for name, frame in splits.items():
        stats = card["length"][name]
        assert stats["n"] == len(frame)
        assert stats["min"] == frame["length"].min() and stats["max"] == frame["length"].max()
        assert stats["median"] == frame["length"].median()
        # random split: every row is its own cluster
        assert card["clusters"][name] == len(frame)
        assert (frame["cluster"] == frame["accession"]).all()
    assert card["input_length"]["n"] == len(fixture_rows())
    assert card["input_length"]["max"] == 150


def test_card_markdown(prepared):
    _, card = prepared
    card = {
        **card,
        "source": {"type": "file", "path": "x.tsv", "sha256": "ab" * 32},
        "outputs": {"train": {"path": "t", "rows": 41, "sha256": "cd" * 32}},
    }
    text = card_markdown(card)
    assert "Source: `x.tsv`" in text
    assert "| duplicate_conflicting_labels | 2 |" in text
    assert "| train | 11 | 12 | 10 | 8 | 41 | 41 | 62.0 |" in text
    assert "Split: random split, stratified by class (seed 0)." in text
    assert f"| train | 41 | `{'cd' * 32}` |" in text


# --- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content, message",
    [
        (b"Entry\tEC number\tSequence\nA\t1.1.1.1\tMKV\nB\t2.2.2.2\n", "line 3 has 2 field(s)"),
        (b"Entry\tEC number\tSequence\nA\t1.1.1.1\tMKV\tX\n", "line 2 has 4 field(s)"),
        (b"<!DOCTYPE html>\n<html><body>503 Service Unavailable</body></html>\n", "HTML"),
        (b"  <html>\n<head><title>Error</title></head>\n", "HTML"),
        (b"", "empty file"),
        (b"\n\n", "empty file"),
        (b"Entry\tEC number\tSequence\n", "no data rows"),
        (b"Entry\tSequence\nA\tMKV\n", "missing column(s) 'EC number'"),
        (b"Entry\tEC number\tSequence\nA\t1.1.1.1\t\xff\xfe\n", "not UTF-8"),
    ],
)
def test_bad_files_give_one_line_naming_the_file(tmp_path, content, message):
    path = tmp_path / "bad.tsv"
    path.write_bytes(content)
    with pytest.raises(DataError) as err:
        read_uniprot_tsv(path)
    text = str(err.value)
    assert text.startswith(str(path)) and message in text and "\n" not in text


def test_truncated_gzip_is_named(tmp_path):
    whole = write_tsv(tmp_path / "whole.tsv.gz", fixture_rows(), gz=True).read_bytes()
    path = tmp_path / "cut.tsv.gz"
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DataError, match=r"cut.tsv.gz: broken or truncated gzip"):
        read_uniprot_tsv(path)


def test_gzip_detected_by_content_not_name(tmp_path, table):
    path = write_tsv(tmp_path / "enzymes.tsv", fixture_rows(), gz=True)
    pd.testing.assert_frame_equal(read_uniprot_tsv(path), table)


def test_windows_line_endings(tmp_path, table):
    text = write_tsv(tmp_path / "a.tsv", fixture_rows()).read_text()
    path = tmp_path / "crlf.tsv"
    path.write_bytes(text.replace("\n", "\r\n").encode())
    pd.testing.assert_frame_equal(read_uniprot_tsv(path), table)


# --- defaults and shipped configs ------------------------------------------------------------

REPO = Path(__file__).resolve().parents[1]
SHIPPED_CONFIGS = sorted(p for p in (REPO / "config").glob("*.yaml") if p.name != "schema.yaml")


def test_dataset_option_defaults_are_the_schemas():
    assert options_from_config(schema_defaults()["data"]) == DatasetOptions()


def test_split_methods_are_the_implemented_ones():
    assert tuple(SPLITTERS) == SPLIT_METHODS


@pytest.mark.parametrize("path", SHIPPED_CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_are_valid_and_need_nothing_outside_the_repository(path):
    from snakemake.utils import validate

    text = path.read_text()
    assert "../shared" not in text and "/shared/" not in text
    config = yaml.safe_load(text)
    validate(config, str(REPO / "config/schema.yaml"))
    options_from_config(config["data"])  # the data options are consistent too
    data_input = config["data"]["input"]
    assert data_input is None or (REPO / data_input).exists()


# --- bad input through the workflow: one line, no output ------------------------------------


def test_bad_input_in_the_workflow_is_one_line_and_leaves_nothing(tmp_path):
    """The library tests above cover every bad input; this one checks the rule's edge once."""
    config = yaml.safe_load((REPO / "tests/config/tiny.yaml").read_text())
    source = tmp_path / "input.tsv"
    source.write_text("<!DOCTYPE html>\n<html><body>502 Bad Gateway</body></html>\n")
    config["data"]["input"] = str(source)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    snakemake = str(Path(sys.executable).with_name("snakemake"))
    run = subprocess.run(
        [snakemake, "results/tiny/data/train.parquet", "-s", str(REPO / "Snakefile")]
        + ["-d", str(tmp_path), "--cores", "1", "--configfile", str(tmp_path / "config.yaml")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode != 0
    errors = [line for line in run.stderr.splitlines() if line.startswith("Error in rule")]
    assert errors[0].startswith(f"Error in rule clean_dataset: {source}: an HTML/XML page")
    assert "Traceback" not in run.stderr
    # no output: only the copy of the input the workflow reads (named by content)
    written = [p for p in (tmp_path / "results").rglob("*") if p.is_file()]
    assert all(p.parent == tmp_path / "results/input" for p in written), written


# --- issue 12: inputs that used to run on, crash or mislead --------------------------------


def small_tsv(path: Path, rows: list[tuple[str, str, str]], columns=None) -> Path:
    """A TSV of (accession, EC, sequence) rows; Length is the sequence's length."""
    return write_tsv(
        path, [{"Entry": a, "EC number": ec, "Sequence": s} for a, ec, s in rows], columns
    )


def test_one_class_left_is_one_line_naming_file_and_class(tmp_path):
    rng = random.Random(1)
    rows = [(f"P{i:05d}", "3.1.1.1", random_sequence(rng, 50)) for i in range(5)]
    rows.append(("SHORT1", "1.1.1.1", "MKV"))  # class 1's only row: too short
    path = small_tsv(tmp_path / "x.tsv", rows)
    with pytest.raises(DataError) as err:
        clean_dataset(read_uniprot_tsv(path), DatasetOptions(min_length=20))
    assert str(err.value) == (
        f"data.input {path}: only one class left after cleaning (3: 5 rows); need at least two "
        "(data.classes, data.ec_level and the cleaning keys decide which)"
    )
    # Asked for one class: the same.
    table = read_uniprot_tsv(path)
    with pytest.raises(DataError, match=r"only one class left after cleaning \(3: 5 rows\)"):
        clean_dataset(table, DatasetOptions(classes=("3",), min_length=20))


CUT_COLUMNS = {
    "sequence last": ["Entry", "EC number", "Length", "Sequence"],
    "length last": ["Entry", "EC number", "Sequence", "Length"],
}


@pytest.mark.parametrize("columns", list(CUT_COLUMNS.values()), ids=list(CUT_COLUMNS))
def test_file_cut_inside_its_last_field_is_an_error_naming_the_line(tmp_path, columns):
    whole = write_tsv(tmp_path / "whole.tsv", fixture_rows(), columns=columns).read_text()
    path = tmp_path / "cut.tsv"
    path.write_text(whole[: len(whole) - 3])  # the newline and the last field's last 2 chars
    n_lines = whole.count("\n")
    with pytest.raises(DataError) as err:
        read_uniprot_tsv(path)
    message = str(err.value)
    assert message.startswith(f"{path}: line {n_lines}: the sequence of CONF02 has ")
    assert "Length field says" in message and "\n" not in message


def test_length_mismatch_in_the_middle_names_its_line(tmp_path):
    lines = write_tsv(tmp_path / "a.tsv", fixture_rows()).read_text().splitlines()
    header = lines[0].split("\t")
    fields = lines[5].split("\t")
    fields[header.index("Length")] = str(int(fields[header.index("Length")]) + 1)
    lines[5] = "\t".join(fields)
    path = tmp_path / "edited.tsv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=rf"^{path}: line 6: the sequence of P10004 has \d+ "):
        read_uniprot_tsv(path)


def test_length_mismatch_drop_is_counted_in_the_card(tmp_path):
    rows = fixture_rows()
    whole = write_tsv(tmp_path / "whole.tsv", rows, columns=CUT_COLUMNS["sequence last"])
    path = tmp_path / "cut.tsv"
    path.write_text(whole.read_text()[:-10])  # CONF02, the last row, loses 9 residues
    table = read_uniprot_tsv(path, length_mismatch="drop")
    options = dataclasses.replace(OPTIONS, length_mismatch="drop")
    splits, card = clean_and_split(table, options)
    # CONF02 is dropped for its length, so CONF01 is no longer a conflicting duplicate.
    expected = {**EXPECTED_DROPPED, "length_mismatch": 1, "duplicate_conflicting_labels": 0}
    assert card["dropped"] == expected and list(card["dropped"]) == list(DROP_REASONS)
    kept = set(pd.concat(splits.values())["accession"])
    assert "CONF02" not in kept and "CONF01" in kept
    assert card["n_input_rows"] == len(rows) == card["n_kept"] + card["n_dropped"]
    assert card["options"]["length_mismatch"] == "drop"
    assert "| length_mismatch | 1 |" in card_markdown(card)
    # A table read with "drop" but cleaned with "error" still stops, naming the accession.
    with pytest.raises(DataError, match="row for accession CONF02: sequence of 51 residues"):
        clean_dataset(table, OPTIONS)


def test_length_mismatch_option():
    assert DatasetOptions().length_mismatch == "error"
    assert options_from_config({"data": {"length_mismatch": "drop"}}).length_mismatch == "drop"
    with pytest.raises(DataError, match="data options: length_mismatch"):
        DatasetOptions(length_mismatch="ignore")


def test_no_rows_left_is_one_line_with_the_drop_counts(tmp_path):
    rng = random.Random(2)
    rows = [
        ("A1", "1.1.1.1", "MKV"),
        ("A2", "2.1.1.1", "MKVL"),
        ("A3", "", random_sequence(rng, 50)),
        ("A4", "9.9.9.9", random_sequence(rng, 50)),
    ]
    path = small_tsv(tmp_path / "x.tsv", rows)
    with pytest.raises(DataError) as err:
        clean_dataset(read_uniprot_tsv(path), DatasetOptions(min_length=20))
    assert str(err.value) == (
        f"data.input {path}: no rows left after cleaning: all 4 dropped (too_short 2, no_ec 2); "
        "try a lower data.min_length"
    )
    # Every row dropped by the first filter: the message, not a traceback from the next step,
    # with the key that lets those rows through.
    with pytest.raises(
        DataError, match=r"all 4 dropped \(too_short 4\); try a lower data.min_length$"
    ):
        clean_dataset(read_uniprot_tsv(path), DatasetOptions(min_length=60))


def test_label_rows_of_no_rows():
    empty = pd.DataFrame({c: pd.Series([], dtype=str) for c in ("accession", "ec_numbers")})
    kept, counts = label_rows(empty, DatasetOptions())
    assert kept.empty and counts["no_ec"] == 0 and counts["multiple_classes_kept_first"] == 0


def test_byte_order_mark_is_stripped(tmp_path, table):
    text = write_tsv(tmp_path / "a.tsv", fixture_rows()).read_bytes()
    path = tmp_path / "bom.tsv"
    path.write_bytes(b"\xef\xbb\xbf" + text)
    pd.testing.assert_frame_equal(read_uniprot_tsv(path), table)
    gz = tmp_path / "bom.tsv.gz"
    gz.write_bytes(gzip.compress(b"\xef\xbb\xbf" + text))
    pd.testing.assert_frame_equal(read_uniprot_tsv(gz), table)


def test_duplicate_accession_names_file_and_lines(tmp_path):
    rows = fixture_rows()
    rows.insert(5, {**rows[1], "Sequence": "MKVLAAGIWW" * 4})  # P10001 again, on line 7
    path = write_tsv(tmp_path / "dup.tsv", rows)
    with pytest.raises(DataError) as err:
        read_uniprot_tsv(path)
    assert str(err.value) == f"{path}: duplicate accession 'P10001' on lines 3 and 7"


def test_accession_in_both_tables_names_both_files(tmp_path, table, tsv):
    other = small_tsv(tmp_path / "non.tsv", [("P10003", "", "MKVLAAGIWW" * 4)])
    with pytest.raises(DataError) as err:
        clean_dataset(table, OPTIONS, non_enzymes=read_uniprot_tsv(other, require_ec=False))
    assert str(err.value) == (
        f"duplicate accession 'P10003' in both data.input {tsv} and data.non_enzymes {other} "
        "(1 shared)"
    )


@pytest.mark.parametrize(
    "text, expected",
    [
        ("EC 1.1.1.1", ["1.1.1.1"]),
        ("EC 1.1.1.1; EC 3.4.-.-", ["1.1.1.1", "3.4.-.-"]),
        ("EC:2.7.11.1; ec 2.7.7.n1", ["2.7.11.1", "2.7.7.n1"]),
        ("EC1.1.1.1", ["1.1.1.1"]),
    ],
)
def test_ec_prefix_is_stripped(text, expected):
    assert parse_ec_numbers(text) == expected


def test_ec_prefix_through_cleaning(tmp_path):
    rng = random.Random(3)
    rows = [(f"P{i}", f"EC {i % 2 + 1}.1.1.{i}", random_sequence(rng, 40)) for i in range(6)]
    table = read_uniprot_tsv(small_tsv(tmp_path / "x.tsv", rows))
    cleaned, report = clean_dataset(table, DatasetOptions(min_length=20))
    assert report["dropped"]["no_ec"] == 0 and report["n_kept"] == 6
    assert cleaned.set_index("accession").loc["P3", "ec_numbers"] == "2.1.1.3"
    assert report["classes"] == ["1", "2"]
