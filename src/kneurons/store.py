"""A content-addressed store of computed results: a job that Snakemake reruns as a whole
computes only what it has not computed before.

Snakemake's unit of caching is the job. Masked evaluation, scoring and residue-map jobs write
many targets each (every method x retention of one layer type; every layer type of one layer;
every method x retention of one layer type's maps), which pays a job's start-up (interpreter,
torch, model load, tokenising) once for all of them; adding a
retention level, a random seed or a layer type then reruns the whole job. Every target's result
is also kept here under a name derived from everything that determines it: the bytes of the
checkpoint and the data, the library code that computes it, the torch version and device kind,
the settings, and the target's own ingredients (its mask, its module). The rerun takes the
targets it has seen from here and computes only the new ones.

A name never points at a stale result: any change to an ingredient gives another name, and
nothing is looked up by path or time. Nor is an entry trusted by its name: each file starts
with a header line holding its own key and the SHA-256 of the bytes after it
(`kneurons-store 1 <key> <sha256>`), and a load checks both. An entry whose header names
another key (two files swapped or copied over each other), whose bytes changed, that was
truncated or that is not an entry at all is logged, deleted and computed again, never used.
Arrays are `.npy` bytes read with `allow_pickle=False` (nothing here is ever unpickled);
entries are written atomically. The store lives under `results/store/` and may be deleted at
any time: it only costs recomputation. `kneurons store verify` checks every entry and
removes the bad ones; `kneurons store prune` removes the entries no current target uses.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kneurons.io import atomic_write, file_sha256

MAGIC = b"kneurons-store"
VERSION = b"1"
# results/store/<kind>/<key[:2]>/<key><suffix>: kinds written by the workflow's jobs
KINDS = ("logits", "scores", "residues")

_log = logging.getLogger("kneurons.store")


def digest(obj: object) -> str:
    """Hex SHA-256 of `obj` as canonical JSON (keys sorted; bytes as hex)."""

    def default(value):
        if isinstance(value, bytes | bytearray | memoryview):
            return bytes(value).hex()
        if isinstance(value, np.generic):
            return value.item()
        raise TypeError(f"cannot fingerprint {type(value).__name__}")

    text = json.dumps(obj, sort_keys=True, default=default, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def files_fingerprint(paths: Iterable[str | os.PathLike]) -> dict[str, str]:
    """Path -> SHA-256 of its bytes, for the inputs and the library code of a job.

    Paths are taken relative to the files' common folder, so that two files with one name
    (the `__init__.py` of two packages) both count, and a moved checkout keeps its keys."""
    paths = sorted(os.path.abspath(p) for p in paths)
    if not paths:
        return {}
    root = os.path.commonpath(paths) if len(paths) > 1 else os.path.dirname(paths[0])
    return {Path(os.path.relpath(p, root)).as_posix(): file_sha256(p) for p in paths}


def _header(key: str, payload: bytes) -> bytes:
    return b" ".join([MAGIC, VERSION, key.encode(), hashlib.sha256(payload).hexdigest().encode()])


def read_entry(path: str | os.PathLike, key: str | None = None) -> bytes:
    """The payload of the entry file `path`, checked against its header: the header's key must
    be `key` (default: the file's name without suffix) and the payload's SHA-256 its checksum.
    Raises `BadEntry` naming what is wrong."""
    path = Path(path)
    key = key if key is not None else path.name.split(".", 1)[0]
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise BadEntry(f"unreadable ({err.strerror or type(err).__name__})") from None
    head, newline, payload = raw.partition(b"\n")
    parts = head.split(b" ")
    if not newline or len(parts) != 4 or parts[0] != MAGIC:
        raise BadEntry("not a store entry (no header; written by an older version?)")
    if parts[1] != VERSION:
        raise BadEntry(
            f"entry format {parts[1].decode(errors='replace')}, expected {VERSION.decode()}"
        )
    if parts[2].decode(errors="replace") != key:
        raise BadEntry("its header names another key (moved or copied over another entry)")
    if hashlib.sha256(payload).hexdigest().encode() != parts[3]:
        raise BadEntry("its bytes do not match their checksum (truncated or edited)")
    return payload


class BadEntry(ValueError):
    """A store entry that fails its checks (`read_entry`)."""


class Store:
    """Results of one kind of computation (`kind`, e.g. "logits") in one context (a mapping of
    everything the job's results depend on); `key(*parts)` names one result within it.

    `hits`, `misses` and `discarded` count this job's lookups; `used` holds every key looked up
    or saved, which the job records in its outputs (`reference`) so that `prune` knows which
    entries current targets use."""

    def __init__(
        self,
        directory: str | os.PathLike,
        kind: str,
        context: Mapping,
        log: Callable[[str], None] | None = None,
    ):
        self.directory = Path(directory) / kind
        self.kind = kind
        self.context = digest(dict(context))
        self.hits = 0
        self.misses = 0
        self.discarded = 0
        self.log = log or _log.warning

    def key(self, *parts: object) -> str:
        return digest([self.context, list(parts)])

    def _path(self, key: str, suffix: str) -> Path:
        return self.directory / key[:2] / f"{key}{suffix}"

    def reference(self, keys: Iterable[str]) -> dict:
        """What an output records of the entries it was made from (`store` in its metadata)."""
        return {"kind": self.kind, "keys": sorted(set(keys))}

    def _payload(self, key: str, suffix: str) -> bytes | None:
        """The verified bytes of an entry; a bad entry is logged, deleted and counts as a miss."""
        path = self._path(key, suffix)
        if not path.exists():
            self.misses += 1
            return None
        try:
            payload = read_entry(path, key)
        except BadEntry as err:
            self._discard(path, str(err))
            return None
        return payload

    def _discard(self, path: Path, reason: str) -> None:
        self.log(f"store: discarded {path}: {reason}; computing it again")
        path.unlink(missing_ok=True)
        self.discarded += 1
        self.misses += 1

    def load_array(self, key: str, shape: tuple[int, ...] | None = None) -> np.ndarray | None:
        """The array stored under `key`, or None (absent, or a bad entry: then it is discarded,
        computed again and written anew)."""
        payload = self._payload(key, ".npy")
        if payload is None:
            return None
        path = self._path(key, ".npy")
        try:
            array = np.load(io.BytesIO(payload), allow_pickle=False)
        except (OSError, ValueError) as err:
            self._discard(path, f"not an array ({err})")
            return None
        if shape is not None and array.shape != tuple(shape):
            self._discard(path, f"shape {array.shape}, expected {tuple(shape)}")
            return None
        self.hits += 1
        return array

    def save_array(self, key: str, array: np.ndarray) -> None:
        buffer = io.BytesIO()
        np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
        self._write(key, ".npy", buffer.getvalue())

    def fetch_file(self, key: str, suffix: str, dest: str | os.PathLike) -> bool:
        """Write the file stored under `key` to `dest` (atomically); False if there is none
        (or a bad one, then discarded)."""
        payload = self._payload(key, suffix)
        if payload is None:
            return False
        atomic_write(dest, lambda tmp: Path(tmp).write_bytes(payload))
        self.hits += 1
        return True

    def keep_file(self, key: str, suffix: str, source: str | os.PathLike) -> None:
        """Keep a copy of the file `source` under `key`."""
        self._write(key, suffix, Path(source).read_bytes())

    def _write(self, key: str, suffix: str, payload: bytes) -> None:
        def write(tmp):
            with open(tmp, "wb") as fh:
                fh.write(_header(key, payload) + b"\n")
                fh.write(payload)

        atomic_write(self._path(key, suffix), write)


# --- maintenance: `kneurons store verify` and `kneurons store prune` ---------------------------


@dataclass
class Report:
    """What `verify` or `prune` found: entries checked, kept, removed (path -> reason), bytes."""

    checked: int = 0
    kept: int = 0
    removed: dict[str, str] = field(default_factory=dict)
    bytes_removed: int = 0
    bytes_kept: int = 0

    def lines(self, verb: str) -> list[str]:
        out = [f"{path}: {reason}" for path, reason in sorted(self.removed.items())]
        out.append(
            f"{self.checked} entries checked: {self.kept} kept ({_size(self.bytes_kept)}), "
            f"{len(self.removed)} {verb} ({_size(self.bytes_removed)})"
        )
        return out


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"  # pragma: no cover


def entries(directory: str | os.PathLike) -> Iterator[Path]:
    """Every entry file under a store folder (`results/store`), temporary files included (a
    job killed mid-write leaves `.<name>.<random>.tmp`)."""
    root = Path(directory)
    if not root.is_dir():
        return
    for path in sorted(root.rglob("*")):
        if path.is_file():
            yield path


def _is_temporary(path: Path) -> bool:
    return path.name.startswith(".") and path.name.endswith(".tmp")


def _sweep(directory, reason_of: Callable[[Path], str | None], remove: bool) -> Report:
    """Every entry file under `directory`: removed (unless `remove` is False) where
    `reason_of(path)` gives a reason, kept where it gives None; then the emptied folders go."""
    report = Report()
    for path in entries(directory):
        report.checked += 1
        size = path.stat().st_size
        reason = "temporary file left by an interrupted job" if _is_temporary(path) else None
        reason = reason or reason_of(path)
        if reason is None:
            report.kept += 1
            report.bytes_kept += size
            continue
        report.removed[str(path)] = reason
        report.bytes_removed += size
        if remove:
            path.unlink(missing_ok=True)
    if remove:  # empty <kind>/<xx>/ folders
        for sub in sorted(Path(directory).rglob("*"), reverse=True):
            if sub.is_dir() and not any(sub.iterdir()):
                sub.rmdir()
    return report


def verify(directory: str | os.PathLike, remove: bool = True) -> Report:
    """Check every entry under `directory` (header key = file name, checksum of the bytes);
    remove the bad ones and leftover temporary files (unless `remove` is False). Run it while
    no job of this results folder runs: a job's temporary file would be taken for a leftover."""

    def reason_of(path: Path) -> str | None:
        try:
            read_entry(path)
        except BadEntry as err:
            return str(err)
        return None

    return _sweep(directory, reason_of, remove)


def referenced_keys(paths: Iterable[str | os.PathLike]) -> set[str]:
    """The store keys that the output files `paths` record (metadata `store`, see
    `Store.reference`); files that do not exist or record none add nothing."""
    from kneurons.io import read_parquet_metadata

    keys: set[str] = set()
    for path in paths:
        if not os.path.exists(path):
            continue
        try:
            meta = read_parquet_metadata(path)
        except Exception:  # an unreadable output keeps nothing; it is remade on the next run
            continue
        keys.update((meta.get("store") or {}).get("keys", []))
    return keys


def prune(directory: str | os.PathLike, keep: set[str], remove: bool = True) -> Report:
    """Remove every entry under `directory` whose key is not in `keep` (and leftover
    temporary files)."""

    def reason_of(path: Path) -> str | None:
        return None if path.name.split(".", 1)[0] in keep else "no current target uses it"

    return _sweep(directory, reason_of, remove)


def prune_unused(
    directory: str | os.PathLike, target_files: Iterable[str], log_path: str, dry_run: bool
) -> Report:
    """Job body of rule prune_store: `prune` with the keys the target files record; the report
    goes to `log_path` and its last lines to the terminal."""
    report = prune(directory, referenced_keys(target_files), remove=not dry_run)
    lines = report.lines("would be removed (dry run)" if dry_run else "removed")
    atomic_write(log_path, lambda tmp: Path(tmp).write_text("\n".join(lines) + "\n"))
    print("\n".join(lines[-10:]))
    return report
