"""A content-addressed store of computed results: a job that Snakemake reruns as a whole
computes only what it has not computed before.

Snakemake's unit of caching is the job. Masked evaluation and scoring jobs write many targets
each (every method x retention of one layer type; every layer type of one layer), which pays a
job's start-up (interpreter, torch, model load, tokenising) once for all of them; adding a
retention level, a random seed or a layer type then reruns the whole job. Every target's result
is also kept here under a name derived from everything that determines it: the bytes of the
checkpoint and the data, the library code that computes it, the torch version and device kind,
the settings, and the target's own ingredients (its mask, its module). The rerun takes the
targets it has seen from here and computes only the new ones.

A name never points at a stale result: any change to an ingredient gives another name, and
nothing is looked up by path or time. Arrays are stored as `.npy` read with
`allow_pickle=False` (nothing here is ever unpickled); entries are written atomically. The store
lives under `results/store/` and may be deleted at any time: it only costs recomputation.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from kneurons.io import atomic_write, file_sha256


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
    """File name -> SHA-256 of its bytes, for the inputs and the library code of a job."""
    return {Path(p).name: file_sha256(p) for p in sorted(map(str, paths))}


class Store:
    """Results of one kind of computation (`kind`, e.g. "logits") in one context (a mapping of
    everything the job's results depend on); `key(*parts)` names one result within it."""

    def __init__(self, directory: str | os.PathLike, kind: str, context: Mapping):
        self.directory = Path(directory) / kind
        self.context = digest(dict(context))
        self.hits = 0
        self.misses = 0

    def key(self, *parts: object) -> str:
        return digest([self.context, list(parts)])

    def _path(self, key: str, suffix: str) -> Path:
        return self.directory / key[:2] / f"{key}{suffix}"

    def load_array(self, key: str, shape: tuple[int, ...] | None = None) -> np.ndarray | None:
        """The array stored under `key`, or None (absent, unreadable or of another shape:
        then it is computed again and overwritten)."""
        path = self._path(key, ".npy")
        try:
            array = np.load(path, allow_pickle=False)
        except (OSError, ValueError):
            self.misses += 1
            return None
        if shape is not None and array.shape != tuple(shape):
            self.misses += 1
            return None
        self.hits += 1
        return array

    def save_array(self, key: str, array: np.ndarray) -> None:
        def write(tmp):
            with open(tmp, "wb") as fh:
                np.save(fh, np.ascontiguousarray(array), allow_pickle=False)

        atomic_write(self._path(key, ".npy"), write)

    def fetch_file(self, key: str, suffix: str, dest: str | os.PathLike) -> bool:
        """Copy the file stored under `key` to `dest` (atomically); False if there is none."""
        path = self._path(key, suffix)
        if not path.is_file():
            self.misses += 1
            return False
        atomic_write(dest, lambda tmp: shutil.copyfile(path, tmp))
        self.hits += 1
        return True

    def keep_file(self, key: str, suffix: str, source: str | os.PathLike) -> None:
        """Keep a copy of the file `source` under `key`."""
        atomic_write(self._path(key, suffix), lambda tmp: shutil.copyfile(source, tmp))
