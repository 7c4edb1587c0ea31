"""The real Snakemake DAG on the tiny config, in a temporary directory."""

from __future__ import annotations

import re

import pandas as pd
import pytest
import yaml
from make_tiny_tsv import TINY_TSV, write_uniprot_tsv
from workflow_helpers import run_snakemake, write_config


def job_counts(dry_run_output: str) -> dict[str, int]:
    """Rule -> number of jobs from the 'Job stats' table of a dry run."""
    table = dry_run_output.split("Job stats:")[1]
    counts = {}
    for line in table.splitlines()[3:]:
        match = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if match and match.group(1) != "total":
            counts[match.group(1)] = int(match.group(2))
        elif line.strip() == "":
            break
    return counts


def test_committed_tiny_tsv_matches_generator(tmp_path):
    assert TINY_TSV.read_text() == write_uniprot_tsv(tmp_path / "t.tsv").read_text()


@pytest.mark.integration
def test_tiny_pipeline_runs_caches_and_extends(tiny_run):
    run, tmp_path = tiny_run.run, tiny_run.workdir
    assert run.returncode == 0, run.stderr[-3000:]

    summary = tmp_path / "results/tiny/summary/tiny"
    table = pd.read_parquet(summary / "masked_eval.parquet")
    methods = ["activation", "integrated_gradients", "random-0", "random-1"]
    masked = table[table["method"] != "unmasked"]
    assert len(masked) == len(methods) * 2 * 2  # methods x layer types x retention levels
    assert set(zip(masked["method"], masked["target"], masked["retention"], strict=True)) == {
        (m, lt, r) for m in methods for lt in ("key", "ffn_in") for r in (50.0, 10.0)
    }
    # the default masking: zero ablation, top r% per layer type, knowledge neurons kept
    assert set(zip(masked["mode"], masked["scope"], masked["direction"], strict=True)) == {
        ("zero", "layer_type", "keep")
    }
    assert (table["method"] == "unmasked").sum() == 1
    assert table["accuracy"].between(0, 1).all()
    assert (table["correct"].map(len) == table["n"]).all()
    assert (table["accuracy_ci_low"] <= table["accuracy"]).all()
    assert (table["accuracy"] <= table["accuracy_ci_high"]).all()
    selection = masked[masked["method_family"] != "random"]
    # 2 random seeds: p is 1/3, 2/3 or 1
    assert selection["p_value"].isin([1 / 3, 2 / 3, 1.0]).all()
    kept = masked.set_index(["target", "retention"])["n_kept"].groupby(level=[0, 1]).first()
    # key: 2 layers x 32 units, ffn_in: 2 x 128; kept = ceil(r% of all units of the type)
    assert kept[("key", 50.0)] == 32 and kept[("ffn_in", 10.0)] == 26
    auc = pd.read_parquet(summary / "auc.parquet")
    assert set(auc["method"]) == {"activation", "integrated_gradients", "random"}
    enrichment = pd.read_parquet(summary / "type_enrichment.parquet")
    assert set(enrichment["target"]) == {"all"}  # key + ffn_in ranked together (no qkv here)
    for name in (
        "summary.md",
        "summary.html",
        "dataset.html",
        "finetuning.html",
        "ig_completeness.parquet",
        "random_baseline.parquet",
        "enrichment.parquet",
        "class_overlap.parquet",
        "figures/accuracy_zero_layer_type_keep.png",
        "figures/accuracy_zero_layer_type_keep.svg",
        "figures/per_class_zero_layer_type_keep.png",
        "figures/heatmap_layer_type_activation.png",
        "figures/heatmap_layer_type_integrated_gradients.png",
        "figures/enrichment.png",
    ):
        assert (summary / name).stat().st_size > 0, name
    gaps = pd.read_parquet(summary / "ig_completeness.parquet")
    assert len(gaps) == 2 * 2 and (gaps["gap_max_abs"] < 1e-3).all()

    report = tmp_path / "report.html"
    built = tiny_run.snakemake("--report", str(report))
    assert built.returncode == 0, built.stderr[-3000:]
    html = report.read_text(errors="replace")
    for name in ("accuracy_zero_layer_type_keep.png", "heatmap_layer_type_activation.png"):
        assert name in html
    assert "Knowledge neurons of ESM-2" in html  # report/workflow.rst
    # the front page: the workflow description, then the model's Findings
    front = (tiny_run.workdir / "results/tiny/summary/report_front.rst").read_text()
    assert front.index("Knowledge neurons of ESM-2") < front.index("Findings: tiny")
    assert "What this run cannot tell" in front
    assert "Findings: tiny" in html and "What this run cannot tell" in html
    text = (summary / "summary.md").read_text()
    assert text.index("## Findings") < text.index("## Unmasked model")
    stability = pd.read_parquet(summary / "stability.parquet")
    assert set(stability["method"]) == {"activation", "integrated_gradients"}
    assert (stability["comparison"] == "split_half").all() and len(stability) == 2 * 2 * 2
    assert stability["jaccard"].between(0, 1).all()
    assert (summary / "figures/stability.png").stat().st_size > 0

    rerun = tiny_run.snakemake("--dry-run")
    assert rerun.returncode == 0 and "Nothing to be done" in rerun.stdout + rerun.stderr

    # one more retention level: the evaluation job reruns (one for both layer types of the
    # tiny model, evaluation.jobs: auto; x masking variant, of which the config has one), then
    # the summary
    extended = write_config(tmp_path, name="extended.yaml", evaluation__retention=[50, 25, 10])
    plan = tiny_run.snakemake("--dry-run", config=extended)
    assert plan.returncode == 0, plan.stderr[-3000:]
    # (plus the provenance records of the directories whose config sections change: eval,
    # classes (it records the evaluation section too) and summary; the selections hold ranks,
    # not a cut, so they are reused)
    assert job_counts(plan.stdout) == {
        "evaluate_masked_model": 1,
        "summarize": 1,
        "report_front": 1,
        "provenance": 3,
        "all": 1,
    }
    # ... and computes only the new level's masks: the others come from the store, unchanged
    before = {
        path: [list(c) for c in pd.read_parquet(path)["correct"]]
        for path in (tmp_path / "results/tiny/eval/tiny/zero").rglob("*.parquet")
    }
    evals = tiny_run.snakemake("--until", "evaluate_masked_model", config=extended)
    assert evals.returncode == 0, evals.stderr[-3000:]
    n = len(methods)
    log = (tmp_path / "logs/tiny/evaluate_masked_model/tiny/zero/layer_type/keep.log").read_text()
    assert f"{6 * n} targets (2 layer types or groups x {n} methods x 3 retention levels)" in log
    assert f"{4 * n} from the store, {2 * n} computed" in log
    for path, correct in before.items():
        assert [list(c) for c in pd.read_parquet(path)["correct"]] == correct
    assert len(list((tmp_path / "results/tiny/eval/tiny/zero").rglob("*25.parquet"))) == 2 * n

    # every masking option is its own set of targets: modes x scopes x directions, where
    # scope `all` adds one target (all layer types together) beside the 2 layer types
    variants = write_config(
        tmp_path,
        name="variants.yaml",
        evaluation__modes=["zero", "mean"],
        evaluation__scopes=["layer_type", "all"],
        evaluation__directions=["keep", "remove"],
    )
    plan = tiny_run.snakemake("--dry-run", config=variants)
    assert plan.returncode == 0, plan.stderr[-3000:]
    assert job_counts(plan.stdout) == {
        # one job per (mode, direction) for both layer types, zero/layer_type/keep already run
        "evaluate_masked_model": 2 * 2 - 1,
        # and one per (mode, direction) for the group `all` (its own target)
        "evaluate_masked": 2 * 2,
        "mean_activations": 2,  # one per layer type, for mean ablation
        "summarize": 1,
        "report_front": 1,
        "provenance": 3,  # eval, classes and summary
        "all": 1,
    }
    target = "results/tiny/eval/tiny/mean/all/integrated_gradients/all/remove10.parquet"
    one = tiny_run.snakemake(target, config=variants)
    assert one.returncode == 0, one.stderr[-3000:]
    row = pd.read_parquet(tmp_path / target).iloc[0]
    assert (row["mode"], row["scope"], row["direction"]) == ("mean", "all", "remove")
    # top 10% of the 320 key + ffn_in units removed, the rest kept
    assert row["n_selected"] == 32 and row["n_kept"] == 320 - 32 and row["n_total"] == 320


def test_class_specific_targets_run_and_extend(tiny_run):
    """Each class's own units suppressed and amplified: the tables, the summary section and the
    figures; a new factor reruns only the class-specific jobs and the summaries, and computes
    only its own masks."""
    run, tmp_path = tiny_run.run, tiny_run.workdir
    assert run.returncode == 0, run.stderr[-3000:]
    summary = tmp_path / "results/tiny/summary/tiny"
    table = pd.read_parquet(summary / "class_specificity.parquet")
    scored = table[table["method_family"] != "random"]
    assert set(scored["method"]) == {"activation", "integrated_gradients"}
    assert set(table["factor"]) == {0.0, 2.0} and set(table["retention"]) == {10.0}
    assert set(table["layer_type"]) == {"key", "ffn_in"}
    # a random seed's units serve every class; scored methods get one row per scored class
    randoms = table[table["method_family"] == "random"]
    n_classes = randoms["label"].nunique()
    assert len(randoms) == 2 * 2 * 2 * n_classes  # seeds x layer types x factors x classes
    assert scored["own_p"].dropna().between(0, 1).all() and scored["own_q"].notna().any()
    # the tiny model is at chance: no set is called specific
    assert not table["specific"].any() and table["model_at_chance"].all()
    # 10% of the 2 x 128 ffn_in units of each class, some of them shared by most classes
    assert set(scored.loc[scored["layer_type"] == "ffn_in", "n_selected_units"]) == {26}
    assert (scored["n_shared"] + scored["n_specific"] == scored["n_selected_units"]).all()
    effects = pd.read_parquet(summary / "class_effects.parquet")
    assert effects["evaluated_label"].nunique() == n_classes
    assert effects["delta_prob"].between(-1, 1).all()
    text = (summary / "summary.md").read_text()
    assert "class-specific knowledge neurons" in text and "specificity" in text
    # the tiny model is at chance: the Findings make no claim, class-specific ones included
    assert "No knowledge-neuron claim" in text and "**Class-specific**" not in text
    for method in ("activation", "integrated_gradients"):
        for layer_type in ("key", "ffn_in"):
            png = summary / f"figures/class_specificity_{method}_{layer_type}.png"
            assert png.stat().st_size > 0

    wider = write_config(tmp_path, name="factors.yaml")
    config = yaml.safe_load(wider.read_text())
    config["class_specific"]["factors"] = [0, 2, 4]
    wider.write_text(yaml.safe_dump(config))
    plan = tiny_run.snakemake("--dry-run", config=wider)
    assert plan.returncode == 0, plan.stderr[-3000:]
    assert job_counts(plan.stdout) == {
        "evaluate_classes_model": 1,  # both layer types of the tiny model (evaluation.jobs)
        "class_specificity": 1,
        "summarize": 1,
        "report_front": 1,
        "provenance": 2,  # classes and summary
        "all": 1,
    }
    # a new class-specific level: the same jobs (scores and selections are reused)
    deeper = write_config(tmp_path, name="levels.yaml")
    config = yaml.safe_load(deeper.read_text())
    config["class_specific"]["retention"] = [10, 5]
    deeper.write_text(yaml.safe_dump(config))
    plan = tiny_run.snakemake("--dry-run", config=deeper)
    assert plan.returncode == 0, plan.stderr[-3000:]
    assert job_counts(plan.stdout)["evaluate_classes_model"] == 1
    assert set(job_counts(plan.stdout)) == {
        "evaluate_classes_model", "class_specificity", "summarize", "report_front", "provenance",
        "all",
    }  # fmt: skip

    before = {
        path: [list(p) for p in pd.read_parquet(path)["true_prob"]]
        for path in (tmp_path / "results/tiny/classes/tiny").rglob("*.parquet")
    }
    done = tiny_run.snakemake("--until", "evaluate_classes_model", config=wider)
    assert done.returncode == 0, done.stderr[-3000:]
    log = (tmp_path / "logs/tiny/evaluate_classes_model/tiny.log").read_text()
    new = list((tmp_path / "results/tiny/classes/tiny").rglob("x4/*.parquet"))
    assert len(new) == 2 * 4  # layer types x (2 methods + 2 random seeds)
    assert {p.relative_to(tmp_path / "results/tiny/classes/tiny").parts[0] for p in new} == {
        "key",
        "ffn_in",
    }
    rows = sum(len(pd.read_parquet(p)) for p in new)
    # the unchanged model and the x0 and x2 masks come from the store; only x4's computed
    found = re.search(r"(\d+) distinct masks, (\d+) from the store, (\d+) computed", log)
    distinct, stored, computed = map(int, found.groups())
    assert 0 < computed <= rows and stored == distinct - computed and stored > rows
    for path, values in before.items():
        assert [list(p) for p in pd.read_parquet(path)["true_prob"]] == values


@pytest.mark.parametrize(
    "change,message",
    [
        ({"evaluation__retention": [0, 10]}, "retention"),
        ({"evaluation__retention": [150]}, "retention"),
        ({"scoring__layer_types": ["key", "mlp"]}, "layer_types"),
        ({"scoring__methods": ["saliency"]}, "methods"),
        ({"evaluation__modes": ["median"]}, "modes"),
        ({"evaluation__scopes": ["qkv"]}, "qkv needs query, key and value"),
    ],
)
def test_invalid_config_fails_before_any_job(tmp_path, change, message):
    config = write_config(tmp_path, **change)
    run = run_snakemake(tmp_path, config, "--dry-run")
    assert run.returncode != 0
    assert message in run.stdout + run.stderr
    assert not (tmp_path / "results").exists()
