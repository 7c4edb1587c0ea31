# Input functions and constants of rules/selection.smk (no rules here: snakemake --lint).


def selection_inputs(wildcards):
    vocab.check_target(wildcards.scope, wildcards.target)
    layer_types = vocab.target_layer_types(wildcards.target, LAYER_TYPES)
    return score_files(wildcards.model, [wildcards.method], layer_types)
