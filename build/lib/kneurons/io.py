"""Atomic file writing: an interrupted job never leaves a half-written output behind."""

from __future__ import annotations

import glob
import hashlib
import json
import os
import secrets
import shutil
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success rename it onto `path`, else delete it.

    A writer killed with SIGKILL cannot delete its temporary file; the next write of the same
    path removes such leftovers (`.{name}.*.tmp`). One writer per path is assumed, as Snakemake
    guarantees for a job's outputs.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        stale.unlink(missing_ok=True)
    tmp = _new_temporary(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as err:
        if err.filename is not None:
            raise
        # a writer's own error (pyarrow's, a file object's) names no file: name the output
        raise OSError(err.errno, err.strerror or str(err), str(path)) from err
    finally:
        tmp.unlink(missing_ok=True)


def _new_temporary(path: Path) -> Path:
    """A new empty file `.{name}.<random>.tmp` beside `path`, created with mode 0666 less the
    umask, as any new file is: the renamed output gets the permissions the umask allows (0644
    under umask 022), not mkstemp's 0600, so colleagues on a shared file system can read it."""
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return tmp
    raise FileExistsError(f"no free temporary name beside {path}")


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def atomic_write(path: str | os.PathLike, write: Callable[[Path], object]) -> None:
    """Call `write(tmp_path)` and move the result onto `path` only if it succeeded."""
    with atomic_path(path) as tmp:
        write(tmp)


def write_json(path: str | os.PathLike, obj: object) -> None:
    text = json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n"
    atomic_write(path, lambda tmp: tmp.write_text(text))


def write_parquet(path: str | os.PathLike, table, metadata: dict | None = None) -> None:
    """Write a DataFrame to parquet atomically; `metadata` goes into the schema as JSON."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    arrow = pa.Table.from_pandas(table, preserve_index=False)
    if metadata:
        merged = dict(arrow.schema.metadata or {})
        merged[b"kneurons"] = json.dumps(metadata, sort_keys=True, default=str).encode()
        arrow = arrow.replace_schema_metadata(merged)
    atomic_write(path, lambda tmp: pq.write_table(arrow, tmp))


def read_parquet_metadata(path: str | os.PathLike) -> dict:
    """The `kneurons` metadata written by `write_parquet` (empty dict if none)."""
    import pyarrow.parquet as pq

    meta = pq.read_schema(path).metadata or {}
    raw = meta.get(b"kneurons")
    return json.loads(raw) if raw else {}


def stage_by_content(path: str | os.PathLike, directory: str | os.PathLike) -> str:
    """A copy of the file `path` under `directory`, named by its content (SHA-256). The
    workflow reads a user's input through it, so that moving or re-copying the same bytes
    reruns nothing (a path, or a new modification time, would).

    Called when the DAG is built, it re-hashes an existing copy (one pass over the file) and
    replaces one that no longer matches its name (edited, truncated) from the user's file, with
    a line on stderr: the new copy's modification time then reruns what was made from the bad
    one. A path that is not a file is returned as it is (Snakemake then reports it missing)."""
    source = Path(path)
    if not source.is_file():
        return str(path)
    # named by content alone, so a renamed file is the same input (readers sniff gzip by magic)
    sha = file_sha256(source)
    staged = Path(directory) / sha[:16]
    if staged.is_file() and file_sha256(staged) != sha:
        print(
            f"Warning: {staged}, the staged copy of {source}, no longer matches it (edited or "
            "damaged): copied again; what was made from it is made again",
            file=sys.stderr,
        )
        atomic_write(staged, lambda tmp: shutil.copyfile(source, tmp))
    elif not staged.is_file():
        staged.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(staged, lambda tmp: shutil.copyfile(source, tmp))
    origin = staged.with_name(staged.name + ".origin")  # for messages only, not a job input
    if not origin.is_file() or origin.read_text() != str(source.resolve()):
        atomic_write(origin, lambda tmp: tmp.write_text(str(source.resolve())))
    return str(staged)


def origin_of(path: str | os.PathLike) -> str:
    """The user's file that a staged copy (`stage_by_content`) was last made from, for
    messages; `path` itself when it is not a staged copy."""
    origin = Path(str(path) + ".origin")
    return origin.read_text() if origin.is_file() else str(path)
