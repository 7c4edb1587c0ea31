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


def scoring_kind(wildcards):
    """What a scoring job's passes keep on the GPU (kneurons.model.resources)."""
    return "forward" if wildcards.method == "activation" else "gradient"


def scoring_tokens(wildcards):
    """A scoring job's token budget per pass (the method's `max_tokens`)."""
    return config["scoring"].get(wildcards.method, {}).get("max_tokens", 8192)


def layer_score_files():
    """The outputs of one scoring job (wildcards model, method, layer): every layer type's
    score file of that layer."""
    return expand(
        results(vocab.SCORE_FILE),
        model="{model}",
        method="{method}",
        layer="{layer}",
        layer_type=LAYER_TYPES,
    )
