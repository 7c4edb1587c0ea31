"""What a model is, without building it: the config's `models.<id>` entry and the known ESM-2
shapes. Imports no torch, so the Snakemake process can size the DAG (layers per model) from it;
only a local checkpoint (or an unknown pretrained name) is opened, with the safe loader.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kneurons.errors import ModelError

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


def num_layers_of(spec: ModelSpec) -> int:
    """The number of transformer layers, cheaply (used to build the DAG before any job runs)."""
    if spec.architecture is not None:
        return spec.architecture.num_layers
    if spec.source in ("pretrained", "random") and spec.name in ARCHITECTURES:
        return ARCHITECTURES[spec.name][0]
    from kneurons.checkpoints import pretrained_path, safe_torch_load  # torch: only for files

    if spec.source == "checkpoint":
        path = Path(spec.path)
    else:
        path = pretrained_path(spec.name)
    cfg = safe_torch_load(path)["cfg"]["model"]
    return int(cfg.encoder_layers)
