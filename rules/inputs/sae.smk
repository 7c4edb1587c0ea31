# Input functions and constants of rules/sae.smk (no rules here: snakemake --lint).

from kneurons.configuration import sae_latents

SAE = config_block("sae")
# The SAE layer types the config scores (vocab.LATENT_TYPES) and their sites: an SAE is trained
# for every layer of each of these sites.
LATENT_LAYER_TYPES = [t for t in LAYER_TYPES if t in vocab.LATENT_TYPES]
SAE_SITES = [t.removeprefix("sae_") for t in LATENT_LAYER_TYPES]


def sae_file(model, site, layer):
    return results(vocab.SAE_FILE).format(model=model, site=site, layer=layer)


def sae_inputs(wildcards):
    """The SAE files a job on a model splices in (kneurons.sae.load_analysis_model): every
    site's, every layer's; none when the config scores no latents."""
    return [
        sae_file(wildcards.model, site, layer)
        for site in SAE_SITES
        for layer in range(NUM_LAYERS[wildcards.model])
    ]


def latent_units(model):
    """SAE layer type -> its number of latents on `model` (random scores, pool sizes)."""
    return {
        f"sae_{site}": sae_latents(
            site, SHAPES[model].embed_dim, SAE["expansion"][site]
        )
        for site in SAE_SITES
    }


def sae_params(wildcards):
    """The training settings of one site's SAE (its own expansion factor)."""
    settings = {k: v for k, v in SAE.items() if k not in ("expansion", "flag")}
    return {**settings, "expansion": SAE["expansion"][wildcards.site]}


def sae_targets():
    if not SAE_SITES:
        return []
    return [
        results(path).format(model=model)
        for model in MODELS
        for path in (vocab.SAE_FIDELITY, vocab.SAE_PAGE)
    ]
