"""What produced a result directory: config, code version, packages, device, seeds, checksums."""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import os
import platform
import subprocess
from collections.abc import Iterable

from kneurons.io import file_sha256

PACKAGES = ("kneurons", "torch", "fair-esm", "captum", "snakemake", "pandas", "numpy", "pyarrow",
            "matplotlib")  # fmt: skip


def git_state(directory: str | os.PathLike) -> dict:
    """Commit of the checkout holding the workflow, and whether it had uncommitted changes."""

    def git(*args):
        return subprocess.run(
            ["git", "-C", str(directory), *args], capture_output=True, text=True, timeout=30
        )

    try:
        head = git("rev-parse", "HEAD")
        if head.returncode != 0:
            return {"commit": None, "dirty": None}
        status = git("status", "--porcelain", "--untracked-files=no")
        return {"commit": head.stdout.strip(), "dirty": bool(status.stdout.strip())}
    except (OSError, subprocess.TimeoutExpired):
        return {"commit": None, "dirty": None}


def package_versions() -> dict:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def device_info(device: str = "auto") -> dict:
    """The machine, and the GPU the jobs could use: config key `device` ("cpu": no GPU looked
    for, and torch, whose import is most of this job's time, not imported)."""
    info = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "device_setting": device,
    }
    if device == "cpu":
        return info
    import torch

    info["cuda_available"] = torch.cuda.is_available()
    if torch.cuda.is_available():
        info["cuda_device"] = torch.cuda.get_device_name(0)
        info["cuda_version"] = torch.version.cuda
    return info


def seeds_of(config: dict) -> dict:
    """Every `seed` key of the config, by its dotted path."""
    found = {}

    def walk(node, prefix):
        if isinstance(node, dict):
            for key, value in node.items():
                path = f"{prefix}.{key}" if prefix else str(key)
                if key == "seed":
                    found[path] = value
                else:
                    walk(value, path)

    walk(config, "")
    return found


def provenance(
    config: dict,
    workflow_dir: str,
    inputs: Iterable[str],
    outputs: Iterable[str],
    device: str = "auto",
):
    """The provenance record of one result directory (JSON-ready); `device`: config key."""
    return {
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "config": config,
        "git": git_state(workflow_dir),
        "packages": package_versions(),
        "device": device_info(device),
        "seeds": seeds_of(config),
        "inputs": {str(p): file_sha256(p) for p in inputs if os.path.isfile(p)},
        "outputs": {str(p): file_sha256(p) for p in outputs if os.path.isfile(p)},
    }
