# Masked evaluation: one job, and one cached target, per (model, mode, scope, method, target,
# direction, retention). A target is a layer type, or a group's name for group scopes.


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


def eval_selection(wildcards):
    vocab.check_target(wildcards.scope, wildcards.target)
    return selection_file(
        wildcards.model, wildcards.scope, wildcards.method, wildcards.target
    )


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


rule mean_activations:
    input:
        checkpoint="results/models/{model}/model.pt",
        lib=script_library("mean_activations"),
        train="results/data/train.parquet",
    output:
        vocab.MEANS_FILE,
    log:
        "logs/mean_activations/{model}/{layer_type}.log",
    benchmark:
        "results/benchmarks/mean_activations/{model}/{layer_type}.tsv"
    conda:
        "../envs/kneurons.yaml"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
        gpu=gpu_count(),
    params:
        options=EVALUATION["mean_ablation"],
        max_tokens=EVALUATION["max_tokens"],
    script:
        "../workflow/scripts/mean_activations.py"


rule evaluate_unmasked:
    input:
        checkpoint="results/models/{model}/model.pt",
        lib=script_library("evaluate_masked"),
        test="results/data/test.parquet",
    output:
        vocab.UNMASKED_FILE,
    log:
        "logs/evaluate_unmasked/{model}.log",
    conda:
        "../envs/kneurons.yaml"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
        gpu=gpu_count(),
    params:
        max_tokens=EVALUATION["max_tokens"],
    script:
        "../workflow/scripts/evaluate_masked.py"


rule evaluate_masked:
    input:
        checkpoint="results/models/{model}/model.pt",
        lib=script_library("evaluate_masked"),
        test="results/data/test.parquet",
        selection=eval_selection,
        means=eval_mean_files,
    output:
        vocab.EVAL_FILE,
    log:
        "logs/evaluate_masked/{model}/{mode}/{scope}/{method}/{target}/{direction}{retention}.log",
    benchmark:
        "results/benchmarks/evaluate_masked/{model}/{mode}/{scope}/{method}/{target}/{direction}{retention}.tsv"
    conda:
        "../envs/kneurons.yaml"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
        gpu=gpu_count(),
    params:
        group_ranking=group_ranking_param,
        max_tokens=EVALUATION["max_tokens"],
    script:
        "../workflow/scripts/evaluate_masked.py"
