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
    # the shape for "random"; for "pretrained" and "checkpoint" the weights give the shape, and
    # a given architecture is only checked against them (`shape_of`)
    architecture: Architecture | None = None
    seed: int = 0  # initialisation seed for "random"
    model_id: str | None = None  # the config's id, to name `models.<id>` in messages

    @property
    def key(self) -> str:
        return f"models.{self.model_id}" if self.model_id else "model"

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
            model_id=model_id,
        )
        key = spec.key
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


def describe(arch: Architecture) -> str:
    return (
        f"num_layers {arch.num_layers}, embed_dim {arch.embed_dim}, "
        f"attention_heads {arch.attention_heads}"
    )


def check_architecture(spec: ModelSpec, found: Architecture, origin: str) -> None:
    """A given `architecture` of a pretrained or checkpoint model must agree with the shape of
    its weights (`found`, read from `origin`): one line naming the key and both shapes."""
    given = spec.architecture
    if given is None or spec.source == "random":
        return
    fields = ("num_layers", "embed_dim", "attention_heads")
    if any(getattr(given, f) != getattr(found, f) for f in fields):
        raise ModelError(
            f"{spec.key}.architecture ({describe(given)}) does not match {origin} "
            f"({describe(found)}): the shape comes from the weights; remove `architecture` "
            "or correct it"
        )


def shape_of(spec: ModelSpec) -> Architecture:
    """The encoder's shape, cheaply (the DAG needs it before any job runs): for "random" its
    `architecture` or known `name`; for "pretrained" and "checkpoint" the weights' own shape (a
    known pretrained name from the table, otherwise the file's fair-esm config), which a given
    `architecture` must match."""
    if spec.source == "random":
        if spec.architecture is not None:
            return spec.architecture
        if spec.name in ARCHITECTURES:
            return Architecture(*ARCHITECTURES[spec.name])
        raise ModelError(f"{spec.key}: source 'random' needs `architecture` or a known `name`")
    if spec.source == "pretrained" and spec.name in ARCHITECTURES:
        found = Architecture(*ARCHITECTURES[spec.name])
        origin = f"the pretrained {spec.name}"
    else:
        # torch: only for files
        from kneurons.model.checkpoints import fair_esm_shape, load_fair_esm, pretrained_path

        path = Path(spec.path) if spec.source == "checkpoint" else pretrained_path(spec.name)
        found = Architecture(**fair_esm_shape(load_fair_esm(path)))
        origin = f"the checkpoint {path}"
    check_architecture(spec, found, origin)
    return found


def num_layers_of(spec: ModelSpec) -> int:
    """The number of transformer layers (`shape_of`), used to build the DAG."""
    return shape_of(spec).num_layers
