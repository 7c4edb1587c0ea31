# Input functions of rules/store.smk (no rules here: snakemake --lint).


def store_targets():
    """Every output of this config that records store entries: score files of the scored
    methods, masked evaluations, class-specific evaluations and residue maps."""
    files = []
    for model in MODELS:
        files += score_files(model, SELECTION_METHODS, LAYER_TYPES)
        files += eval_files(model)
        if CLASS_SPECIFIC["enabled"]:
            files += class_eval_files(model)
        if RESIDUES.get("enabled", False):
            files += model_residue_files(model)
    return files
