"""Replicate fine-tuning (`models.<id>.replicates`): the cross-replicate findings table and its
markdown (kneurons.summary.replicates), and the jobs a replicate config plans."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml
from test_rules import dry_run_jobs, imported_at_runtime, library_inputs, rule_code
from workflow_helpers import REPO, run_snakemake, write_config

from kneurons.summary.replicates import (
    replicate_column,
    replicate_findings,
    replicate_markdown,
)
from kneurons.vocab import RANDOM, UNMASKED

VARIANT = {"mode": "zero", "scope": "layer_type", "direction": "keep"}


def masked_row(method, target, retention, delta, q, low=None, high=None, **variant):
    return {
        "method": method,
        "method_family": method,
        "target": target,
        **{**VARIANT, **variant},
        "retention": float(retention),
        "delta": delta,
        "delta_ci_low": delta - 0.05 if low is None else low,
        "delta_ci_high": delta + 0.05 if high is None else high,
        "q_value": q,
    }


def summary(cells, auc_cells=()):
    """A masked_eval table with the unmasked row and a random seed (never cells), and an AUC
    table with its `random` row (never a cell)."""
    unmasked = {
        **masked_row(UNMASKED, "none", 100, np.nan, np.nan),
        "mode": "none",
        "scope": "none",
        "direction": "none",
    }
    seed = {**masked_row("random-0", "key", 10, np.nan, np.nan), "method_family": RANDOM}
    masked = pd.DataFrame([unmasked, seed, *cells])
    auc_rows = [{k: v for k, v in r.items() if k not in ("method_family", "retention")}
                for r in [*auc_cells, masked_row(RANDOM, "key", 0, np.nan, np.nan)]]  # fmt: skip
    return masked, pd.DataFrame(auc_rows)


def three_replicates():
    """`ig` key at 10% is a finding in all three replicates, at 50% in one (q too large in the
    second, Δ interval reaching 0 in the third), `act` key at 10% in none; AUC of `ig` in two."""
    reps = {}
    for i, (q50, low50) in enumerate([(0.01, None), (0.2, None), (0.01, -0.01)], start=1):
        cells = [
            masked_row("ig", "key", 10, 0.1 * i, 0.001),
            masked_row("ig", "key", 50, 0.08, q50, low=low50),
            masked_row("act", "key", 10, -0.1, 0.01),  # keep: Δ < 0 is no finding
        ]
        auc = [masked_row("ig", "key", 0, 0.2, 0.01 if i < 3 else 0.5)]
        reps["m" if i == 1 else f"m_rep{i}"] = summary(cells, auc)
    return reps


def test_replicate_findings_counts_k_of_n():
    table = replicate_findings(three_replicates(), alpha=0.05)
    cells = {
        (r.measure, r.method, r.retention if r.measure == "accuracy" else None): r
        for r in table.itertuples(index=False)
    }
    assert len(table) == 4  # no unmasked row, random seed or AUC `random` row
    assert (table["n_replicates"] == 3).all() and (table["n_tested"] == 3).all()
    assert cells[("accuracy", "ig", 10.0)].n_findings == 3
    assert cells[("accuracy", "ig", 50.0)].n_findings == 1
    assert cells[("accuracy", "act", 10.0)].n_findings == 0
    assert cells[("auc", "ig", None)].n_findings == 2
    assert np.isnan(cells[("auc", "ig", None)].retention)
    # every replicate's Δ and verdict, in replicate order
    row = table[(table["method"] == "ig") & (table["retention"] == 10)].iloc[0]
    deltas = [row[replicate_column("delta", m)] for m in ("m", "m_rep2", "m_rep3")]
    assert deltas == pytest.approx([0.1, 0.2, 0.3])
    row50 = table[(table["method"] == "ig") & (table["retention"] == 50)].iloc[0]
    assert [bool(row50[replicate_column("finding", m)]) for m in ("m", "m_rep2", "m_rep3")] == [
        True,
        False,
        False,
    ]
    # order: accuracy cells (by method, retention descending), then AUC
    assert list(zip(table["measure"], table["method"], strict=True)) == [
        ("accuracy", "act"),
        ("accuracy", "ig"),
        ("accuracy", "ig"),
        ("auc", "ig"),
    ]
    assert list(table["retention"].iloc[1:3]) == [50.0, 10.0]


def test_alpha_is_honoured():
    reps = three_replicates()
    strict = replicate_findings(reps, alpha=0.005).set_index(["measure", "method", "retention"])
    assert strict.loc[("accuracy", "ig", 10.0), "n_findings"] == 3  # q 0.001
    assert strict.loc[("accuracy", "ig", 50.0), "n_findings"] == 0  # q 0.01 > 0.005
    loose = replicate_findings(reps, alpha=0.25).set_index(["measure", "method", "retention"])
    assert loose.loc[("accuracy", "ig", 50.0), "n_findings"] == 2  # q 0.2 now passes


def test_remove_direction_and_missing_cells():
    """remove: a finding needs Δ's interval below 0; a cell one replicate lacks is untested."""
    a = summary([masked_row("ig", "ffn_in", 10, -0.2, 0.01, direction="remove")])
    b = summary([masked_row("ig", "ffn_in", 10, 0.2, 0.01, direction="remove")])
    c = summary([])
    table = replicate_findings({"a": a, "b": b, "c": c}, alpha=0.05)
    (row,) = table.itertuples(index=False)
    assert (row.n_replicates, row.n_tested, row.n_findings) == (3, 2, 1)
    assert np.isnan(row.delta_c)
    text = replicate_markdown(table, "a", 0.05)
    assert "holds in 1 of 3 replicates, tested in 2" in text


def test_markdown_says_k_of_n_in_words():
    reps = three_replicates()
    table = replicate_findings(reps, alpha=0.05)
    pairs = [("m", "m_rep2", 0.5), ("m", "m_rep3", 0.3), ("m_rep2", "m_rep3", 0.4)]
    pairs.append(("x", "y", 0.9))  # another group's pair: left out
    stability = pd.DataFrame(
        {
            "model": a,
            "model_b": b,
            "comparison": "finetune_seed",
            "method": "ig",
            "layer_type": "key" if a != "x" else "query",
            "retention": 10.0,
            "jaccard": j,
            "jaccard_chance": 0.05,
            "p_overlap": 1e-4,
            "spearman": 0.8,
        }
        for a, b, j in pairs
    )
    text = replicate_markdown(table, "m", 0.05, stability)
    assert text.startswith("## Findings across replicates: m")
    assert "**ig**, key at 10%: holds in 3 of 3 replicates (Δ +0.100*, +0.200*, +0.300*)." in text
    assert "**ig**, key at 50%: holds in 1 of 3 replicates (Δ +0.080*, +0.080, +0.080)." in text
    assert "**ig**, key, area under accuracy vs retention: holds in 2 of 3 replicates" in text
    assert "**act**" not in text  # a finding in no replicate gets no line
    assert "Of the 3 cells that are a finding in at least one replicate, 1 holds in all 3" in text
    assert "### Selections across replicates" in text
    assert "| ig | key | 0.40 [0.30, 0.50] (0.050) | 0.80 |" in text
    assert "query" not in text
    none = replicate_findings(reps, alpha=1e-6)
    assert "No cell is a finding in any of the 3 replicates" in replicate_markdown(none, "m", 1e-6)


def test_replicate_config_plans_every_replicate_and_the_findings_job(tmp_path):
    """`replicates: 3` on the tiny model: three fine-tunings (ids tiny, tiny_rep2, tiny_rep3),
    three summaries, and one replicate_findings job reading all of them; without the key the
    plan is that of one model."""
    base = yaml.safe_load(write_config(tmp_path).read_text())
    base["models"]["tiny"]["replicates"] = 3
    config = write_config(tmp_path, base, name="replicates.yaml")
    run = run_snakemake(tmp_path, config, "--dry-run")
    assert run.returncode == 0, run.stderr[-3000:]
    jobs = dry_run_jobs(run.stdout)
    finetunes = [j for j in jobs if j["rule"] == "finetune"]
    assert sorted(next(iter(j["outputs"])).split("/")[3] for j in finetunes) == [
        "tiny",
        "tiny_rep2",
        "tiny_rep3",
    ]
    assert sum(j["rule"] == "summarize" for j in jobs) == 3
    (findings,) = [j for j in jobs if j["rule"] == "replicate_findings"]
    assert findings["outputs"] == {
        "results/tiny/summary/replicates/tiny/replicate_findings.parquet",
        "results/tiny/summary/replicates/tiny/replicate_findings.md",
    }
    for model in ("tiny", "tiny_rep2", "tiny_rep3"):
        assert f"results/tiny/summary/{model}/masked_eval.parquet" in findings["inputs"]
        assert f"results/tiny/summary/{model}/auc.parquet" in findings["inputs"]
    assert "results/tiny/summary/stability_across_models.parquet" in findings["inputs"]
    # the job declares every library module its script imports (rules/common.smk, `library`)
    assert imported_at_runtime(*rule_code()["replicate_findings"]) <= library_inputs(
        findings["inputs"]
    )
    single = run_snakemake(tmp_path, write_config(tmp_path), "--dry-run")
    assert single.returncode == 0, single.stderr[-3000:]
    assert "replicate_findings" not in single.stdout and "_rep2" not in single.stdout


def test_synthetic_replicates_config_plans_three_replicates(tmp_path):
    run = run_snakemake(tmp_path, REPO / "config/synthetic_replicates.yaml", "--dry-run")
    assert run.returncode == 0, run.stderr[-3000:]
    jobs = dry_run_jobs(run.stdout)
    counts = pd.Series([j["rule"] for j in jobs]).value_counts()
    assert counts["finetune"] == 3 and counts["summarize"] == 3
    assert counts["replicate_findings"] == 1 and counts["stability_across_models"] == 1
    assert not {"evaluate_classes", "map_residues", "profile_neurons"} & set(counts.index)
