"""Sparse autoencoders on the fine-tuned model's sites, whose latents are units like neurons:
the SAE (`autoencoder`), its training and fidelity (`train`, `fidelity`), and the splice into
the classifier (`splice`). docs/methods.md, "SAE latents"."""

from kneurons.sae.splice import (
    SITES,
    analysis_digest,
    attach_saes,
    layer_type_of,
    load_analysis_model,
    load_sae,
    save_sae,
    spliced,
)

__all__ = [
    "SITES",
    "analysis_digest",
    "attach_saes",
    "layer_type_of",
    "load_analysis_model",
    "load_sae",
    "save_sae",
    "spliced",
]
