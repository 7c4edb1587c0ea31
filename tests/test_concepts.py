"""Concept matching (kneurons.concepts): per-residue precision, recall and F1 of units as concept
detectors, threshold and best unit chosen on validation and reported on test."""

from __future__ import annotations

import random

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from make_tiny_tsv import AMINO_ACIDS
from workflow_helpers import run_snakemake, write_config

from kneurons.concepts.matching import (
    UNIT_COLUMNS,
    Counts,
    concepts_of,
    cut_values,
    detection_counts,
    is_signed,
    match_concepts,
    residue_labels,
    scores,
    unit_maxima,
    unit_table,
    usable_examples,
)
from kneurons.concepts.report import BEST_COLUMNS, best_units, concepts_markdown, kept_units
from kneurons.model.batching import tokenize
from kneurons.model.classifier import alphabet
from kneurons.model.hooks import captured_outputs


def test_precision_recall_f1_by_hand():
    # 10 residues, 4 in the concept; the unit is on at 5 of them, 3 in the concept
    p, r, f = scores(np.array([[3]]), np.array([5]), np.array([4]))
    assert p[0, 0] == pytest.approx(3 / 5) and r[0, 0] == pytest.approx(3 / 4)
    assert f[0, 0] == pytest.approx(2 * 0.6 * 0.75 / (0.6 + 0.75))
    # a unit never on, and a concept without residues: 0, not NaN
    p, r, f = scores(np.array([[0, 0], [0, 0]]), np.array([0, 2]), np.array([3, 0]))
    assert not np.isnan(p).any() and (f == 0).all() and (r == 0).all()


def counts(true, on, positives, n=100):
    """Counts with the given (thresholds, concepts, units) true positives."""
    return Counts(np.asarray(true), np.asarray(on), np.asarray(positives), n)


def test_threshold_chosen_on_validation_is_read_on_test():
    fractions = [0.0, 0.5, 0.8]
    # one concept of 10 residues, two units. Unit 0: exact at 0.5 on validation (10 of 10 on);
    # unit 1 best at 0.8. On test unit 0 would be best at 0.8, but 0.5 is what is read.
    val = counts([[[10, 10]], [[10, 8]], [[5, 8]]], [[100, 100], [10, 20], [5, 8]], [10])
    test = counts([[[10, 10]], [[6, 2]], [[9, 2]]], [[100, 100], [12, 30], [9, 4]], [10])
    table = unit_table(("ffn_in", 1), val, test, np.array([2.0, -1.0]), fractions, ["motif:A"])
    assert list(table.columns) == list(UNIT_COLUMNS)
    row0, row1 = table.iloc[0], table.iloc[1]
    assert row0["threshold"] == 0.5 and row0["val_f1"] == 1.0
    assert row0["threshold_value"] == 1.0  # 0.5 x the validation maximum 2.0
    assert row0["test_precision"] == pytest.approx(6 / 12)
    assert row0["test_recall"] == pytest.approx(6 / 10)
    assert row0["test_f1"] == pytest.approx(2 * 6 / 22)
    assert row1["threshold"] == 0.8 and np.isnan(row1["threshold_value"])  # max <= 0
    assert row1["test_f1"] == pytest.approx(2 * 2 / 14)
    assert (table["kind"] == "neuron").all() and (table["layer"] == 1).all()


def test_cut_values_never_switch_on_a_unit_without_a_positive_maximum():
    cut = cut_values(torch.tensor([2.0, 0.0, -1.0]), [0.0, 0.5])
    assert cut[1, 0] == 1.0 and cut[0, 0] == 0.0
    assert torch.isinf(cut[:, 1:]).all()


def test_latents_and_ffn_in_are_signed_other_neurons_absolute():
    assert is_signed("ffn_in") and is_signed("sae_resid") and is_signed("sae_ffn")
    assert not is_signed("query") and not is_signed("ffn_out")


SYNTHETIC_SITES = pd.DataFrame(
    {
        "accession": ["S1", "S1", "S2", "S3", "S3"],
        "label": ["1", "1", "2", "2", "2"],
        "kind": ["motif", "decoy", "motif", "motif", "distractor"],
        "motif": ["WCHWM", "KRKRK", "YPDYK", "YPDYK", "WCHWM"],
        "site": ["WCHWM", "KRKRK", "YPDYK", "YPDYK", "WCHWM"],
        "start": [2, 10, 1, 4, 12],
        "end": [6, 14, 5, 8, 16],
    }
)


def test_a_concept_is_one_planted_motif_wherever_it_is_planted():
    sites, concepts = concepts_of(SYNTHETIC_SITES)
    assert concepts["concept"].tolist() == ["motif:WCHWM", "motif:YPDYK", "decoy:KRKRK"]
    assert concepts["label"].tolist() == ["1", "2", ""]
    # the distractor planting of WCHWM in a class-2 sequence is the same concept
    assert sites.loc[4, "concept"] == "motif:WCHWM"
    uniprot = pd.DataFrame({"accession": ["P1", "P2"], "kind": ["binding_site", "active_site"],
                            "start": [3, 5], "end": [3, 5]})  # fmt: skip
    assert concepts_of(uniprot)[1]["concept"].tolist() == ["active_site", "binding_site"]


def test_residue_labels_follow_positions_and_the_crop():
    sites, concepts = concepts_of(SYNTHETIC_SITES)
    examples = pd.DataFrame({"accession": ["S1", "S3"], "sequence": ["A" * 12, "A" * 20]})
    labels = residue_labels(examples, sites, concepts["concept"].tolist())
    assert labels[0].shape == (12, 3)
    assert np.flatnonzero(labels[0][:, 0]).tolist() == [1, 2, 3, 4, 5]  # positions 2-6
    assert np.flatnonzero(labels[0][:, 2]).tolist() == [9, 10, 11]  # 10-14, cut at 12 residues
    assert np.flatnonzero(labels[1][:, 0]).tolist() == [11, 12, 13, 14, 15]
    assert np.flatnonzero(labels[1][:, 1]).tolist() == [3, 4, 5, 6, 7]
    frame = pd.DataFrame({"accession": ["A", "B"], "sequence": ["AA", "CC"],
                          "cropped": [True, False]})  # fmt: skip
    assert len(usable_examples(frame, "n_terminal")) == 2
    assert usable_examples(frame, "center")["accession"].tolist() == ["B"]


def random_sequences(n, seed=0):
    rng = random.Random(seed)
    return ["".join(rng.choice(AMINO_ACIDS) for _ in range(rng.randint(8, 25))) for _ in range(n)]


def module_outputs(model, sequences, module):
    """(residues, units) activations of `module` over `sequences`, sequence by sequence."""
    out = []
    with torch.no_grad(), captured_outputs(model, [module]) as captured:
        for tokens in tokenize(alphabet(), sequences):
            model(tokens.unsqueeze(0))
            out.append(captured[module][1 : len(tokens) - 1, 0].numpy())
    return out


def test_counts_through_the_hooks_equal_a_direct_count(tiny_model):
    sequences = random_sequences(7)
    examples = pd.DataFrame({"accession": [f"A{i}" for i in range(7)], "sequence": sequences})
    sites = pd.DataFrame({"accession": ["A0", "A3", "A5"], "kind": "binding_site",
                          "start": [2, 1, 4], "end": [4, 1, 8]})  # fmt: skip
    sites, concepts = concepts_of(sites)
    labels = residue_labels(examples, sites, concepts["concept"].tolist())
    modules = [("key", 1), ("ffn_in", 0)]
    maxima = unit_maxima(tiny_model, alphabet(), sequences, modules, max_tokens=64)
    got = detection_counts(tiny_model, alphabet(), sequences, labels, modules, maxima,
                           [0.0, 0.5], max_tokens=64)  # fmt: skip
    y = np.concatenate(labels)
    for module in modules:
        acts = np.concatenate(module_outputs(tiny_model, sequences, module))
        response = acts if module[0] == "ffn_in" else np.abs(acts)
        np.testing.assert_allclose(maxima[module].numpy(), response.max(0), rtol=1e-6)
        for f, fraction in enumerate([0.0, 0.5]):
            on = response > fraction * response.max(0)
            on &= response.max(0) > 0
            np.testing.assert_array_equal(got[module].on[f], on.sum(0))
            np.testing.assert_array_equal(got[module].true[f], y.T.astype(int) @ on)
        assert got[module].n_residues == sum(len(s) for s in sequences)


def test_a_unit_that_fires_exactly_on_a_concept_gets_f1_one(tiny_model):
    """A concept made of the residues where one ffn_in unit exceeds half its maximum: at
    threshold 0.5 that unit is a perfect detector, chosen on validation, perfect on test."""
    sequences = random_sequences(12, seed=1)
    acts = module_outputs(tiny_model, sequences, ("ffn_in", 1))
    unit = 5
    top = max(a[:, unit].max() for a in acts)
    rows = []
    for i, a in enumerate(acts):
        for p in np.flatnonzero(a[:, unit] > 0.5 * top):
            rows.append({"accession": f"A{i}", "kind": "active_site", "start": p + 1, "end": p + 1})
    sites = pd.DataFrame(rows)
    examples = pd.DataFrame({"accession": [f"A{i}" for i in range(12)], "sequence": sequences})
    matching = match_concepts(tiny_model, alphabet(), examples, examples, sites,
                              [("ffn_in", 1), ("key", 0)], [0.0, 0.3, 0.5, 0.8])  # fmt: skip
    units = matching.units
    row = units[(units["layer_type"] == "ffn_in") & (units["unit"] == unit)].iloc[0]
    assert row["threshold"] == 0.5 and row["val_f1"] == 1.0 and row["test_f1"] == 1.0
    assert len(units) == 128 + 32  # every unit of both modules, one concept
    assert matching.concepts["n_val_residues"].iloc[0] == len(rows)
    best = best_units(units, matching.concepts, matching.n_test_residues, min_residues=1)
    assert list(best.columns) == list(BEST_COLUMNS)
    assert best.iloc[0]["layer_type"] == "ffn_in" and best.iloc[0]["unit"] == unit
    assert best.iloc[0]["n_pass"] >= 1 and best.iloc[0]["n_units"] == 160
    kept = kept_units(units, 3)
    assert len(kept) == 6 and kept["val_f1"].gt(0).all()


def test_a_concept_without_residues_is_flagged_and_latents_face_neurons():
    concepts = pd.DataFrame({"concept": ["motif:AAA", "decoy:KKK"], "site_kind": ["motif", "decoy"],
                             "motif": ["AAA", "KKK"], "label": ["1", ""],
                             "n_val_residues": [40, 0], "n_test_residues": [50, 0]})  # fmt: skip
    units = pd.DataFrame(
        {
            "concept": ["motif:AAA"] * 3 + ["decoy:KKK"] * 3,
            "kind": ["neuron", "neuron", "latent"] * 2,
            "layer_type": ["key", "key", "sae_resid"] * 2,
            "layer": [0, 1, 2] * 2,
            "unit": [3, 4, 7] * 2,
            "threshold": [0.3, 0.5, 0.15] * 2,
            "val_f1": [0.4, 0.6, 0.9, 0.0, 0.0, 0.0],
            "test_precision": [0.5, 0.55, 0.8, 0, 0, 0],
            "test_recall": [0.3, 0.6, 0.9, 0, 0, 0],
            "test_f1": [0.45, 0.52, 0.85, 0, 0, 0],
        }
    )
    best = best_units(units, concepts, n_test_residues=1000)
    motif = best[best["concept"] == "motif:AAA"].set_index("kind")
    assert motif.loc["neuron", "unit"] == 4 and motif.loc["latent", "unit"] == 7
    assert motif.loc["neuron", "n_pass"] == 1 and motif.loc["latent", "n_pass"] == 1
    assert motif.loc["neuron", "all_on_f1"] == pytest.approx(2 * 0.05 / 1.05)
    assert not motif["flagged"].any()
    assert best[best["concept"] == "decoy:KKK"]["flagged"].all()
    meta = {"n_val_sequences": 5, "n_test_sequences": 6, "n_val_residues": 800,
            "n_test_residues": 1000, "thresholds": [0, 0.5]}  # fmt: skip
    text = concepts_markdown(best, "m", meta)
    assert "`motif:AAA`: the best latent scores a higher test F1 than the best neuron" in text
    assert "(0.850 and" in text
    assert "not a tested difference" in text
    assert "`decoy:KKK`: too few residues to judge (0 validation, 0 test); not a finding." in text
    assert "sae_resid 2:7 (> 0.15 max)" in text and "1 of 2" in text
    assert "optimistic" in text


SYNTHETIC_CONFIG = {
    "device": "cpu",
    "data": {
        "name": "tiny",
        "input": None,
        "synthetic": {"n_per_class": 10, "min_length": 30, "max_length": 40,
                      "decoys": ["KRKRK"], "seed": 0},
        "min_per_class": 5,
        "split": {"method": "random", "train": 0.6, "val": 0.2, "test": 0.2},
    },
    "models": {"tiny": {"source": "random",
                        "architecture": {"num_layers": 2, "embed_dim": 32, "attention_heads": 4}}},
    "finetune": {"epochs": 1, "lr": 1.0e-3, "max_tokens": 2048},
    "scoring": {"layer_types": ["key", "ffn_in"], "methods": ["activation"], "n_examples": 4},
    "evaluation": {"retention": [50]},
    "concepts": {"enabled": True, "n_units": 5, "min_residues": 5},
}  # fmt: skip


@pytest.mark.integration
def test_match_concepts_rule_on_the_planted_motifs(tmp_path):
    run = run_snakemake(tmp_path, write_config(tmp_path, SYNTHETIC_CONFIG),
                        "results/tiny/summary/tiny/concepts.md",
                        "results/tiny/concepts/tiny/provenance.json")  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    run_dir = tmp_path / "results/tiny"
    best = pd.read_parquet(run_dir / "concepts/tiny/best.parquet")
    # 4 class motifs and the decoy, neurons only (no SAE files)
    assert len(best) == 5 and set(best["kind"]) == {"neuron"}
    assert best["n_units"].eq(2 * (32 + 128)).all()
    assert best["test_f1"].between(0, 1).all()
    units = pd.read_parquet(run_dir / "concepts/tiny/units.parquet")
    assert units.groupby(["concept", "layer_type"]).size().le(5).all()
    text = (run_dir / "summary/tiny/concepts.md").read_text()
    assert "`decoy:KRKRK`" in text and "## Best unit per concept" in text
    record = yaml.safe_load((run_dir / "concepts/tiny/provenance.json").read_text())
    assert set(record["config"]) >= {"concepts", "scoring"} and len(record["outputs"]) == 2
