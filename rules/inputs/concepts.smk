# Input functions and constants of rules/concepts.smk (no rules here: snakemake --lint).

CONCEPTS = config_block("concepts")


def concept_params():
    keys = ("thresholds", "f1_pass", "n_sequences", "min_residues", "n_units", "seed")
    return {
        **{key: CONCEPTS[key] for key in keys},
        "layer_types": LAYER_TYPES,
        "crop": config["data"].get("crop", "n_terminal"),
    }


def concept_targets():
    if not CONCEPTS["enabled"]:
        return []
    return expand(results(vocab.CONCEPTS_PAGE), model=MODELS)
