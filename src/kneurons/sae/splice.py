"""SAEs spliced into the classifier, so that their latents are units like neurons.

A site is where an SAE reads the model (`SITES`): `resid`, the residual stream after a layer (the
layer's output), and `ffn`, the FFN's hidden layer (GELU(fc1(.)), the input of fc2). An
`SaeSite` on layer l replaces the site's activation x by

    x' = x + W_dec (z' - z) / scale,        z = TopK(ReLU(W_enc (x scale - b_dec) + b_enc)),

where z' is the output of the site's `latents` module: z itself unless a forward hook changes it
(a mask, a scaling alpha, a mean). The reconstruction error is kept: with no hook, z' - z is 0
and x' is x exactly, so the spliced model computes what the model computes, bit for bit (a
site whose latents no hook reads or changes returns x without encoding it: the SAEs cost
nothing where they are not analysed); a hook that silences latent i removes exactly its decoder
direction times its activation. The latents
module is the unit module of the layer types `sae_resid` / `sae_ffn`
(`kneurons.vocab.LATENT_TYPES`, `kneurons.model.classifier.get_module`), so scoring, masking,
mean ablation, class masks and profiles use it as they use a Linear's output.

`mode` (`spliced`): "exact" (the above), "reconstruction" (x' = the SAE's reconstruction, the
error dropped: the fidelity test) or "zero" (x' = 0: the site ablated).

The SAE file (`save_sae`/`load_sae`, read with `weights_only=True`) records the parent
checkpoint's SHA-256, the model id, site, layer and normalisation; `attach_saes` refuses an SAE
of another checkpoint, site, layer or width with one line.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

from kneurons.errors import ModelError
from kneurons.sae.autoencoder import TopKSAE

SITES = ("resid", "ffn")  # config `sae.sites`; layer type `sae_<site>`
FORMAT = "kneurons-sae-v1"
MODES = ("exact", "reconstruction", "zero")


def layer_type_of(site: str) -> str:
    return f"sae_{site}"


def site_width(site: str, embed_dim: int) -> int:
    """The activation width a site's SAE reads: embed_dim (resid) or 4 x embed_dim (ffn)."""
    if site not in SITES:
        raise ValueError(f"unknown SAE site {site!r}; choose from {', '.join(SITES)}")
    return embed_dim * (4 if site == "ffn" else 1)


class Latents(nn.Module):
    """The latent activations of a site (identity: hooks on it see and change z). `weight` and
    `out_features` stand in for a Linear's, for the code that sizes masks by the module."""

    def __init__(self, sae: TopKSAE):
        super().__init__()
        self.out_features = sae.n_latents
        object.__setattr__(self, "_sae", sae)  # not a submodule: the site owns the SAE

    @property
    def weight(self) -> torch.Tensor:
        return self._sae.encoder.weight

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z


class SaeSite(nn.Module):
    """One SAE spliced into one site (module docstring)."""

    def __init__(self, sae: TopKSAE, site: str, layer: int, meta: dict | None = None):
        super().__init__()
        self.sae = sae
        self.latents = Latents(sae)
        self.site, self.layer = site, int(layer)
        self.meta = dict(meta or {})
        self.mode = "exact"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "zero":
            return torch.zeros_like(x)
        if self.mode == "exact" and not self.latents._forward_hooks:
            return x  # nothing reads or changes the latents: x' is x, no need to encode
        z = self.sae.encode(x)
        if self.mode == "reconstruction":
            return self.sae.decode(self.latents(z)).to(x.dtype)
        changed = self.latents(z.clone())  # hooks may edit in place
        if changed is z or (not changed.requires_grad and torch.equal(changed, z)):
            return x
        return x + self.sae.latent_change(changed - z).to(x.dtype)


def save_sae(path: str | os.PathLike, sae: TopKSAE, meta: dict) -> None:
    """Weights + plain metadata, atomically; `load_sae` reads it without unpickling."""
    from kneurons.io import atomic_write

    payload = {
        "format": FORMAT,
        "shape": {"d_in": sae.d_in, "n_latents": sae.n_latents, "k": sae.k},
        "meta": meta,
        "state_dict": {k: v.detach().cpu() for k, v in sae.state_dict().items()},
    }

    def write(tmp):
        with open(tmp, "wb") as fh:  # a file object: the archive name does not vary
            torch.save(payload, fh)

    atomic_write(path, write)


def load_sae(path: str | os.PathLike) -> tuple[TopKSAE, dict]:
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ModelError(f"{path}: SAE file not found") from None
    except Exception as err:
        raise ModelError(f"{path}: unreadable SAE file ({str(err).splitlines()[0]})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ModelError(f"{path}: not a kneurons SAE file")
    try:
        sae = TopKSAE(**payload["shape"])
        sae.load_state_dict(payload["state_dict"])
        meta = dict(payload["meta"])
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise ModelError(f"{path}: incomplete or damaged SAE file ({err})") from None
    return sae.eval(), meta


def _register(model, site_module: SaeSite):
    """Put the site on its layer (attribute `sae_<site>`) and hook it into the forward."""
    layer = model.encoder.layers[site_module.layer]
    setattr(layer, layer_type_of(site_module.site), site_module)
    if site_module.site == "ffn":

        def before_fc2(_module, args):
            return (site_module(args[0]), *args[1:])

        return layer.fc2.register_forward_pre_hook(before_fc2)

    def after_layer(_module, _inputs, output):
        return (site_module(output[0]), *output[1:])

    return layer.register_forward_hook(after_layer)


def attach_saes(
    model, paths: Sequence[str | os.PathLike], checkpoint_sha256: str
) -> dict[tuple[str, int], SaeSite]:
    """Splice the SAE files `paths` into `model` (an `EsmClassifier` loaded from the checkpoint
    whose SHA-256 is `checkpoint_sha256`). An SAE trained on another checkpoint, a site or layer
    the model lacks, a second SAE for one site, or a width that does not fit: one line naming
    the file. Returns the sites by (layer type, layer)."""
    sites: dict[tuple[str, int], SaeSite] = {}
    device = next(model.parameters()).device
    for path in paths:
        sae, meta = load_sae(path)
        parent = meta.get("checkpoint_sha256")
        if parent != checkpoint_sha256:
            raise ModelError(
                f"{path}: an SAE of another model (trained on checkpoint {str(parent)[:12]}..., "
                f"this model is {checkpoint_sha256[:12]}...): retrain it (rule train_sae)"
            )
        site, layer = meta.get("site"), meta.get("layer")
        if site not in SITES or not isinstance(layer, int):
            raise ModelError(f"{path}: SAE metadata names no known site and layer")
        if not 0 <= layer < model.num_layers:
            raise ModelError(f"{path}: SAE of layer {layer}, the model has {model.num_layers}")
        width = site_width(site, model.encoder.embed_dim)
        if sae.d_in != width:
            raise ModelError(f"{path}: SAE reads {sae.d_in} values, site {site} has {width}")
        key = (layer_type_of(site), layer)
        if key in sites:
            raise ModelError(f"{path}: a second SAE for {site} layer {layer}")
        module = SaeSite(sae.to(device), site, layer, meta)
        _register(model, module)
        sites[key] = module
    return sites


def attached_sites(model) -> list[SaeSite]:
    """The SAE sites spliced into `model`, by layer then site."""
    out = []
    for layer in model.encoder.layers:
        for name in ("sae_resid", "sae_ffn"):
            site = getattr(layer, name, None)
            if isinstance(site, SaeSite):
                out.append(site)
    return out


@contextmanager
def spliced(sites: Sequence[SaeSite], mode: str) -> Iterator[None]:
    """Within the block, the `sites` run in `mode` (module docstring); then "exact" again."""
    if mode not in MODES:
        raise ValueError(f"unknown splice mode {mode!r}; choose from {', '.join(MODES)}")
    try:
        for site in sites:
            site.mode = mode
        yield
    finally:
        for site in sites:
            site.mode = "exact"


def load_analysis_model(checkpoint, saes: Sequence[str] = (), device="cpu"):
    """The classifier of `checkpoint` with the SAE files `saes` spliced in (none: the plain
    classifier). Returns (model, meta, digest): `digest` names what the model computes, for
    store keys and metadata: the checkpoint's SHA-256, or with SAEs a SHA-256 over it and the
    SAE files' (an SAE retrained is a new model for every result that reads it)."""
    from kneurons.io import file_sha256
    from kneurons.model.classifier import load_classifier

    model, meta = load_classifier(checkpoint, device=device)
    saes = [str(path) for path in saes]
    if saes:
        attach_saes(model, saes, file_sha256(checkpoint))
    return model, meta, analysis_digest(checkpoint, saes)


def analysis_digest(checkpoint, saes: Sequence[str] = ()) -> str:
    """What `load_analysis_model` returns as `digest`, without loading anything."""
    import hashlib
    import json

    from kneurons.io import file_sha256

    checkpoint_sha256 = file_sha256(checkpoint)
    if not saes:
        return checkpoint_sha256
    record = {"checkpoint": checkpoint_sha256, "saes": sorted(file_sha256(p) for p in saes)}
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()
