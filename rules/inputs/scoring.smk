# Input functions and constants of rules/scoring.smk (no rules here: snakemake --lint).


def scoring_params(wildcards):
    """Only the settings a method depends on, so changing IG steps leaves activation alone."""
    scoring = config["scoring"]
    return {
        "n_examples": scoring["n_examples"],
        "seed": scoring["seed"],
        "per_class": scoring["per_class"],
        "options": scoring.get(wildcards.method, {}),  # the method's own block
    }


def layer_score_files():
    """The outputs of one scoring job (wildcards model, method, layer): every layer type's
    score file of that layer."""
    return expand(
        vocab.SCORE_FILE,
        model="{model}",
        method="{method}",
        layer="{layer}",
        layer_type=LAYER_TYPES,
    )
