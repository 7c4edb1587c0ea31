"""ESM-2 models: build (pretrained, local fair-esm file, random init), classify, save and load.

The classifier runs fair-esm's `ESM2` in three parts instead of calling `ESM2.forward`: `embed`
(as fair-esm does it), fair-esm's own transformer layers, and `classify` (final layer norm, mean
over residues, linear head); the LM and contact heads are skipped. The gradient engine
(`kneurons.scoring.integrals`) reuses `embed` and `classify` around its batch-first layers
(`kneurons.model.transformer`). `tests/test_model.py` checks the forward against fair-esm's own.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import asdict
from pathlib import Path

import esm
import torch
from esm.model.esm2 import ESM2
from torch import nn

from kneurons.errors import ModelError
from kneurons.model.checkpoints import download_pretrained, load_fair_esm, safe_torch_load
from kneurons.model.spec import ARCHITECTURES, Architecture, ModelSpec, check_architecture
from kneurons.vocab import LAYER_TYPES


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


def load_fair_esm_file(path: str | os.PathLike) -> ESM2:
    """Load an ESM-2 model from a file in fair-esm's format (as fair-esm's hub writes them).

    A `<stem>-contact-regression.pt` beside the file is used when present (contact head only).
    """
    path = Path(path)
    model_data = load_fair_esm(path)
    regression_path = path.with_name(path.stem + "-contact-regression.pt")
    regression = safe_torch_load(regression_path) if regression_path.exists() else None
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


def load_pretrained(name: str) -> ESM2:
    """Load a pretrained fair-esm model by name: from the torch hub cache, downloading it once.

    The download uses fair-esm's URLs and cache location, but the file is then read with the same
    safe loader as local files (fair-esm's own loader unpickles without restriction).
    """
    return load_fair_esm_file(download_pretrained(name))


def build_encoder(spec: ModelSpec) -> ESM2:
    """The encoder of a config model entry. Pretrained and checkpoint models take their shape
    from the weights; a given `architecture` must agree with it (`spec.check_architecture`)."""
    if spec.source in ("pretrained", "checkpoint"):
        if spec.source == "pretrained":
            encoder, origin = load_pretrained(spec.name), f"the pretrained {spec.name}"
        else:
            encoder, origin = load_fair_esm_file(spec.path), f"the checkpoint {spec.path}"
        check_architecture(spec, architecture_of(encoder), origin)
        return encoder
    arch = spec.architecture or Architecture(*ARCHITECTURES[spec.name])
    return build_random(arch, seed=spec.seed)


def architecture_of(encoder: ESM2) -> Architecture:
    return Architecture(
        num_layers=encoder.num_layers,
        embed_dim=encoder.embed_dim,
        attention_heads=encoder.attention_heads,
        token_dropout=bool(encoder.token_dropout),
    )


def units_of(encoder: ESM2, layer_type: str) -> int:
    return get_module(encoder, layer_type, 0).out_features


def get_module(encoder: ESM2, layer_type: str, layer: int) -> nn.Linear:
    """The module whose output units are `layer_type`'s on `layer`: a Linear for a neuron type,
    the latents of the SAE spliced there for a latent type (`kneurons.sae.splice`)."""
    module = encoder.layers[layer]
    for part in LAYER_TYPES[layer_type].split("."):
        found = getattr(module, part, None)
        if found is None:
            raise ModelError(
                f"no SAE spliced into layer {layer} for {layer_type}: its latents exist once "
                "the SAE is attached (kneurons.sae.attach_saes, rule input `saes`)"
            )
        module = found
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

    def classify(self, x: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Final layer norm, mean over residues, linear head: x (T, B, E) -> logits (B, C)."""
        x = self.encoder.emb_layer_norm_after(x).transpose(0, 1)  # (B, T, E)
        mask = self.residue_mask(tokens).unsqueeze(-1).to(x.dtype)  # (B, T, 1)
        pooled = (x * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        return self.head(pooled)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Logits (B, C): fair-esm's own layers between `embed` and `classify`."""
        x, padding_mask = self.embed(tokens)
        for layer in self.encoder.layers:
            x, _ = layer(x, self_attn_padding_mask=padding_mask, need_head_weights=False)
        return self.classify(x, tokens)


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
        with warnings.catch_warnings():  # the one-line error below says it all
            warnings.simplefilter("ignore")
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ModelError(f"{path}: classifier checkpoint not found") from None
    except Exception as err:
        raise ModelError(f"{path}: unreadable classifier checkpoint ({first_line(err)})") from None
    if not isinstance(payload, dict) or payload.get("format") != "kneurons-classifier-v1":
        raise ModelError(f"{path}: not a kneurons classifier checkpoint")
    try:
        encoder = build_random(Architecture(**payload["architecture"]))
        model = EsmClassifier(encoder, payload["num_classes"])
        model.load_state_dict(payload["state_dict"])
        meta = payload["meta"]
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise ModelError(
            f"{path}: incomplete or damaged classifier checkpoint ({first_line(err)})"
        ) from None
    return model.to(device).eval(), meta


def first_line(err: BaseException) -> str:
    """An exception's message as one line: its first non-empty line, else its type."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    if not lines:
        return type(err).__name__
    return f"{type(err).__name__}: {lines[0]}" if isinstance(err, KeyError) else lines[0]
