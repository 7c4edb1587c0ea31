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
