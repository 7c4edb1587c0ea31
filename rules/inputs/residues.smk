# Input functions and constants of rules/residues.smk (no rules here: snakemake --lint).


def residue_methods():
    """Non-random methods as configured, plus the first `random_seeds` random instances."""
    n_random = RESIDUES.get("random_seeds", 3)
    return SELECTION_METHODS + [
        m for m in METHODS if vocab.is_random(m) and vocab.parse_method(m)[1] < n_random
    ]


def residue_retentions():
    return [vocab.format_retention(r) for r in RESIDUES.get("retention", [])]


def residue_params():
    keys = ("n_sequences", "n_plotted", "steps", "quadrature", "seed")
    keys += ("adaptive", "rtol", "atol", "max_steps")
    return {key: RESIDUES[key] for key in keys}


def residue_map_files(wildcards):
    return model_residue_files(wildcards.model)


def model_residue_files(model):
    """Every residue map of a model: methods x layer types x retention levels."""
    return expand(
        results(vocab.RESIDUE_FILE),
        model=model,
        method=residue_methods(),
        layer_type=LAYER_TYPES,
        retention=residue_retentions(),
    )


def layer_type_residue_files(pattern):
    """The outputs of one map_residues job (wildcards model, layer_type): `pattern`
    (vocab.RESIDUE_FILE, vocab.RESIDUE_PLOT) for every mapped method and retention level.
    """
    return expand(
        results(pattern),
        model="{model}",
        method=residue_methods(),
        layer_type="{layer_type}",
        retention=residue_retentions(),
    )


def residue_selections(wildcards):
    """The selections of the mapped units, one per method: the top r% of one layer type over
    all its layers."""
    return [
        selection_file(wildcards.model, "layer_type", method, wildcards.layer_type)
        for method in residue_methods()
    ]


def sites_table():
    """Planted motifs of the synthetic data, or sites annotated in the input TSV."""
    data = config["data"]
    if not data.get("input") and data.get("synthetic") is not None:
        return results(vocab.SYNTHETIC_SITES)
    return results(vocab.SITES_TABLE)


def residue_targets():
    if not RESIDUES.get("enabled", False):
        return []
    return expand(results("summary/{model}/site_recovery.md"), model=MODELS)
