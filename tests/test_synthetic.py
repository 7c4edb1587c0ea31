import re

import numpy as np
import pandas as pd
import pytest

from kneurons.data.clean import clean_dataset
from kneurons.data.options import DatasetOptions
from kneurons.data.split import split_dataset
from kneurons.data.synthetic import (
    ClassSpec,
    PatternError,
    SyntheticOptions,
    generate,
    parse_pattern,
    sample_pattern,
)
from kneurons.data.tsv import read_uniprot_tsv


def pattern_regex(pattern: str) -> re.Pattern:
    """A regular expression matching exactly the strings `pattern` can produce."""
    parts = []
    for el in parse_pattern(pattern):
        chars = el.choices if len(el.choices) == 1 else f"[{el.choices}]"
        parts.append(chars if (el.lo, el.hi) == (1, 1) else f"{chars}{{{el.lo},{el.hi}}}")
    return re.compile("".join(parts))


def small(**changes):
    base = dict(n_per_class=20, min_length=40, max_length=60, seed=3)
    base.update(changes)
    return SyntheticOptions(**base)


def test_patterns_expand_correctly():
    elements = parse_pattern("C-x(2)-[DE]-{P}(1,2)-H")
    assert [(e.lo, e.hi) for e in elements] == [(1, 1), (2, 2), (1, 1), (1, 2), (1, 1)]
    assert elements[2].choices == "DE" and "P" not in elements[3].choices
    regex = pattern_regex("C-x(2)-[DE]-{P}(1,2)-H")
    rng = np.random.default_rng(0)
    for _ in range(200):
        site = sample_pattern(elements, rng)
        assert regex.fullmatch(site), site
        assert 6 <= len(site) <= 7 and site[0] == "C" and site[3] in "DE" and site[-1] == "H"
    assert [e.choices for e in parse_pattern("WCW")] == ["W", "C", "W"]
    for bad in ("C-x(2-H", "C-[JB]-H", "", "C-x(3,1)"):
        with pytest.raises(PatternError):
            parse_pattern(bad)


def test_generator_is_deterministic_and_sites_match_sequences():
    table_a, sites_a = generate(small(decoys=("KKRR",)))
    table_b, sites_b = generate(small(decoys=("KKRR",)))
    pd.testing.assert_frame_equal(table_a, table_b)
    pd.testing.assert_frame_equal(sites_a, sites_b)
    assert not table_a.equals(generate(small(seed=4, decoys=("KKRR",)))[0])

    sequences = dict(zip(table_a["Entry"], table_a["Sequence"], strict=True))
    for site in sites_a.itertuples():
        seq = sequences[site.accession]
        assert seq[site.start - 1 : site.end] == site.site
        assert pattern_regex(site.motif).fullmatch(site.site)
    assert len(table_a) == 4 * 20
    assert table_a["Length"].between(40, 60).all()
    # every sequence carries its class motif; decoys appear in every class
    motif_sites = sites_a[sites_a["kind"] == "motif"]
    assert motif_sites.groupby("accession").size().min() == 1
    decoys = sites_a[sites_a["kind"] == "decoy"]
    assert set(decoys["label"]) == {"1", "2", "3", "4"}


def test_and_classes_and_distractors():
    classes = {"1": ClassSpec(("WWCC", "HHMM"), mode="and"), "2": ClassSpec(("YPDYK",))}
    table, sites = generate(small(classes=classes, and_distractor_rate=1.0))
    per_class1 = sites[(sites["label"] == "1") & (sites["kind"] == "motif")]
    assert (per_class1.groupby("accession")["motif"].nunique() == 2).all()
    distractors = sites[sites["kind"] == "distractor"]
    assert set(distractors["label"]) == {"2"}
    assert (distractors.groupby("accession").size() == 1).all()  # one of the two, never both


def test_label_noise_flips_about_the_requested_fraction():
    table, sites = generate(small(n_per_class=200, label_noise=0.2))
    planted = sites[sites["kind"] == "motif"].groupby("accession")["label"].first()
    observed = table.set_index("Entry")["EC number"].str[0]
    flipped = (planted != observed.loc[planted.index]).mean()
    assert 0.15 < flipped < 0.25


def test_output_reads_as_a_uniprot_table(tmp_path):
    table, _ = generate(small())
    path = tmp_path / "synthetic.tsv"
    table.to_csv(path, sep="\t", index=False)
    options = DatasetOptions(min_per_class=5)
    splits, card = split_dataset(*clean_dataset(read_uniprot_tsv(path), options), options)
    assert card["classes"] == ["1", "2", "3", "4"]
    assert sum(card["totals"].values()) == 80
    assert card["dropped"]["multiple_classes"] == 0


def test_permute_labels_keeps_class_sizes_and_unlinks_motifs():
    plain, plain_sites = generate(small(n_per_class=200))
    null, null_sites = generate(small(n_per_class=200, permute_labels=True))
    # the same sequences and planted sites (the permutation is drawn after generation)
    pd.testing.assert_frame_equal(plain.drop(columns="EC number"), null.drop(columns="EC number"))
    pd.testing.assert_frame_equal(plain_sites, null_sites)
    # a permutation: every class keeps its size
    assert null["EC number"].value_counts().to_dict() == plain["EC number"].value_counts().to_dict()
    assert (null["EC number"] != plain["EC number"]).mean() > 0.5
    # the motif no longer predicts the label: of the sequences labelled c, the share carrying
    # motif c falls from 1 to about the class share (1/4)
    planted = null_sites[null_sites["kind"] == "motif"].groupby("accession")["label"].first()
    label = null.set_index("Entry")["EC number"].str[0].loc[planted.index]
    shares = (planted == label).groupby(label).mean()
    assert set(shares.index) == {"1", "2", "3", "4"}
    assert shares.between(0.25 - 0.1, 0.25 + 0.1).all(), shares.to_dict()
    assert (planted == plain.set_index("Entry")["EC number"].str[0].loc[planted.index]).all()
    # seeded: the same seed permutes the same way, another seed another way
    pd.testing.assert_frame_equal(null, generate(small(n_per_class=200, permute_labels=True))[0])
    other = generate(small(n_per_class=200, permute_labels=True, seed=4))[0]
    assert not other["EC number"].equals(null["EC number"])


def test_permute_labels_from_config():
    options = SyntheticOptions.from_config({"permute_labels": True, "n_per_class": 5})
    assert options.permute_labels and options.n_per_class == 5
    assert not SyntheticOptions.from_config({}).permute_labels
