"""Atomic writes (kneurons.io): no partial output, no temporary file left, leftovers cleaned."""

from __future__ import annotations

import os
import stat

import pandas as pd
import pytest

from kneurons.io import (
    atomic_path,
    atomic_write,
    file_sha256,
    read_parquet_metadata,
    write_json,
    write_parquet,
)


def test_failed_write_leaves_neither_output_nor_temporary(tmp_path):
    target = tmp_path / "out" / "table.parquet"

    def fail(tmp):
        tmp.write_text("half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        atomic_write(target, fail)
    assert not target.exists()
    assert list(target.parent.iterdir()) == []


def test_leftover_of_a_killed_writer_is_removed_by_the_next_write(tmp_path):
    target = tmp_path / "state.pt"
    leftover = tmp_path / ".state.pt.abc123.tmp"  # what a SIGKILLed writer leaves
    other = tmp_path / ".other.pt.abc123.tmp"  # another path's temporary: not ours
    leftover.write_text("partial")
    other.write_text("partial")
    with atomic_path(target) as tmp:
        assert tmp.name.startswith(".state.pt.") and tmp.suffix == ".tmp"
        tmp.write_text("complete")
    assert target.read_text() == "complete"
    assert not leftover.exists() and other.exists()


def test_parquet_metadata_round_trip_and_hash(tmp_path):
    frame = pd.DataFrame({"neuron": [0, 1], "score": [0.5, -1.0]})
    write_parquet(tmp_path / "s.parquet", frame, {"method": "activation", "layer": 3})
    assert read_parquet_metadata(tmp_path / "s.parquet") == {"method": "activation", "layer": 3}
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "s.parquet"), frame)
    (tmp_path / "a.txt").write_bytes(b"abc")
    assert file_sha256(tmp_path / "a.txt") == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_outputs_get_the_permissions_the_umask_allows(tmp_path, umask, mode):
    """Not mkstemp's 0600: colleagues on a shared file system read what the umask lets them."""
    frame = pd.DataFrame({"neuron": [0, 1]})
    previous = os.umask(umask)
    try:
        atomic_write(tmp_path / "a.tsv", lambda tmp: frame.to_csv(tmp, sep="\t"))
        write_json(tmp_path / "b.json", {"x": 1})
        write_parquet(tmp_path / "c.parquet", frame)
        with atomic_path(tmp_path / "d.pt") as tmp:
            with open(tmp, "wb") as fh:
                fh.write(b"weights")
    finally:
        os.umask(previous)
    for name in ("a.tsv", "b.json", "c.parquet", "d.pt"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode, name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tsv", "b.json", "c.parquet", "d.pt"]
