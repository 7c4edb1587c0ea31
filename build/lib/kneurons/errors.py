"""The errors a job reports as one line (no traceback): bad data, bad model files, a full or
read-only disk, a damaged intermediate file (`kneurons.jobs.run_job`, `in_process`)."""

from __future__ import annotations

import errno
import json
import os
import re
import zipfile
from collections.abc import Iterable


class DataError(ValueError):
    """Invalid input data; the message names the file, row or column."""


class ModelError(ValueError):
    """A model cannot be built or loaded; the message names the file or config key."""


# errno -> what it means for a job, and what to do
_DISK_ERRORS = {
    errno.ENOSPC: ("no space left on the device", "free space (results/store may be deleted or "
                   "pruned: kneurons store prune) or point the run elsewhere with -d, then rerun"),
    errno.EDQUOT: ("disk quota exceeded", "free space in your quota, then rerun"),
    errno.EROFS: ("the file system is read-only", "run in a writable folder (-d DIR)"),
    errno.EACCES: ("permission denied", "make the folder writable for you, or run elsewhere "
                   "(-d DIR)"),
    errno.EPERM: ("operation not permitted", "make the folder writable for you, or run "
                  "elsewhere (-d DIR)"),
}  # fmt: skip
_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.[0-9a-f]{12}\.tmp$")  # kneurons.io.atomic_path


def _errno_of(err: OSError) -> int | None:
    if err.errno is not None:
        return err.errno
    found = re.search(r"\[errno (\d+)\]", str(err), flags=re.IGNORECASE)  # pyarrow's messages
    return int(found.group(1)) if found else None


def disk_error_line(err: OSError, outputs: Iterable[str] = ()) -> str | None:
    """One line for a full disk, an exceeded quota, a read-only or forbidden folder, naming the
    file (the output a temporary file stood for), else the job's first output; None for any
    other OSError."""
    code = _errno_of(err)
    if code not in _DISK_ERRORS:
        return None
    what, todo = _DISK_ERRORS[code]
    path = err.filename
    if path is not None:
        path = os.fspath(path)
        head, name = os.path.split(path)
        found = _TEMPORARY.match(name)
        path = os.path.join(head, found.group("name")) if found else path
    else:
        outputs = [str(p) for p in outputs]
        more = " or another output of this job" if len(outputs) > 1 else ""
        path = f"{outputs[0]}{more}" if outputs else "a file of this job"
    return f"{what} at {path}: {todo}"


def unreadable(path: str) -> str | None:
    """Why the file `path` cannot be read as its suffix says (parquet, JSON, NumPy, a torch
    checkpoint's zip archive), or None if it reads. Reads the whole file: for diagnosis after a
    job failed, not for every load."""
    if not os.path.isfile(path):
        return None
    try:
        if path.endswith(".parquet"):
            import pyarrow.parquet as pq

            pq.read_table(path)
        elif path.endswith(".json"):
            with open(path) as fh:
                json.load(fh)
        elif path.endswith(".npy"):
            import numpy as np

            np.load(path, allow_pickle=False)
        elif path.endswith(".pt"):
            with zipfile.ZipFile(path) as archive:
                bad = archive.testzip()
            if bad is not None:
                return f"member {bad} fails its CRC check"
    except Exception as err:  # whatever the reader says is the reason
        return " ".join(str(err).split())[:200] or type(err).__name__
    return None


def damaged_input_line(inputs: Iterable[str]) -> str | None:
    """One line naming the first of a job's input files that does not read (`unreadable`),
    and what to do; None when they all read."""
    for path in inputs:
        path = str(path)
        reason = unreadable(path)
        if reason is None:
            continue
        if path.startswith("results/") or "/results/" in path:
            todo = "delete it and rerun: Snakemake makes it again"
        else:
            todo = "replace it with a good copy"
        return f"{path} is damaged or cut short ({reason}): {todo}"
    return None
