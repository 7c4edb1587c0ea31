# Input functions and constants of rules/evaluation.smk (no rules here: snakemake --lint).


def eval_files(model):
    """Every masked evaluation of a model: modes x scopes x directions x methods x targets x
    retention levels."""
    files = []
    for scope in SCOPES:
        files += expand(
            results(vocab.EVAL_FILE),
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
        results(vocab.EVAL_FILE),
        model="{model}",
        mode="{mode}",
        scope="{scope}",
        target="{target}",
        direction="{direction}",
        method=METHODS,
        retention=RETENTIONS,
    )


def model_eval_files():
    """The outputs of one evaluate_masked_model job (wildcards model, mode, scope, direction;
    scope layer_type or layer): every scored layer type, method and retention level."""
    return expand(
        results(vocab.EVAL_FILE),
        model="{model}",
        mode="{mode}",
        scope="{scope}",
        target=LAYER_TYPES,
        direction="{direction}",
        method=METHODS,
        retention=RETENTIONS,
    )


# The scopes whose targets are the layer types (not one group): evaluate_masked_model's.
LAYER_TYPE_SCOPES = [s for s in vocab.SCOPES if s not in vocab.GROUPS]


def eval_selections(wildcards):
    vocab.check_target(wildcards.scope, wildcards.target)
    return [
        selection_file(wildcards.model, wildcards.scope, method, wildcards.target)
        for method in METHODS
    ]


def model_eval_selections(wildcards):
    return [
        selection_file(wildcards.model, wildcards.scope, method, layer_type)
        for layer_type in LAYER_TYPES
        for method in METHODS
    ]


def eval_mean_files(wildcards):
    if wildcards.mode != "mean":
        return []
    if hasattr(wildcards, "target"):  # evaluate_masked: one target
        layer_types = vocab.target_layer_types(wildcards.target, LAYER_TYPES)
    else:  # evaluate_masked_model: every layer type
        layer_types = LAYER_TYPES
    return expand(
        results(vocab.MEANS_FILE), model=wildcards.model, layer_type=layer_types
    )


def group_ranking_param(wildcards):
    """Only group scopes depend on it, so changing it reruns only their evaluations."""
    return EVALUATION["group_ranking"] if vocab.is_group(wildcards.scope) else None
