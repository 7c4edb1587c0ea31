"""Every rule declares, as inputs, the library modules its job's code imports (rules/common.smk,
`library`), so that editing a module reruns exactly the jobs that use it; and the Snakemake
process itself imports no torch."""

from __future__ import annotations

import ast
import functools
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from workflow_helpers import REPO, run_snakemake, snakemake_command, write_config

from kneurons.deps import imported_modules, library_files, library_modules

SRC = REPO / "src"
LIBRARY = SRC / "kneurons"


def rule_code() -> dict[str, tuple[str, str]]:
    """Rule -> ("script", path) or ("run", module) for every rule with Python job code."""
    code = {}
    for smk in sorted((REPO / "rules").glob("*.smk")):
        for block in re.split(r"^\s*rule ", smk.read_text(), flags=re.M)[1:]:
            name = block.split(":", 1)[0].strip()
            script = re.search(r'script:\s*\n\s*"\.\./(workflow/scripts/\w+\.py)"', block)
            run = re.search(r"run:\s*\n\s*from (kneurons\.[\w.]+) import", block)
            if script:
                code[name] = ("script", script.group(1))
            elif run:
                code[name] = ("run", run.group(1))
    # `use rule A as B with:` runs A's code
    for smk in sorted((REPO / "rules").glob("*.smk")):
        for parent, child in re.findall(r"^use rule (\w+) as (\w+) with:", smk.read_text(), re.M):
            code[child] = code[parent]
    return code


@functools.cache
def imported_at_runtime(kind: str, ref: str) -> frozenset[str]:
    """Library files in sys.modules after really running the code's imports (a fresh process):
    the ground truth, independent of kneurons.deps."""
    if kind == "script":
        tree = ast.parse((REPO / ref).read_text())
        imports = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
        program = "\n".join(ast.unparse(n) for n in imports)
    else:
        program = f"import {ref}"
    program += (
        "\nimport json, sys"
        "\nprint(json.dumps(sorted(getattr(m, '__file__', '') or '' for n, m in"
        " list(sys.modules.items()) if n == 'kneurons' or n.startswith('kneurons.'))))"
    )
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    out = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, env=env, check=True
    )
    files = json.loads(out.stdout.strip().splitlines()[-1])
    return frozenset(str(Path(f).resolve()) for f in files if f)


def dry_run_jobs(output: str) -> list[dict]:
    """Jobs of a dry run's printout: rule, inputs and the files named as updated inputs."""
    jobs = []
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", output)[1:]:
        job = {"rule": re.match(r"(?:local)?rule (\w+):", block).group(1)}
        inputs = re.search(r"^\s+input: (.*)$", block, flags=re.M)
        job["inputs"] = set(inputs.group(1).split(", ")) if inputs else set()
        outputs = re.search(r"^\s+output: (.*)$", block, flags=re.M)
        job["outputs"] = frozenset(outputs.group(1).split(", ")) if outputs else frozenset()
        updated = re.search(r"Updated input files: ([^;\n]*)", block)
        job["updated"] = set(updated.group(1).split(", ")) if updated else set()
        jobs.append(job)
    return jobs


def lazily_imported(files) -> set[str]:
    """Library modules imported inside a function of one of `files` (run only when called)."""
    found = set()
    for file in files:
        for node in ast.walk(ast.parse(Path(file).read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                for inner in ast.walk(node):
                    if isinstance(inner, ast.ImportFrom) and inner.module:
                        found.add(inner.module)
                    elif isinstance(inner, ast.Import):
                        found.update(alias.name for alias in inner.names)
    return {m for m in found if m.startswith("kneurons")}


def library_inputs(paths: set[str]) -> set[str]:
    return {
        str(Path(p).resolve()) for p in paths if str(Path(p).resolve()).startswith(str(LIBRARY))
    }


def test_every_rule_with_code_is_found():
    code = rule_code()
    assert {"finetune", "score_neurons", "evaluate_masked", "summarize", "provenance"} <= set(code)
    assert code["score_random"] == ("run", "kneurons.scoring.files")
    assert code["select_units"] == ("run", "kneurons.selection.ranking")
    assert code["report_front"] == ("run", "kneurons.summary.report")


def test_declared_library_inputs_cover_what_each_job_imports(tmp_path):
    config = write_config(
        tmp_path, evaluation__modes=["zero", "mean"], evaluation__scopes=["layer_type", "all"]
    )
    run = run_snakemake(tmp_path, config, "--dry-run")
    assert run.returncode == 0, run.stderr[-3000:]
    jobs = dry_run_jobs(run.stdout)
    code = rule_code()
    checked = set()
    for job in jobs:
        if job["rule"] not in code:
            continue
        actual = imported_at_runtime(*code[job["rule"]])
        declared = library_inputs(job["inputs"])
        missing = sorted(Path(f).name for f in actual - declared)
        assert not missing, f"rule {job['rule']} does not declare {missing}"
        checked.add(job["rule"])
    assert {"finetune", "score_neurons", "score_random", "select_units", "evaluate_masked",
            "evaluate_masked_model", "evaluate_classes_model", "mean_activations", "summarize",
            "provenance"} <= checked  # fmt: skip


def test_snakemake_process_imports_no_torch(tmp_path):
    """Building the DAG (a dry run, homology split: every input function and param evaluated)
    and the jobs run in the Snakemake process (random scores, selections) import no torch."""
    split = {"method": "homology", "train": 0.6, "val": 0.2, "test": 0.2}
    config = write_config(tmp_path, data__split=split, evaluation__modes=["zero", "mean"])
    command = snakemake_command(tmp_path, config, "--dry-run")
    run = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "snakemake", *command[1:]],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in run.stderr.splitlines()}
    assert "kneurons.model.spec" in imported and "snakemake" in imported  # the check sees imports
    assert "torch" not in imported and "esm" not in imported
    program = (
        "import sys, kneurons.scoring.files, kneurons.selection.ranking; "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", program],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(SRC)},
    )
    assert out.stdout.strip() == "False"


def test_dependencies_follow_imports_transitively(tmp_path):
    src = tmp_path / "src"
    pkg = src / "kneurons"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from kneurons import b\n")
    (pkg / "b.py").write_text("def f():\n    from kneurons.sub.c import g\n")
    (pkg / "sub" / "__init__.py").write_text("from . import c\n")
    (pkg / "sub" / "c.py").write_text("import os\n")
    (pkg / "unused.py").write_text("")
    script = tmp_path / "job.py"
    script.write_text("import pandas\nfrom kneurons.a import x\n")
    names = library_modules(script, src)
    assert names == ["kneurons", "kneurons.a", "kneurons.b", "kneurons.sub", "kneurons.sub.c"]
    files = library_files(script, src)
    assert str(pkg / "sub" / "__init__.py") in files and str(pkg / "unused.py") not in files


def downstream(jobs: list[dict], start: set[frozenset]) -> set[frozenset]:
    """`start` (jobs named by their outputs) and every job that consumes what they make."""
    found, todo = set(start), list(start)
    while todo:
        made = todo.pop()
        for job in jobs:
            if job["outputs"] not in found and job["inputs"] & made:
                found.add(job["outputs"])
                todo.append(job["outputs"])
    return found


@pytest.mark.integration
def test_editing_a_module_reruns_exactly_the_jobs_that_use_it(tiny_run):
    """After a finished run, library files of the workflow's copy get a new line, one at a time
    (one file for each distinct set of rules using it): the jobs that rerun must be those whose
    code imports it and what lies downstream of them, nothing else. Restored, nothing reruns."""
    assert tiny_run.run.returncode == 0, tiny_run.run.stderr[-3000:]
    every = tiny_run.snakemake("--dry-run", "--forceall")
    jobs = [j for j in dry_run_jobs(every.stdout) if j["outputs"]]
    assert {"finetune", "score_neurons", "select_units", "summarize"} <= {j["rule"] for j in jobs}
    code = rule_code()
    src = (tiny_run.repo / "src").resolve()

    def users(module: Path, lazy_too: bool) -> set[str]:  # rules whose code imports `module`
        name = module.relative_to(SRC).with_suffix("").as_posix().replace("/", ".")
        found = set()
        for rule, (kind, ref) in code.items():
            imported = imported_at_runtime(kind, ref)
            sources = [REPO / ref] if kind == "script" else []
            lazy = lazily_imported([*sources, *imported]) if lazy_too else set()
            if str(module) in imported or name in lazy:
                found.add(rule)
        return found

    # one module per distinct set of rules using it (a dry run costs seconds)
    files = {}
    for file in sorted((src / "kneurons").rglob("*.py")):
        files.setdefault(frozenset(users(SRC / file.relative_to(src), True)), file)
    assert len(files) >= 8
    for file in files.values():
        module = SRC / file.relative_to(src)  # the same file in this repository
        text, st = file.read_bytes(), file.stat()
        try:
            file.write_bytes(text + b"\n# edited by test_rules\n")
            plan = tiny_run.snakemake("--dry-run")
        finally:
            file.write_bytes(text)
            os.utime(file, ns=(st.st_atime_ns, st.st_mtime_ns))
        assert plan.returncode == 0, plan.stderr[-3000:]
        rerun = {j["outputs"] for j in dry_run_jobs(plan.stdout) if j["outputs"]}
        must_rules, may_rules = users(module, False), users(module, True)
        must = {j["outputs"] for j in jobs if j["rule"] in must_rules}
        may = {j["outputs"] for j in jobs if j["rule"] in may_rules}
        assert downstream(jobs, must) <= rerun, (file.name, "not rerun")
        assert rerun <= downstream(jobs, may), (file.name, sorted(map(sorted, rerun - may)))
    again = tiny_run.snakemake("--dry-run")
    assert "Nothing to be done" in again.stdout + again.stderr


def test_library_has_no_import_cycle():
    """No module imports (at any depth, lazily included) a module that imports it back."""
    graph = {}
    for file in LIBRARY.rglob("*.py"):
        name = file.relative_to(SRC).with_suffix("").as_posix().replace("/", ".")
        name = name.removesuffix(".__init__")
        graph[name] = imported_modules(file, SRC) - {name}
    # a package's __init__ is run by its submodules, not a cycle of their own making
    graph = {m: {d for d in deps if not m.startswith(d + ".")} for m, deps in graph.items()}
    assert len(graph) > 20
    state: dict[str, int] = {}

    def visit(module, path):
        state[module] = 1
        for dep in sorted(graph.get(module, ())):
            assert state.get(dep) != 1, f"import cycle: {' -> '.join([*path, dep])}"
            if dep not in state:
                visit(dep, [*path, dep])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


def key_ordered(node, reverse: bool):
    """`node` with every mapping's keys in sorted (or reverse sorted) order, recursively."""
    if isinstance(node, dict):
        return {k: key_ordered(node[k], reverse) for k in sorted(node, reverse=reverse)}
    if isinstance(node, list):
        return [key_ordered(v, reverse) for v in node]
    return node


def test_config_key_order_reruns_nothing(tmp_path):
    """Snakemake compares params by their repr, where a dict's key order shows. The tiny config
    with its keys in reverse order, and then sorted (as yaml.safe_dump writes it), is one config:
    once the jobs of the first are recorded as done (`--touch` on empty outputs: params, inputs
    and mtimes as after a real run), the second plans nothing; a real change (finetune.epochs)
    still reruns fine-tuning and not the data stage."""
    base = yaml.safe_load(write_config(tmp_path).read_text())
    first = tmp_path / "reversed.yaml"
    first.write_text(yaml.safe_dump(key_ordered(base, True), sort_keys=False))
    second = write_config(tmp_path, key_ordered(base, False), name="sorted.yaml")
    assert first.read_text() != second.read_text()
    plan = run_snakemake(tmp_path, first, "--dry-run")
    assert plan.returncode == 0, plan.stderr[-3000:]
    for job in dry_run_jobs(plan.stdout):
        for output in job["outputs"]:
            (tmp_path / output).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / output).touch()
    touched = run_snakemake(tmp_path, first, "--touch", "--forceall", cores=1)
    assert touched.returncode == 0, touched.stderr[-3000:]
    for config in (first, second):
        again = run_snakemake(tmp_path, config, "--dry-run")
        assert again.returncode == 0, again.stderr[-3000:]
        assert "Nothing to be done" in again.stdout + again.stderr, (
            config.name,
            sorted({j["rule"] for j in dry_run_jobs(again.stdout)}),
        )
    changed = write_config(tmp_path, key_ordered(base, True), "epochs.yaml", finetune__epochs=3)
    rerun = {j["rule"] for j in dry_run_jobs(run_snakemake(tmp_path, changed, "--dry-run").stdout)}
    assert "finetune" in rerun and "clean_dataset" not in rerun


def test_retention_levels_that_print_alike_are_refused(tmp_path):
    """12.5 and 12.500001 would both be the target keep12.5 (evaluated at 12.5): the DAG build
    stops with one line naming the key; levels that differ in their names are fine."""
    config = write_config(tmp_path, evaluation__retention=[12.5, 12.500001])
    run = run_snakemake(tmp_path, config, "--dry-run")
    assert run.returncode != 0
    message = "evaluation.retention: 12.5 and 12.500001 both name the retention level '12.5'"
    assert message in run.stdout + run.stderr
    config = write_config(tmp_path, evaluation__retention=[12.5, 12.25])
    run = run_snakemake(tmp_path, config, "--dry-run")
    assert run.returncode == 0, run.stderr[-3000:]
    assert "keep12.25.parquet" in run.stdout and "keep12.5.parquet" in run.stdout


def test_no_job_code_reads_the_config():
    """Scripts get only what their rule declares (params, input, wildcards): a setting read from
    `snakemake.config` would not rerun the job when it changes."""
    files = [*(REPO / "workflow/scripts").glob("*.py"), *LIBRARY.rglob("*.py")]
    readers = [f.name for f in files if "snakemake.config" in f.read_text()]
    assert len(files) > 20 and readers == []


@pytest.mark.integration
def test_a_summary_setting_reruns_the_summary(tiny_run):
    """evaluation.bootstrap.n is a param of summarize (and of the class-specific summary):
    changing it reruns the summaries (and their provenance record), not the evaluations."""
    assert tiny_run.run.returncode == 0, tiny_run.run.stderr[-3000:]
    changed = write_config(
        tiny_run.workdir, name="bootstrap.yaml", evaluation__bootstrap={"n": 100, "seed": 0}
    )
    plan = tiny_run.snakemake("--dry-run", config=changed)
    assert plan.returncode == 0, plan.stderr[-3000:]
    rules = {job["rule"] for job in dry_run_jobs(plan.stdout)}
    assert rules == {"summarize", "class_specificity", "report_front", "provenance", "all"}, rules


@pytest.mark.integration
def test_a_moved_input_with_the_same_bytes_reruns_nothing(tiny_run):
    """Content, not location, decides: the input TSV copied elsewhere (new path, new mtime)
    reruns no computation."""
    assert tiny_run.run.returncode == 0, tiny_run.run.stderr[-3000:]
    original = yaml.safe_load(tiny_run.config.read_text())
    moved = tiny_run.workdir / "elsewhere" / "enzymes.tsv"
    moved.parent.mkdir(exist_ok=True)
    moved.write_bytes(Path(original["data"]["input"]).read_bytes())
    config = tiny_run.workdir / "moved.yaml"
    config.write_text(
        yaml.safe_dump({**original, "data": {**original["data"], "input": str(moved)}})
    )
    plan = tiny_run.snakemake("--dry-run", config=config)
    assert plan.returncode == 0, plan.stderr[-3000:]
    # only the provenance records, which copy the config (and so the new path), are redone
    rules = {job["rule"] for job in dry_run_jobs(plan.stdout)}
    assert rules <= {"provenance", "all"}, plan.stdout[-3000:]


def test_replicate_models_are_compared_across_finetune_seeds(tmp_path):
    """Two models that differ only in finetune_seed: each is fine-tuned with its own seed, and
    rule stability_across_models compares their selections; one model alone adds no such rule."""
    base = yaml.safe_load(write_config(tmp_path).read_text())
    (entry,) = base["models"].values()
    base["models"] = {"s0": {**entry, "finetune_seed": 0}, "s1": {**entry, "finetune_seed": 1}}
    config = write_config(tmp_path, base, name="replicates.yaml")
    run = run_snakemake(tmp_path, config, "--dry-run", "--printshellcmds")
    assert run.returncode == 0, run.stderr[-3000:]
    jobs = dry_run_jobs(run.stdout)
    (compare,) = [j for j in jobs if j["rule"] == "stability_across_models"]
    assert any("/s0/" in f for f in compare["inputs"]) and any(
        "/s1/" in f for f in compare["inputs"]
    )
    assert sum(j["rule"] == "finetune" for j in jobs) == 2
    single = run_snakemake(tmp_path, write_config(tmp_path), "--dry-run")
    assert "stability_across_models" not in single.stdout


def test_job_outputs_are_read_back_from_their_paths():
    """Multi-output jobs learn their targets from their output paths (vocab.parse_path)."""
    from kneurons.vocab import EVAL_FILE, RESIDUE_FILE, RESIDUE_PLOT, SCORE_FILE, parse_path

    names = dict(model="m", mode="zero", scope="layer_type", method="random-3", target="key")
    for direction in ("keep", "remove"):
        for retention in ("1", "12.5", "100"):
            path = EVAL_FILE.format(**names, direction=direction, retention=retention)
            assert parse_path(EVAL_FILE, path) == {
                **names,
                "direction": direction,
                "retention": retention,
            }
    for pattern in (RESIDUE_FILE, RESIDUE_PLOT):
        path = pattern.format(model="m", method="random-2", layer_type="sae_ffn", retention="12.5")
        assert parse_path(pattern, f"results/d/{path}") == {
            "model": "m", "method": "random-2", "layer_type": "sae_ffn", "retention": "12.5"
        }  # fmt: skip
    path = SCORE_FILE.format(model="esm2_8M", method="activation", layer_type="ffn_in", layer=11)
    assert parse_path(SCORE_FILE, path)["layer"] == "11"
    with pytest.raises(ValueError, match="does not match"):
        parse_path(SCORE_FILE, "results/scores/m/activation/ffn_in/layerX.parquet")


def job_resources(output: str) -> list[tuple[str, dict]]:
    """(rule, resources) of every job of a dry run's printout."""
    found = []
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", output)[1:]:
        rule = re.match(r"(?:local)?rule (\w+):", block).group(1)
        line = re.search(r"^\s+resources: (.*)$", block, flags=re.M)
        pairs = (item.split("=", 1) for item in line.group(1).split(", ")) if line else []
        found.append((rule, dict(pairs)))
    return found


GPU_RULES = {"finetune", "score_neurons", "mean_activations", "evaluate_unmasked",
             "evaluate_masked", "evaluate_masked_model", "evaluate_classes",
             "evaluate_classes_model", "profile_neurons"}  # fmt: skip


def test_gpu_jobs_claim_a_share_of_the_one_gpu(tmp_path):
    """`device: cuda`: every GPU rule requests a GPU (gpu=1, for clusters) and claims its share
    of the local GPU in gpu_percent, whose sum the local profile caps at 100: 100 each without
    `gpu_memory_gb` (one at a time), a few percent each for the tiny model with 80 GB, so that
    dozens fit side by side. CPU rules claim nothing; `device: cpu` claims nothing anywhere."""
    profile = yaml.safe_load((REPO / "profiles/default/config.yaml").read_text())
    assert profile["resources"] == {"gpu_percent": 100}
    base = yaml.safe_load(write_config(tmp_path).read_text())
    claims = {}
    for name, changes in {
        "cpu": {"device": "cpu"},
        "whole": {"device": "cuda"},
        "shared": {"device": "cuda", "gpu_memory_gb": 80},
    }.items():
        config = write_config(tmp_path, {**base, **changes}, name=f"{name}.yaml")
        plan = run_snakemake(tmp_path, config, "--dry-run")
        assert plan.returncode == 0, plan.stderr[-3000:]
        jobs = job_resources(plan.stdout)
        assert {"finetune", "score_neurons", "evaluate_masked_model"} <= {r for r, _ in jobs}
        claims[name] = {
            (rule, int(res.get("gpu", 0)), int(res.get("gpu_percent", 0))) for rule, res in jobs
        }
    assert all(gpu == 0 and share == 0 for _, gpu, share in claims["cpu"])
    for name in ("whole", "shared"):
        gpu_jobs = {(gpu, share) for rule, gpu, share in claims[name] if rule in GPU_RULES}
        others = {(gpu, share) for rule, gpu, share in claims[name] if rule not in GPU_RULES}
        assert others == {(0, 0)}
        assert {gpu for gpu, _ in gpu_jobs} == {1}
        shares = {share for _, share in gpu_jobs}
        assert shares == {100} if name == "whole" else 1 <= min(shares) <= max(shares) <= 5
    bad = write_config(tmp_path, {**base, "gpu_memory_gb": 0}, name="bad.yaml")
    refused = run_snakemake(tmp_path, bad, "--dry-run")
    assert refused.returncode != 0 and "gpu_memory_gb" in refused.stdout + refused.stderr


def test_evaluation_jobs_per_target_or_per_model(tmp_path):
    """`evaluation.jobs`: per_target runs one masked and one class-specific evaluation job per
    layer type; per_model one for both layer types (auto: per_model for a model under a million
    encoder weights, per_target for the 8M shape); a group scope's target is its own job either
    way. The outputs are the same files."""
    base = yaml.safe_load(write_config(tmp_path).read_text())
    base["evaluation"]["scopes"] = ["layer_type", "all"]
    eight_m = {"source": "random", "name": "esm2_t6_8M_UR50D"}
    counts, outputs = {}, {}
    for name, jobs, model in [
        ("auto", "auto", None),
        ("per_target", "per_target", None),
        ("per_model", "per_model", None),
        ("auto_8M", "auto", eight_m),
        ("per_model_8M", "per_model", eight_m),
    ]:
        config = {**base, "evaluation": {**base["evaluation"], "jobs": jobs}}
        if model:
            config["models"] = {"tiny": model}
        plan = run_snakemake(tmp_path, write_config(tmp_path, config, name=f"{name}.yaml"), "-n")
        assert plan.returncode == 0, (name, plan.stderr[-3000:])
        jobs_of = dry_run_jobs(plan.stdout)
        counts[name] = {
            rule: sum(j["rule"] == rule for j in jobs_of)
            for rule in ("evaluate_masked", "evaluate_masked_model", "evaluate_classes",
                         "evaluate_classes_model")
        }  # fmt: skip
        outputs[name] = {
            out for j in jobs_of if j["rule"].startswith("evaluate_") for out in j["outputs"]
        }
    packed = {"evaluate_masked": 1, "evaluate_masked_model": 1, "evaluate_classes": 0,
              "evaluate_classes_model": 1}  # fmt: skip
    per_target = {"evaluate_masked": 3, "evaluate_masked_model": 0, "evaluate_classes": 2,
                  "evaluate_classes_model": 0}  # fmt: skip
    assert counts == {"auto": packed, "per_target": per_target, "per_model": packed,
                      "auto_8M": per_target, "per_model_8M": packed}  # fmt: skip
    assert outputs["auto"] == outputs["per_target"] == outputs["per_model"]
    # eval: methods x targets x levels; classes: methods x layer types x factors; unmasked
    assert len(outputs["auto"]) == 4 * 3 * 2 + 4 * 2 * 2 + 1
    bad = {**base, "evaluation": {**base["evaluation"], "jobs": "per_layer"}}
    refused = run_snakemake(tmp_path, write_config(tmp_path, bad, name="bad.yaml"), "-n")
    assert refused.returncode != 0 and "per_layer" in refused.stdout + refused.stderr
