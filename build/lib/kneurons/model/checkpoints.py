"""Reading fair-esm checkpoint files safely, and where fair-esm's hub keeps pretrained weights.

Its own small module so that `kneurons.model.spec` (torch-free) can read a local checkpoint's layer
count without importing the model code.
"""

from __future__ import annotations

import argparse
import json
import socket
import urllib.error
from pathlib import Path

import torch

from kneurons.errors import ModelError
from kneurons.io import file_sha256

FAIR_ESM_URL = "https://dl.fbaipublicfiles.com/fair-esm"
CONNECT_TIMEOUT = 20  # seconds without an answer before a download is given up


def safe_torch_load(path: Path) -> dict:
    """Load a fair-esm file without unpickling arbitrary objects.

    fair-esm files hold tensors, plain containers and an `argparse.Namespace` (the training
    config); that one class is allow-listed, everything else is refused by `weights_only=True`.
    """
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except FileNotFoundError:
        raise ModelError(f"{path}: checkpoint file not found") from None
    except Exception as err:  # pickle.UnpicklingError and friends: say which file, briefly
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ModelError(f"{path}: refused or unreadable checkpoint ({first})") from None


# the `cfg["model"]` fields of a fair-esm ESM-2 file that give the encoder's shape
SHAPE_FIELDS = {
    "num_layers": "encoder_layers",
    "embed_dim": "encoder_embed_dim",
    "attention_heads": "encoder_attention_heads",
}


def load_fair_esm(path: Path) -> dict:
    """A fair-esm ESM-2 file's contents (safe loader), checked to hold what fair-esm reads:
    `model` (the weights) and `cfg["model"]` with the shape fields. Anything else: one line."""
    path = Path(path)
    data = safe_torch_load(path)
    cfg = data.get("cfg") if isinstance(data, dict) else None
    model_cfg = cfg.get("model") if isinstance(cfg, dict) else None
    if (
        model_cfg is None
        or "model" not in data
        or not all(hasattr(model_cfg, field) for field in SHAPE_FIELDS.values())
    ):
        raise ModelError(
            f"{path}: not a fair-esm ESM-2 checkpoint (needs 'model' and 'cfg' keys, with "
            f"cfg['model'] giving {', '.join(SHAPE_FIELDS.values())})"
        )
    return data


def fair_esm_shape(data: dict) -> dict:
    """The encoder's shape written in a fair-esm file (`load_fair_esm`'s result): num_layers,
    embed_dim, attention_heads, token_dropout."""
    model_cfg = data["cfg"]["model"]
    shape = {name: int(getattr(model_cfg, field)) for name, field in SHAPE_FIELDS.items()}
    shape["token_dropout"] = bool(getattr(model_cfg, "token_dropout", True))
    return shape


def pretrained_path(name: str) -> Path:
    """Where fair-esm's hub download keeps `name` (under $TORCH_HOME/hub/checkpoints)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / f"{name}.pt"


def download_pretrained(name: str) -> Path:
    """The weights file of a pretrained fair-esm model: from the torch hub cache, downloaded once
    from fair-esm's URLs (plus the optional contact-regression file). Offline, one line says
    what to do instead."""
    if not name.startswith("esm2"):
        raise ModelError(f"model name {name!r}: only ESM-2 models (esm2_*) are supported")
    path = pretrained_path(name)
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(CONNECT_TIMEOUT)  # torch.hub's download has no timeout of its own
    try:
        torch.hub.download_url_to_file(f"{FAIR_ESM_URL}/models/{name}.pt", str(path))
        torch.hub.download_url_to_file(
            f"{FAIR_ESM_URL}/regression/{name}-contact-regression.pt",
            str(path.with_name(f"{name}-contact-regression.pt")),
        )
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", None) or type(err).__name__
        raise ModelError(
            f"cannot download {name} from {FAIR_ESM_URL} ({reason}); offline? place {name}.pt "
            f"in {path.parent}/, or use a local file with source: checkpoint, or run the "
            "offline planted-motif task with --configfile config/synthetic.yaml"
        ) from None
    finally:
        socket.setdefaulttimeout(previous)
    return path


def check_recorded_weights(record_path: str | Path) -> None:
    """The pretrained weights file is still the one rule fetch_pretrained recorded in
    `record_path` (path and SHA-256): a cached download is verified, not trusted by its name.
    A damaged or replaced file is one line (`ModelError`) saying what to do."""
    with open(record_path) as fh:
        record = json.load(fh)
    path = Path(record["path"])
    actual = file_sha256(path) if path.is_file() else "missing"
    if actual != record["sha256"]:
        raise ModelError(
            f"{path}: the pretrained weights are not those {record_path} recorded (SHA-256 "
            f"{record['sha256'][:12]}..., now {actual[:12]}...): a damaged or replaced "
            "download; delete both files and rerun to fetch them again"
        )
