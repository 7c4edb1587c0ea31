"""The planted-motif data source and the residue-map rules, through the real Snakemake DAG."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml
from test_rules import dry_run_jobs
from workflow_helpers import run_snakemake, write_config

from kneurons.io import read_parquet_metadata

CONFIG = {
    "device": "cpu",
    "data": {
        "name": "tiny",
        "input": None,
        "synthetic": {"n_per_class": 15, "min_length": 40, "max_length": 60,
                      "decoys": ["KRKRK"], "seed": 0},
        "min_per_class": 5,
        "split": {"method": "random", "train": 0.6, "val": 0.2, "test": 0.2},
    },
    "models": {"tiny": {"source": "random",
                        "architecture": {"num_layers": 2, "embed_dim": 32, "attention_heads": 4}}},
    "finetune": {"epochs": 2, "lr": 1.0e-3, "max_tokens": 2048},
    "scoring": {"layer_types": ["key"], "methods": ["activation", "random"], "random_seeds": 2,
                "n_examples": 6},
    # one evaluation job per layer type (not the tiny model's default of one for all): the
    # per-target rules run end to end here
    "evaluation": {"retention": [50], "jobs": "per_target"},
    "class_specific": {"enabled": True, "retention": [10], "factors": [0], "random_seeds": 2},
    "residues": {"enabled": True, "retention": [10], "n_sequences": 4, "n_plotted": 2,
                 "steps": 4, "random_seeds": 2},
    "profiles": {"enabled": True, "n_units": 3, "top_k": 4, "half_width": 2, "n_plotted": 2},
}  # fmt: skip


@pytest.mark.integration
def test_synthetic_run_maps_residues_and_scores_recovery(tmp_path):
    run = run_snakemake(tmp_path, write_config(tmp_path, CONFIG))
    assert run.returncode == 0, run.stderr[-3000:]

    run_dir = tmp_path / "results/tiny"  # data.name: tiny
    sites = pd.read_csv(run_dir / "data/synthetic/sites.tsv", sep="\t")
    assert set(sites["kind"]) == {"motif", "decoy"}
    maps = pd.read_parquet(run_dir / "residues/tiny/activation/key/keep10.parquet")
    assert maps["accession"].nunique() == 4
    assert (maps["activation"] >= 0).all() and maps["ig"].notna().all()
    assert (run_dir / "residues/tiny/activation/key/keep10.png").stat().st_size > 0
    # the map's IG integrals (4 sequences x 2 layers) are judged by the scores' policy
    meta = read_parquet_metadata(run_dir / "residues/tiny/activation/key/keep10.parquet")
    assert meta["completeness"]["n_integrals"] == 8 and meta["rtol"] == 0.01
    assert meta["completeness"]["n_above_tolerance"] == 0

    recovery = pd.read_parquet(run_dir / "summary/tiny/site_recovery.parquet")
    # 3 selections (activation, random-0, random-1) x 2 site kinds x 2 maps, plain and
    # contrast (each selection's map minus the other random selections' mean map)
    assert len(recovery) == 24
    assert recovery["map_kind"].value_counts().to_dict() == {"plain": 12, "contrast": 12}
    assert recovery["auroc_mean"].between(0, 1).all()
    text = (run_dir / "summary/tiny/site_recovery.md").read_text()
    assert "## motif: activation map" in text and "## decoy: ig map" in text
    assert "every (sequence, module) integral of the 3 maps meets" in text
    assert (run_dir / "summary/tiny/figures/site_recovery.svg").stat().st_size > 0
    summary = (run_dir / "summary/tiny/summary.md").read_text()
    assert "## Ground truth: do the kept neurons act on the known sites?" in summary
    assert "| key | 10% | activation |" in summary
    # the maps' 2 random seeds; no accuracy at 10% (evaluation.retention has no 10% here)
    assert "| key | 10% | random (maps: 2 seeds) | — |" in summary

    # neuron profiles: 3 units x 4 windows for activation and random-0, sites marked
    windows = pd.read_parquet(run_dir / "profiles/tiny/windows.parquet")
    assert windows.groupby("method").size().to_dict() == {"activation": 12, "random-0": 12}
    assert (windows["window"].str.len() <= 5).all()
    assert (windows.groupby(["method", "neuron"])["accession"].nunique() == 4).all()
    units = pd.read_parquet(run_dir / "summary/tiny/neuron_profiles.parquet")
    assert len(units) == 6 and units["overlap_motif"].between(0, 1).all()
    assert (run_dir / "summary/tiny/figures/logo_activation_key.png").stat().st_size
    assert "respond to" in summary

    # one map_residues job per layer type wrote every selection's map (3 methods here)
    assert (tmp_path / "logs/tiny/map_residues/tiny/key.log").is_file()
    assert (
        "3 selections mapped (0 from the store)"
        in (tmp_path / "logs/tiny/map_residues/tiny/key.log").read_text()
    )

    # the per-target jobs (evaluation.jobs) wrote the masked and class-specific evaluations
    assert (tmp_path / "logs/tiny/evaluate_masked/tiny/zero/layer_type/key/keep.log").is_file()
    assert (tmp_path / "logs/tiny/evaluate_classes/tiny/key.log").is_file()
    assert not (tmp_path / "logs/tiny/evaluate_masked_model").exists()
    classes = pd.read_parquet(run_dir / "summary/tiny/class_specificity.parquet")
    assert set(classes["layer_type"]) == {"key"} and set(classes["factor"]) == {0.0}

    stages = ("data", "models/tiny", "scores/tiny", "eval/tiny", "summary/tiny", "profiles/tiny")
    for stage in stages:
        record = yaml.safe_load((run_dir / stage / "provenance.json").read_text())
        assert record["outputs"] and all(len(h) == 64 for h in record["outputs"].values())
        assert "torch" in record["packages"]


def test_one_map_residues_job_per_layer_type(tmp_path):
    """A dry run: one map_residues job per (model, layer type) writes the map and plot of every
    mapped method x retention level of that type, from the selections of every method."""
    config = {**CONFIG, "scoring": {**CONFIG["scoring"], "layer_types": ["key", "ffn_in"]},
              "residues": {**CONFIG["residues"], "retention": [10, 50]}}  # fmt: skip
    plan = run_snakemake(tmp_path, write_config(tmp_path, config), "--dry-run")
    assert plan.returncode == 0, plan.stderr[-3000:]
    jobs = [j for j in dry_run_jobs(plan.stdout) if j["rule"] == "map_residues"]
    assert len(jobs) == 2
    for job in jobs:
        layer_type = "key" if any("/key/" in out for out in job["outputs"]) else "ffn_in"
        expected = {
            f"results/tiny/residues/tiny/{method}/{layer_type}/keep{r}.{ext}"
            for method in ("activation", "random-0", "random-1")
            for r in (10, 50)
            for ext in ("parquet", "png")
        }
        assert job["outputs"] == expected
        selections = {i for i in job["inputs"] if i.startswith("results/tiny/selection/")}
        assert selections == {
            f"results/tiny/selection/tiny/layer_type/{method}/{layer_type}.parquet"
            for method in ("activation", "random-0", "random-1")
        }
