"""Caches verified, not trusted by name (issue 24): store entries checked on load, the staged
input re-hashed, `kneurons store verify` / `prune`, retention levels the paths can name, and
one line (not a traceback) for a missing GPU, a full or read-only disk and a damaged
intermediate file. The resume fingerprint's tests are in test_train.py."""

from __future__ import annotations

import errno
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from workflow_helpers import REPO, TINY_RUN, run_snakemake, snakemake_command, write_config

from kneurons import store as store_module
from kneurons.errors import DataError, ModelError, damaged_input_line, disk_error_line
from kneurons.io import read_parquet_metadata, write_parquet
from kneurons.jobs import in_process, resolve_device, run_job
from kneurons.store import Store, files_fingerprint
from kneurons.vocab import EVAL_FILE, SCORE_FILE, SELECTION_FILE, format_retention

# --- the store: entries checked against their key and checksum ------------------------------


def two_entries(tmp_path, messages):
    store = Store(tmp_path, "logits", {"checkpoint": "abc"}, log=messages.append)
    a, b = store.key("mask a"), store.key("mask b")
    store.save_array(a, np.zeros((4, 3), dtype=np.float32))
    store.save_array(b, np.ones((4, 3), dtype=np.float32))
    return store, a, b


def entry(store, key, suffix=".npy"):
    return store.directory / key[:2] / f"{key}{suffix}"


def test_swapped_entries_of_one_shape_are_discarded_not_used(tmp_path):
    messages = []
    store, a, b = two_entries(tmp_path, messages)
    path_a, path_b = entry(store, a), entry(store, b)
    bytes_a, bytes_b = path_a.read_bytes(), path_b.read_bytes()
    path_a.write_bytes(bytes_b)
    path_b.write_bytes(bytes_a)
    assert store.load_array(a, (4, 3)) is None and store.load_array(b, (4, 3)) is None
    assert store.discarded == 2 and store.hits == 0
    assert not path_a.exists() and not path_b.exists()  # deleted: the rerun writes them anew
    assert len(messages) == 2 and "header names another key" in messages[0]
    assert str(path_a) in " ".join(messages)


@pytest.mark.parametrize(
    "damage",
    ["flip a byte", "truncate", "no header (old format)", "empty"],
)
def test_edited_or_truncated_entries_are_discarded(tmp_path, damage):
    messages = []
    store, a, _ = two_entries(tmp_path, messages)
    path = entry(store, a)
    raw = bytearray(path.read_bytes())
    if damage == "flip a byte":
        raw[-1] ^= 1  # one float's bit: still an array of the right shape
    elif damage == "truncate":
        raw = raw[: len(raw) - 5]
    elif damage == "no header (old format)":
        raw = raw.split(b"\n", 1)[1]  # a plain .npy, as the store wrote before
    else:
        raw = b""
    path.write_bytes(bytes(raw))
    assert store.load_array(a, (4, 3)) is None
    assert store.discarded == 1 and not path.exists()
    # computed again and saved: the next load is a hit
    store.save_array(a, np.zeros((4, 3), dtype=np.float32))
    np.testing.assert_array_equal(store.load_array(a, (4, 3)), np.zeros((4, 3)))


def test_fetched_files_are_checked_too(tmp_path):
    messages = []
    store = Store(tmp_path / "store", "scores", {"a": 1}, log=messages.append)
    sources = {}
    for name in ("x", "y"):
        sources[name] = tmp_path / f"{name}.parquet"
        sources[name].write_bytes(name.encode() * 10)
        store.keep_file(store.key(name), ".parquet", sources[name])
    x, y = (entry(store, store.key(n), ".parquet") for n in ("x", "y"))
    raw_x = x.read_bytes()
    x.write_bytes(y.read_bytes())
    y.write_bytes(raw_x)
    dest = tmp_path / "out.parquet"
    assert not store.fetch_file(store.key("x"), ".parquet", dest) and not dest.exists()
    assert store.discarded == 1


def test_files_fingerprint_keeps_files_of_one_name_apart(tmp_path):
    for package in ("a", "b"):
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text(f"# {package}\n")
    paths = [tmp_path / "a/__init__.py", tmp_path / "b/__init__.py"]
    fingerprint = files_fingerprint(paths)
    assert sorted(fingerprint) == ["a/__init__.py", "b/__init__.py"]
    before = dict(fingerprint)
    (tmp_path / "b/__init__.py").write_text("# changed\n")
    assert files_fingerprint(paths) != before  # a change to either changes the key
    # where the checkout lives does not matter
    moved = shutil.copytree(tmp_path, tmp_path.parent / (tmp_path.name + "_moved"))
    assert files_fingerprint([moved / "a/__init__.py", moved / "b/__init__.py"]) == (
        files_fingerprint(paths)
    )


def test_verify_removes_bad_entries_and_leftovers_and_keeps_good_ones(tmp_path):
    messages = []
    store, a, b = two_entries(tmp_path / "store", messages)
    entry(store, b).write_bytes(entry(store, b).read_bytes()[:-3])
    leftover = entry(store, a).with_name(f".{a}.npy.0123456789ab.tmp")
    leftover.write_bytes(b"half")
    dry = store_module.verify(tmp_path / "store", remove=False)
    assert (dry.checked, dry.kept, len(dry.removed)) == (3, 1, 2)
    assert entry(store, b).exists() and leftover.exists()  # a dry run removes nothing
    report = store_module.verify(tmp_path / "store")
    assert set(report.removed) == {str(entry(store, b)), str(leftover)}
    assert entry(store, a).exists() and not entry(store, b).exists() and not leftover.exists()
    assert "truncated or edited" in report.removed[str(entry(store, b))]
    assert report.lines("removed")[-1].startswith("3 entries checked: 1 kept")


def test_prune_keeps_exactly_the_referenced_entries(tmp_path):
    messages = []
    store, a, b = two_entries(tmp_path / "store", messages)
    output = tmp_path / "eval.parquet"
    write_parquet(output, pd.DataFrame({"x": [1]}), {"store": store.reference([a])})
    keep = store_module.referenced_keys([output, tmp_path / "missing.parquet"])
    assert keep == {a}
    report = store_module.prune(tmp_path / "store", keep)
    assert entry(store, a).exists() and not entry(store, b).exists()
    assert list(report.removed) == [str(entry(store, b))]
    assert not (entry(store, b).parent.exists() and b[:2] != a[:2])  # empty folders go


def test_a_replaced_pretrained_download_is_one_line(tmp_path):
    """The weights in the torch hub cache are checked against fetch_pretrained's record."""
    import json

    from kneurons.io import file_sha256
    from kneurons.model.checkpoints import check_recorded_weights

    weights = tmp_path / "esm2_t6_8M_UR50D.pt"
    weights.write_bytes(b"the weights as downloaded")
    record = tmp_path / "weights.json"
    record.write_text(json.dumps({"path": str(weights), "sha256": file_sha256(weights)}))
    check_recorded_weights(record)  # as recorded: fine
    weights.write_bytes(b"the weights as downloaded, cut")
    with pytest.raises(ModelError, match=f"^{weights}: the pretrained weights are not those"):
        check_recorded_weights(record)
    weights.unlink()
    with pytest.raises(ModelError, match="now missing"):
        check_recorded_weights(record)


# --- retention levels: any positive level has a path name ------------------------------------


@pytest.mark.parametrize(
    ("value", "name"),
    [(50, "50"), (0.5, "0.5"), (12.500001, "12.5"), (1e-05, "0.00001"), (2.5e-7, "0.00000025")],
)
def test_retention_names_are_positional(value, name):
    assert format_retention(value) == name
    assert float(name) == pytest.approx(value, rel=1e-5)
    assert set(name) <= set("0123456789.")


# --- one line, not a traceback ----------------------------------------------------------------


def fake_job(tmp_path, inputs=(), outputs=("results/eval/x.parquet",), device="cpu"):
    return SimpleNamespace(
        log=[str(tmp_path / "job.log")],
        rule="evaluate_masked",
        input=list(inputs),
        output=list(outputs),
        threads=1,
        params=SimpleNamespace(job={"device": device, "deterministic": False}),
    )


def run_failing(job, main, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_job(main, job)
    assert exit_info.value.code == 1
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("Error")]
    assert len(lines) == 1
    return lines[0]


@pytest.fixture(autouse=True)
def _reset_logging():
    yield
    logging.getLogger().handlers.clear()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_requested_without_cuda_is_one_line(tmp_path, capsys):
    with pytest.raises(ModelError, match="config key device: cuda, but torch"):
        resolve_device("cuda")
    job = fake_job(tmp_path, device="cuda")

    def main(snakemake):
        from kneurons.jobs import start_job

        start_job(snakemake)

    line = run_failing(job, main, capsys)
    assert line.startswith("Error in rule evaluate_masked: config key device: cuda, but torch")
    assert "set device: auto or cpu" in line
    assert "config key device: cuda" in Path(job.log[0]).read_text()


@pytest.mark.parametrize("errno_attribute", [errno.ENOSPC, None])
def test_a_full_disk_under_pyarrow_is_one_line(tmp_path, capsys, errno_attribute):
    """pyarrow's error on a full disk (as it raised writing to /dev/full): no file name, the
    errno in the message (and, depending on the version, in the attribute too)."""
    job = fake_job(tmp_path)
    message = "Error writing bytes to file. Detail: [errno 28] No space left on device"

    def main(snakemake):
        raise OSError(errno_attribute, message) if errno_attribute else OSError(message)

    line = run_failing(job, main, capsys)
    assert line.startswith("Error in rule evaluate_masked: no space left on the device at results/")
    assert "results/eval/x.parquet" in line and "free space" in line
    assert "no space left" in Path(job.log[0]).read_text()  # a job that never logged still does


@pytest.mark.parametrize(
    ("code", "what"),
    [
        (errno.ENOSPC, "no space left on the device"),
        (errno.EROFS, "the file system is read-only"),
        (errno.EACCES, "permission denied"),
    ],
)
def test_disk_errors_name_the_output_not_its_temporary_file(code, what):
    err = OSError(code, os.strerror(code), "results/store/logits/ab/.abcd.npy.0123456789ab.tmp")
    line = disk_error_line(err)
    assert line.startswith(f"{what} at results/store/logits/ab/abcd.npy: ")
    assert disk_error_line(OSError(errno.ENOENT, "No such file", "x")) is None


def test_a_damaged_input_is_one_line_naming_it(tmp_path, capsys):
    good = tmp_path / "results/scores/good.parquet"
    bad = tmp_path / "results/scores/bad.parquet"
    write_parquet(good, pd.DataFrame({"a": [1, 2]}))
    write_parquet(bad, pd.DataFrame({"a": [1, 2]}))
    bad.write_bytes(bad.read_bytes()[:40])
    job = fake_job(tmp_path, inputs=[str(good), str(bad), "src/kneurons/x.py"])

    def main(snakemake):
        for path in snakemake.input[:2]:
            pd.read_parquet(path)

    line = run_failing(job, main, capsys)
    assert line.startswith(f"Error in rule evaluate_masked: {bad} is damaged or cut short (")
    assert line.endswith("delete it and rerun: Snakemake makes it again")
    assert damaged_input_line([str(good)]) is None


def test_a_bug_keeps_its_traceback(tmp_path):
    job = fake_job(tmp_path)

    def main(snakemake):
        raise KeyError("a bug, not an input error")

    with pytest.raises(KeyError):
        run_job(main, job)


def test_in_process_rules_fail_with_one_line_and_a_log(tmp_path):
    from snakemake.exceptions import WorkflowError

    from kneurons.selection.ranking import write_selection

    score = tmp_path / "results/scores/layer0.parquet"
    write_parquet(score, pd.DataFrame({"a": [1.0]}))
    score.write_bytes(score.read_bytes()[:-20])
    log = tmp_path / "logs/select.log"
    log.parent.mkdir()
    out = tmp_path / "results/selection/x.parquet"
    with pytest.raises(WorkflowError) as err:
        in_process(write_selection, "select_units", [str(score)], [str(out)], str(log),
                   [str(score)], str(out), str(log), "layer_type", "activation", "key")  # fmt: skip
    message = str(err.value)
    assert message.startswith(f"Error in rule select_units: {score} is damaged or cut short")
    assert "\n" not in message
    assert log.exists() and "damaged or cut short" in log.read_text()
    assert not out.exists()
    # an input error of the job itself: its message, one line
    with pytest.raises(WorkflowError, match="^Error in rule r: bad row 3$"):
        in_process(lambda: (_ for _ in ()).throw(DataError("bad\nrow 3")), "r", [], [], str(log))


# --- through the workflow ---------------------------------------------------------------------

METHODS = ["activation", "integrated_gradients", "random-0", "random-1"]


def eval_targets(retentions=(50, 10)):
    return [
        TINY_RUN
        + EVAL_FILE.format(
            model="tiny",
            mode="zero",
            scope="layer_type",
            method=m,
            target=t,
            direction="keep",
            retention=format_retention(r),
        )  # fmt: skip
        for m in METHODS
        for t in ("key", "ffn_in")
        for r in retentions
    ]


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    """The tiny config's masked evaluations (no summary), run once for this module; tests that
    damage anything work on a copy (`copy_of`)."""
    workdir = tmp_path_factory.mktemp("caches")
    config = write_config(workdir)
    run = run_snakemake(workdir, config, *eval_targets())
    assert run.returncode == 0, run.stderr[-3000:]
    return workdir


def copy_of(workdir: Path, dest: Path) -> tuple[Path, Path]:
    """A copy of a run (times kept, so nothing is out of date) and its config, rewritten to read
    the copy's input."""
    shutil.copytree(workdir, dest, symlinks=True)
    config = yaml.safe_load((dest / "config.yaml").read_text())
    config["data"]["input"] = str(dest / "tiny.tsv")
    (dest / "config.yaml").write_text(yaml.safe_dump(config))
    shutil.copystat(workdir / "config.yaml", dest / "config.yaml")
    return dest, dest / "config.yaml"


def store_files(workdir: Path, kind: str) -> list[Path]:
    return sorted((workdir / "results/store" / kind).rglob("*.npy"))


@pytest.mark.integration
def test_swapped_logits_entries_are_recomputed_when_a_level_is_added(evaluated, tmp_path):
    """The issue's case: two same-shaped logits entries swapped, then a retention level added.
    The old levels' files must come out as they were, not with each other's logits."""
    workdir, config = copy_of(evaluated, tmp_path / "run")
    before = {t: pd.read_parquet(workdir / t) for t in eval_targets()}
    # two entries of the keep-10% masks (IG key, activation key): different logits
    targets = [eval_targets()[i] for i in (1, 5)]
    keys = [read_parquet_metadata(workdir / t)["store"]["keys"][0] for t in targets]
    paths = [next((workdir / "results/store/logits").rglob(f"{k}.npy")) for k in keys]
    raw = [p.read_bytes() for p in paths]
    assert raw[0].split(b"\n", 1)[1] != raw[1].split(b"\n", 1)[1]  # different logits
    paths[0].write_bytes(raw[1])
    paths[1].write_bytes(raw[0])

    more = write_config(workdir, yaml.safe_load(config.read_text()), name="more.yaml",
                        evaluation__retention=[50, 10, 1])  # fmt: skip
    run = run_snakemake(workdir, more, *eval_targets((50, 10, 1)))
    assert run.returncode == 0, run.stderr[-3000:]
    log = next((workdir / "logs").rglob("evaluate_masked*/**/*.log")).read_text()
    assert "store: discarded" in log and "header names another key" in log
    for target, frame in before.items():
        after = pd.read_parquet(workdir / target)
        pd.testing.assert_frame_equal(after, frame, check_exact=True, obj=target)


@pytest.mark.integration
def test_an_edited_staged_input_is_replaced_from_the_users_file(evaluated, tmp_path):
    workdir, config = copy_of(evaluated, tmp_path / "run")
    staged = [p for p in (workdir / "results/input").iterdir() if "." not in p.name]
    assert len(staged) == 1
    lines = staged[0].read_text().splitlines(keepends=True)
    cleaned = workdir / "results/tiny/data/cleaned.parquet"
    before = pd.read_parquet(cleaned)
    staged[0].write_text("".join(lines[:-16]))  # 16 rows deleted from the copy
    run = run_snakemake(workdir, config, str(cleaned.relative_to(workdir)))
    assert run.returncode == 0, run.stderr[-3000:]
    assert "no longer matches it" in run.stderr
    assert staged[0].read_bytes() == (workdir / "tiny.tsv").read_bytes()
    # the data are the user's file's, not the edited copy's (the old code cleaned 16 rows less)
    pd.testing.assert_frame_equal(pd.read_parquet(cleaned), before)


@pytest.mark.integration
def test_a_truncated_score_file_stops_the_selection_with_one_line(evaluated, tmp_path):
    workdir, config = copy_of(evaluated, tmp_path / "run")
    score = TINY_RUN + SCORE_FILE.format(
        model="tiny", method="activation", layer_type="key", layer=1
    )
    path = workdir / score
    path.write_bytes(path.read_bytes()[:-100])
    selection = TINY_RUN + SELECTION_FILE.format(
        model="tiny", scope="layer_type", method="activation", target="key"
    )
    run = run_snakemake(workdir, config, selection)
    assert run.returncode != 0
    assert f"Error in rule select_units: {score} is damaged or cut short" in run.stderr
    assert "Traceback" not in run.stderr
    log = workdir / "logs/tiny/select_units/tiny/layer_type/activation/key.log"
    assert log.exists() and "damaged or cut short" in log.read_text()


def mount_tmpfs(where: Path) -> bool:
    where.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(where)],
                              capture_output=True)  # fmt: skip
    except OSError:
        return False
    return done.returncode == 0


@pytest.mark.integration
@pytest.mark.parametrize("fault", ["full", "read-only"])
def test_a_full_or_read_only_store_is_one_line(evaluated, tmp_path, fault):
    workdir, config = copy_of(evaluated, tmp_path / "run")
    store = workdir / "results/store"
    shutil.rmtree(store)
    if not mount_tmpfs(store):
        pytest.skip("mounting a tmpfs needs root")
    try:
        if fault == "full":
            with open(store / "filler", "wb", buffering=0) as fh, pytest.raises(OSError):
                while True:
                    fh.write(b"\0" * 4096)
        else:
            subprocess.run(["mount", "-o", "remount,ro", str(store)], check=True)
        run = run_snakemake(workdir, config, *eval_targets(), "--forcerun", "evaluate_masked_model")
    finally:
        subprocess.run(["umount", str(store)], check=True)
    assert run.returncode != 0
    errors = [line for line in run.stderr.splitlines() if line.startswith("Error in rule")]
    what = "no space left on the device" if fault == "full" else "the file system is read-only"
    assert errors[0].startswith(f"Error in rule evaluate_masked_model: {what} at results/store/")
    assert "Traceback" not in run.stderr


@pytest.mark.integration
def test_a_read_only_results_folder_at_dag_build_is_one_line(tmp_path):
    """The staged copy of the user's file is written while the DAG is built, not in a job."""
    config = write_config(tmp_path)
    staged = tmp_path / "results/input"
    if not mount_tmpfs(staged):
        pytest.skip("mounting a tmpfs needs root")
    try:
        subprocess.run(["mount", "-o", "remount,ro", str(staged)], check=True)
        run = run_snakemake(tmp_path, config, "-n")
    finally:
        subprocess.run(["umount", str(staged)], check=True)
    assert run.returncode != 0
    assert (
        run.stderr.strip()
        .splitlines()[-1]
        .startswith("Error: the file system is read-only at results/input/")
    )
    assert "Traceback" not in run.stderr


@pytest.mark.integration
def test_store_verify_and_prune_from_the_command_line(evaluated, tmp_path):
    workdir, config = copy_of(evaluated, tmp_path / "run")
    kneurons = [sys.executable, "-m", "kneurons.cli"]
    clean = subprocess.run([*kneurons, "store", "verify"], cwd=workdir, capture_output=True,
                           text=True)  # fmt: skip
    assert clean.returncode == 0, clean.stderr
    n_entries = len(list((workdir / "results/store").rglob("*.*")))
    assert f"{n_entries} entries checked: {n_entries} kept" in clean.stdout

    # a damaged entry: verify removes it and names it
    damaged = store_files(workdir, "logits")[0]
    damaged.write_bytes(damaged.read_bytes()[:-1])
    verify = subprocess.run([*kneurons, "store", "verify"], cwd=workdir, capture_output=True,
                            text=True)  # fmt: skip
    assert f"{damaged.relative_to(workdir)}: its bytes do not match" in verify.stdout
    assert not damaged.exists()

    # an entry no target uses (a well-formed entry of another context): prune removes it and
    # only it (dry run first)
    other = Store(workdir / "results/store", "logits", {"checkpoint": "another model"})
    other.save_array(other.key("x"), np.zeros(3))
    orphan = entry(other, other.key("x"))
    args = ["-s", str(REPO / "Snakefile"), "--configfile", str(config)]
    dry = subprocess.run([*kneurons, "store", "prune", "--dry-run", *args], cwd=workdir,
                         capture_output=True, text=True)  # fmt: skip
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert orphan.exists() and "would be removed" in dry.stdout
    prune = subprocess.run([*kneurons, "store", "prune", *args], cwd=workdir,
                           capture_output=True, text=True)  # fmt: skip
    assert prune.returncode == 0, prune.stderr[-3000:]
    assert not orphan.exists()
    remaining = {p.name.split(".")[0] for p in (workdir / "results/store").rglob("*.*")}
    used = store_module.referenced_keys(workdir / t for t in eval_targets())
    used |= store_module.referenced_keys((workdir / "results/tiny/scores").rglob("*.parquet"))
    assert remaining == used - {damaged.name.split(".")[0]}
    # the pruned store still serves every target: nothing to do
    again = run_snakemake(workdir, config, *eval_targets())
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr


# --- retention levels at config time ---------------------------------------------------------


def dry_run(tmp_path, **changes):
    config = write_config(tmp_path, **changes)
    return subprocess.run(
        snakemake_command(tmp_path, config, "-n", "--quiet", "all"),
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.integration
def test_a_level_below_1e_4_has_a_path(tmp_path):
    run = dry_run(tmp_path, evaluation__retention=[50, 1e-05])
    assert run.returncode == 0, run.stderr[-3000:]


@pytest.mark.integration
@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"evaluation__retention": [50, 1e-12]},
         "Error in config: evaluation.retention: 1e-12 selects no unit of the smallest pool"),
        ({"evaluation__retention": [100, 10], "evaluation__directions": ["keep", "remove"]},
         "Error in config: evaluation.retention: 100 with evaluation.directions remove keeps"),
    ],
)  # fmt: skip
def test_a_level_that_keeps_no_unit_is_refused_naming_the_key(tmp_path, changes, message):
    run = dry_run(tmp_path, **changes)
    assert run.returncode != 0
    errors = [line for line in run.stderr.splitlines() if line.startswith("Error")]
    assert errors and errors[0].startswith(message), run.stderr[-2000:]
    assert "Traceback" not in run.stderr


@pytest.mark.integration
def test_auto_pass_size_equals_its_explicit_size_and_shares_its_store_entries(evaluated, tmp_path):
    """`evaluation.max_tokens: auto` is 4096 on a CPU: set explicitly, the evaluations rerun
    (a changed param) but find every mask's logits in the store under the same keys, and write
    the same tables; the size used is in each file's metadata."""
    workdir, config = copy_of(evaluated, tmp_path / "run")
    before = {t: pd.read_parquet(workdir / t) for t in eval_targets()}
    assert {read_parquet_metadata(workdir / t)["max_tokens"] for t in eval_targets()} == {4096}
    n_entries = len(store_files(workdir, "logits"))
    explicit = yaml.safe_load(config.read_text())
    explicit["evaluation"]["max_tokens"] = 4096
    config.write_text(yaml.safe_dump(explicit))
    run = run_snakemake(workdir, config, *eval_targets())
    assert run.returncode == 0, run.stderr[-3000:]
    log = next((workdir / "logs").rglob("evaluate_masked*/**/*.log")).read_text()
    assert " 0 computed" in log  # every mask from the store
    assert len(store_files(workdir, "logits")) == n_entries
    for target, frame in before.items():
        pd.testing.assert_frame_equal(pd.read_parquet(workdir / target), frame, check_exact=True)
