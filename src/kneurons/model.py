"""ESM-2 models: build (pretrained, local fair-esm file, random init), classify, save and load.

The classifier runs fair-esm's `ESM2` layer by layer instead of calling `ESM2.forward`, so that
scoring can start from the cached input of any layer (prefix caching) and skip the unused LM and
contact heads. `tests/test_model.py` checks that the representations equal fair-esm's own forward.
"""

from __future__ import annotations

import argparse
import os
import urllib.error
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import esm
import torch
from esm.model.esm2 import ESM2
from torch import nn

# name -> (num_layers, embed_dim, attention_heads), as in esm/pretrained.py. `esm2_tiny` and
# `esm2_t2_64_test` are test shapes (no pretrained weights exist for them).
ARCHITECTURES: dict[str, tuple[int, int, int]] = {
    "esm2_t6_8M_UR50D": (6, 320, 20),
    "esm2_t12_35M_UR50D": (12, 480, 20),
    "esm2_t30_150M_UR50D": (30, 640, 20),
    "esm2_t33_650M_UR50D": (33, 1280, 20),
    "esm2_t36_3B_UR50D": (36, 2560, 40),
    "esm2_t48_15B_UR50D": (48, 5120, 40),
    "esm2_tiny": (2, 32, 4),
    "esm2_t4_160_test": (4, 160, 8),
}

# layer type -> submodule of `model.layers[l]` whose output units are the neurons.
LAYER_TYPES: dict[str, str] = {
    "query": "self_attn.q_proj",
    "key": "self_attn.k_proj",
    "value": "self_attn.v_proj",
    "attn_out": "self_attn.out_proj",
    "ffn_in": "fc1",
    "ffn_out": "fc2",
}

FAIR_ESM_URL = "https://dl.fbaipublicfiles.com/fair-esm"


class ModelError(ValueError):
    """A model cannot be built or loaded; the message names the file or config key."""


@dataclass(frozen=True)
class Architecture:
    num_layers: int
    embed_dim: int
    attention_heads: int
    token_dropout: bool = True


@dataclass(frozen=True)
class ModelSpec:
    """Where the encoder's weights come from (config `models.<id>`)."""

    source: str  # "pretrained" | "checkpoint" | "random"
    name: str | None = None  # fair-esm model name, or the architecture for "random"
    path: str | None = None  # fair-esm-format file for "checkpoint"
    architecture: Architecture | None = None  # explicit shape for "random"
    seed: int = 0  # initialisation seed for "random"

    @classmethod
    def from_config(cls, model_id: str, cfg: dict) -> ModelSpec:
        source = cfg.get("source")
        arch = cfg.get("architecture")
        spec = cls(
            source=source,
            name=cfg.get("name"),
            path=cfg.get("path"),
            architecture=Architecture(**arch) if arch else None,
            seed=int(cfg.get("seed", 0)),
        )
        key = f"models.{model_id}"
        if source == "pretrained" and not spec.name:
            raise ModelError(f"{key}.name is required when source is 'pretrained'")
        if source == "checkpoint" and not spec.path:
            raise ModelError(f"{key}.path is required when source is 'checkpoint'")
        if source == "random" and spec.architecture is None and spec.name not in ARCHITECTURES:
            raise ModelError(
                f"{key}: source 'random' needs `architecture` or a known `name` "
                f"(one of {', '.join(ARCHITECTURES)}), got {spec.name!r}"
            )
        if source not in ("pretrained", "checkpoint", "random"):
            raise ModelError(
                f"{key}.source must be pretrained, checkpoint or random, got {source!r}"
            )
        return spec


def alphabet() -> esm.data.Alphabet:
    return esm.data.Alphabet.from_architecture("ESM-1b")


def build_random(arch: Architecture, seed: int = 0) -> ESM2:
    """An ESM-2 of the given shape with fair-esm's own initialisation, seeded."""
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        return ESM2(
            num_layers=arch.num_layers,
            embed_dim=arch.embed_dim,
            attention_heads=arch.attention_heads,
            alphabet=alphabet(),
            token_dropout=arch.token_dropout,
        )
    finally:
        torch.random.set_rng_state(generator_state)


def _safe_torch_load(path: Path) -> dict:
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


def load_fair_esm_file(path: str | os.PathLike) -> ESM2:
    """Load an ESM-2 model from a file in fair-esm's format (as fair-esm's hub writes them).

    A `<stem>-contact-regression.pt` beside the file is used when present (contact head only).
    """
    path = Path(path)
    model_data = _safe_torch_load(path)
    if not isinstance(model_data, dict) or "model" not in model_data or "cfg" not in model_data:
        raise ModelError(f"{path}: not a fair-esm ESM-2 checkpoint (needs 'model' and 'cfg' keys)")
    regression_path = path.with_name(path.stem + "-contact-regression.pt")
    regression = _safe_torch_load(regression_path) if regression_path.exists() else None
    # fair-esm picks the ESM-2 code path by the name's prefix; the file name itself may be anything.
    try:
        with warnings.catch_warnings():  # the contact head is never used here
            warnings.filterwarnings("ignore", message="Regression weights not found")
            model, _ = esm.pretrained.load_model_and_alphabet_core("esm2", model_data, regression)
    except (RuntimeError, AttributeError, KeyError) as err:
        raise ModelError(
            f"{path}: cannot build ESM-2 from it ({str(err).splitlines()[0]})"
        ) from None
    return model


def pretrained_path(name: str) -> Path:
    """Where fair-esm's hub download keeps `name` (under $TORCH_HOME/hub/checkpoints)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / f"{name}.pt"


def load_pretrained(name: str) -> ESM2:
    """Load a pretrained fair-esm model by name: from the torch hub cache, downloading it once.

    The download uses fair-esm's URLs and cache location, but the file is then read with the same
    safe loader as local files (fair-esm's own loader unpickles without restriction).
    """
    if not name.startswith("esm2"):
        raise ModelError(f"model name {name!r}: only ESM-2 models (esm2_*) are supported")
    path = pretrained_path(name)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            torch.hub.download_url_to_file(f"{FAIR_ESM_URL}/models/{name}.pt", str(path))
            torch.hub.download_url_to_file(
                f"{FAIR_ESM_URL}/regression/{name}-contact-regression.pt",
                str(path.with_name(f"{name}-contact-regression.pt")),
            )
        except (urllib.error.URLError, OSError) as err:
            raise ModelError(
                f"cannot download {name!r} ({err}); put the file at {path} or use "
                "`source: checkpoint` with a local path"
            ) from None
    return load_fair_esm_file(path)


def build_encoder(spec: ModelSpec) -> ESM2:
    if spec.source == "pretrained":
        return load_pretrained(spec.name)
    if spec.source == "checkpoint":
        return load_fair_esm_file(spec.path)
    arch = spec.architecture or Architecture(*ARCHITECTURES[spec.name])
    return build_random(arch, seed=spec.seed)


def architecture_of(encoder: ESM2) -> Architecture:
    return Architecture(
        num_layers=encoder.num_layers,
        embed_dim=encoder.embed_dim,
        attention_heads=encoder.attention_heads,
        token_dropout=bool(encoder.token_dropout),
    )


def num_layers_of(spec: ModelSpec) -> int:
    """The number of transformer layers, cheaply (used to build the DAG before any job runs)."""
    if spec.architecture is not None:
        return spec.architecture.num_layers
    if spec.source in ("pretrained", "random") and spec.name in ARCHITECTURES:
        return ARCHITECTURES[spec.name][0]
    path = Path(spec.path) if spec.source == "checkpoint" else pretrained_path(spec.name)
    cfg = _safe_torch_load(path)["cfg"]["model"]
    return int(cfg.encoder_layers)


def units_of(encoder: ESM2, layer_type: str) -> int:
    return get_module(encoder, layer_type, 0).out_features


def get_module(encoder: ESM2, layer_type: str, layer: int) -> nn.Linear:
    module = encoder.layers[layer]
    for part in LAYER_TYPES[layer_type].split("."):
        module = getattr(module, part)
    return module


class EsmClassifier(nn.Module):
    """ESM-2 encoder + linear head on the mean of the final-layer residue representations.

    Shapes: tokens (B, T) with BOS and EOS; hidden states (T, B, E) as in fair-esm's layers.
    The mean excludes padding, BOS and EOS.
    """

    def __init__(self, encoder: ESM2, num_classes: int):
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(encoder.embed_dim, num_classes)
        self.num_classes = num_classes

    @property
    def num_layers(self) -> int:
        return self.encoder.num_layers

    def residue_mask(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, T) bool: True at real residues (not BOS, EOS or padding)."""
        enc = self.encoder
        return (tokens != enc.padding_idx) & (tokens != enc.cls_idx) & (tokens != enc.eos_idx)

    def embed(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Token embedding exactly as `ESM2.forward` does it: x (T, B, E) and the padding mask."""
        enc = self.encoder
        padding_mask = tokens.eq(enc.padding_idx)  # (B, T)
        x = enc.embed_scale * enc.embed_tokens(tokens)
        if enc.token_dropout:
            x = x.masked_fill((tokens == enc.mask_idx).unsqueeze(-1), 0.0)
            mask_ratio_train = 0.15 * 0.8
            src_lengths = (~padding_mask).sum(-1)
            mask_ratio_observed = (tokens == enc.mask_idx).sum(-1).to(x.dtype) / src_lengths
            x = x * (1 - mask_ratio_train) / (1 - mask_ratio_observed)[:, None, None]
        x = x * (1 - padding_mask.unsqueeze(-1).type_as(x))
        return x.transpose(0, 1), (padding_mask if padding_mask.any() else None)

    def run_layers(
        self, x: torch.Tensor, padding_mask: torch.Tensor | None, start: int = 0, stop=None
    ) -> torch.Tensor:
        """Run transformer layers [start, stop) on x (T, B, E)."""
        for layer in self.encoder.layers[start:stop]:
            x, _ = layer(x, self_attn_padding_mask=padding_mask, need_head_weights=False)
        return x

    def classify(self, x: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Final layer norm, mean over residues, linear head: x (T, B, E) -> logits (B, C)."""
        x = self.encoder.emb_layer_norm_after(x).transpose(0, 1)  # (B, T, E)
        mask = self.residue_mask(tokens).unsqueeze(-1).to(x.dtype)  # (B, T, 1)
        pooled = (x * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        return self.head(pooled)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x, padding_mask = self.embed(tokens)
        return self.classify(self.run_layers(x, padding_mask), tokens)


def save_classifier(path: str | os.PathLike, model: EsmClassifier, meta: dict) -> None:
    """Write weights + plain metadata; readable with `torch.load(weights_only=True)`."""
    from kneurons.io import atomic_write

    payload = {
        "format": "kneurons-classifier-v1",
        "architecture": asdict(architecture_of(model.encoder)),
        "num_classes": model.num_classes,
        "meta": meta,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }

    def write(tmp):
        # through a file object: torch.save would otherwise name the archive inside the file
        # after the random temporary name, and identical weights would give different bytes
        with open(tmp, "wb") as fh:
            torch.save(payload, fh)

    atomic_write(path, write)


def load_classifier(path: str | os.PathLike, device="cpu") -> tuple[EsmClassifier, dict]:
    """Load a classifier written by `save_classifier` (weights only, nothing unpickled)."""
    path = Path(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ModelError(f"{path}: classifier checkpoint not found") from None
    except Exception as err:
        raise ModelError(f"{path}: unreadable classifier checkpoint ({err})") from None
    if not isinstance(payload, dict) or payload.get("format") != "kneurons-classifier-v1":
        raise ModelError(f"{path}: not a kneurons classifier checkpoint")
    encoder = build_random(Architecture(**payload["architecture"]))
    model = EsmClassifier(encoder, payload["num_classes"])
    model.load_state_dict(payload["state_dict"])
    return model.to(device).eval(), payload["meta"]


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)
