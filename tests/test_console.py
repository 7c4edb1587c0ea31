"""The console of a run (src/snakemake_logger_plugin_kneurons, on in the default profile): one line
per job started and finished, compact reasons, the summary page at the end; the full detail in
Snakemake's own log file."""

from __future__ import annotations

import logging
import re

import pytest
from workflow_helpers import run_snakemake, write_config

from snakemake_logger_plugin_kneurons import (
    LogHandler,
    compact_reason,
    format_wildcards,
    last_result,
    name_files,
)

MODEL = "results/tiny/models/tiny/model.pt"
UNMASKED = "results/tiny/eval/tiny/unmasked.parquet"


@pytest.mark.integration
def test_a_tiny_run_prints_a_line_or_two_per_job(tiny_run):
    run = tiny_run.run
    assert run.returncode == 0, run.stderr[-3000:]
    lines = (run.stdout + run.stderr).splitlines()
    assert len(lines) < 150, "\n".join(lines)
    text = "\n".join(lines)
    assert "Shell command" not in text and "src/kneurons/" not in text
    assert "Select jobs to execute" not in text and "Job stats:" in text
    assert re.search(r"^\[\d\d:\d\d:\d\d\] finetune model=tiny \(missing output\)$", text, re.M)
    assert re.search(
        r"^\[\d\d:\d\d:\d\d\] \d+/\d+ done finetune model=tiny: test accuracy", text, re.M
    )
    assert lines[-1] == "Open results/tiny/summary/tiny/summary.html"
    # Snakemake's own log keeps its default format: every job's block with its inputs
    logs = sorted((tiny_run.workdir / ".snakemake/log").glob("*.snakemake.log"))
    full = logs[0].read_text()
    assert "rule finetune:" in full and "src/kneurons/jobs.py" in full


@pytest.fixture(scope="module")
def changed_setting(tmp_path_factory):
    """Fine-tuning and the unmasked evaluation built, then built again after a changed `lr`."""
    workdir = tmp_path_factory.mktemp("console")
    config = write_config(workdir)
    first = run_snakemake(workdir, config, UNMASKED)
    assert first.returncode == 0, first.stderr[-3000:]
    changed = write_config(workdir, name="changed.yaml", finetune__lr=2e-3)
    return run_snakemake(workdir, changed, UNMASKED)


@pytest.mark.integration
def test_a_rerun_says_why_in_a_short_line_per_job(changed_setting):
    run = changed_setting
    assert run.returncode == 0, run.stderr[-3000:]
    out = run.stdout + run.stderr
    started = [line for line in out.splitlines() if re.match(r"\[[\d:]+\] \w+ ", line)]
    started = [line for line in started if " done " not in line]
    assert started and all(len(line) < 200 for line in started), out
    assert any(re.fullmatch(r".*finetune model=tiny \(settings changed\)", s) for s in started)
    assert any(
        s.endswith("evaluate_unmasked model=tiny (input rebuilt: model.pt)") for s in started
    )
    assert "Params have changed" not in out and "Union of exclusive" not in out


def test_reasons_are_compacted():
    assert compact_reason("Missing output files: results/a.parquet, results/b.parquet") == (
        "missing output"
    )
    assert compact_reason(
        "Missing output files: a.pt; Input files updated by another job: results/m/model.pt"
    ) == ("missing output")
    assert compact_reason("Input files updated by another job: results/m/model.pt") == (
        "input rebuilt: model.pt"
    )
    reason = (
        "Updated input files: results/m/model.pt, results/d/train.parquet, results/d/val.parquet, "
        "/repo/src/kneurons/jobs.py"
    )
    assert compact_reason(reason) == (
        "input changed: 3 files (model.pt, train.parquet, ...); code changed: jobs.py"
    )
    params = (
        "Params have changed since last execution: Union of exclusive params before and now "
        "across all output: before: {'lr': 0.001; 'x': 'a; b'} now: {'lr': 0.002} "
    )
    assert compact_reason(params) == "settings changed"
    assert compact_reason(f"Set of input files has changed since last execution; {params}") == (
        "input set changed; settings changed"
    )
    assert compact_reason("Finished (was: Forced execution)") == "finished (was: forced)"
    assert compact_reason("") == ""
    unknown = compact_reason("Something new in Snakemake 10: " + "x" * 500)
    assert unknown.startswith("Something new") and len(unknown) <= 120


def test_files_and_wildcards_are_short():
    assert name_files(["a/model.pt"]) == "model.pt"
    assert name_files(["a/layer0.parquet", "b/layer0.parquet"]) == "2 files (layer0.parquet)"
    wildcards = {"model": "tiny", "layer": 0, "stage": "x" * 100}
    text = format_wildcards(wildcards)
    assert text.startswith("model=tiny layer=0 stage=xxx") and len(text) < 70
    assert format_wildcards({}) == ""


def test_the_last_result_line_of_a_job_log(tmp_path):
    log = tmp_path / "job.log"
    log.write_text(
        "2026-01-01 10:00:00,001 INFO rule finetune: 1 thread(s), device cpu\n"
        "2026-01-01 10:00:01,001 INFO test accuracy 0.58\n"
        "a line of a library's own output\n"
    )
    assert last_result(str(log), "finetune") == "test accuracy 0.58"
    log.write_text("2026-01-01 10:00:00,001 INFO rule finetune: 1 thread(s), device cpu\n")
    assert last_result(str(log), "finetune") == ""
    assert last_result(str(tmp_path / "missing.log"), "finetune") == ""


class Settings:
    printshellcmds = False
    nocolor = True
    quiet = None
    debug_dag = False
    verbose = False
    show_failed_logs = False
    stdout = False
    dryrun = False


def record(msg=None, level=logging.INFO, **extra) -> logging.LogRecord:
    rec = logging.LogRecord("snakemake.logging", level, __file__, 1, msg, None, None)
    rec.__dict__.update(extra)
    return rec


def test_a_job_is_a_line_when_it_starts_and_one_when_it_finishes(tmp_path, monkeypatch, capsys):
    from snakemake_interface_logger_plugins.common import LogEvent

    monkeypatch.chdir(tmp_path)
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs/f.log").write_text("2026-01-01 10:00:01,001 INFO test accuracy 0.58\n")
    page = tmp_path / "results/tiny/summary/tiny/summary.html"
    page.parent.mkdir(parents=True)
    page.write_text("<html/>")
    handler = LogHandler(Settings(), None)
    info = dict(
        event=LogEvent.JOB_INFO, jobid=3, rule_name="finetune", rule_msg=None,
        wildcards={"model": "tiny"}, reason="Missing output files: results/m.pt",
        input=["data.parquet", "/repo/src/kneurons/jobs.py"], log=["logs/f.log"],
        output=["results/tiny/summary/tiny/summary.html"],
    )  # fmt: skip
    for rec in [
        record(" Rule: finetune", **info),
        record("Shell command: None", event=LogEvent.SHELLCMD, shellcmd=None),
        record("Select jobs to execute..."),
        record("Finished jobid: 3", event=LogEvent.JOB_FINISHED, job_id=3),
        record(None, event=LogEvent.PROGRESS, done=1, total=1),
        record("a warning", level=logging.WARNING),
    ]:
        handler.emit(record=rec)
    handler.close()
    lines = capsys.readouterr().err.splitlines()
    assert re.fullmatch(r"\[[\d:]{8}\] finetune model=tiny \(missing output\)", lines[0])
    assert re.fullmatch(r"\[[\d:]{8}\] 1/1 done finetune model=tiny: test accuracy 0.58", lines[1])
    assert lines[2:] == [
        "a warning",
        "All results in one report: add --report report.html to this command.",
        "Open results/tiny/summary/tiny/summary.html",
    ]


def test_a_failed_job_keeps_its_block_without_the_library_files(capsys):
    from snakemake_interface_logger_plugins.common import LogEvent

    handler = LogHandler(Settings(), None)
    error = dict(
        event=LogEvent.JOB_ERROR, rule_name="finetune", rule_msg=None, jobid=3, wildcards={},
        input=["data.parquet", "/repo/src/kneurons/jobs.py"], output=["m.pt"],
        log=["logs/f.log"], conda_env=None, shellcmd=None, aux={},
    )  # fmt: skip
    handler.emit(record("Error in rule finetune, jobid: 3", level=logging.ERROR, **error))
    handler.emit(record(None, event=LogEvent.PROGRESS, done=1, total=1))
    handler.close()
    err = capsys.readouterr().err
    assert "Error in rule finetune, jobid 3:" in err
    assert "    input: data.parquet (and 1 library files)" in err
    assert "    log: logs/f.log (check log file(s) for error details)" in err
    assert "Open " not in err  # no summary page after a failed run
