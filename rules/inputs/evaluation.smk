# Input functions and constants of rules/evaluation.smk (no rules here: snakemake --lint).


def eval_files(model):
    """Every masked evaluation of a model: modes x scopes x directions x methods x targets x
    retention levels."""
    files = []
    for scope in SCOPES:
        files += expand(
            vocab.EVAL_FILE,
            model=model,
            mode=MODES,
            scope=scope,
            method=METHODS,
            target=vocab.scope_targets(scope, LAYER_TYPES),
            direction=DIRECTIONS,
            retention=RETENTIONS,
        )
    return files


def target_eval_files():
    """The outputs of one evaluation job (wildcards model, mode, scope, target, direction):
    every method at every retention level."""
    return expand(
        vocab.EVAL_FILE,
        model="{model}",
        mode="{mode}",
        scope="{scope}",
        target="{target}",
        direction="{direction}",
        method=METHODS,
        retention=RETENTIONS,
    )


def eval_selections(wildcards):
    vocab.check_target(wildcards.scope, wildcards.target)
    return [
        selection_file(wildcards.model, wildcards.scope, method, wildcards.target)
        for method in METHODS
    ]


def eval_mean_files(wildcards):
    if wildcards.mode != "mean":
        return []
    return expand(
        vocab.MEANS_FILE,
        model=wildcards.model,
        layer_type=vocab.target_layer_types(wildcards.target, LAYER_TYPES),
    )


def group_ranking_param(wildcards):
    """Only group scopes depend on it, so changing it reruns only their evaluations."""
    return EVALUATION["group_ranking"] if vocab.is_group(wildcards.scope) else None
