# Masked evaluation: one job, and one cached target, per (model, mode, scope, method, target,
# direction, retention). A target is a layer type, or a group's name for group scopes.


rule mean_activations:
    input:
        checkpoint="results/models/{model}/model.pt",
        lib=library("model", "masking", "batching"),
        train="results/data/train.parquet",
    output:
        "results/activations/{model}/{layer_type}.parquet",
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
        options=config["evaluation"]["mean_ablation"],
    script:
        "../workflow/scripts/mean_activations.py"


rule evaluate_unmasked:
    input:
        checkpoint="results/models/{model}/model.pt",
        lib=library("model", "evaluate", "batching"),
        test="results/data/test.parquet",
    output:
        "results/eval/{model}/unmasked.parquet",
    log:
        "logs/evaluate_unmasked/{model}.log",
    conda:
        "../envs/kneurons.yaml"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
        gpu=gpu_count(),
    script:
        "../workflow/scripts/evaluate_masked.py"


rule evaluate_masked:
    input:
        checkpoint="results/models/{model}/model.pt",
        lib=library("model", "masking", "evaluate", "batching"),
        test="results/data/test.parquet",
        scores=eval_score_files,
        means=eval_mean_files,
    output:
        EVAL_FILE,
    log:
        "logs/evaluate_masked/{model}/{mode}/{scope}/{method}/{layer_type}/{direction}{retention}.log",
    benchmark:
        "results/benchmarks/evaluate_masked/{model}/{mode}/{scope}/{method}/{layer_type}/{direction}{retention}.tsv"
    wildcard_constraints:
        layer_type=one_of(EVAL_TARGETS),
    conda:
        "../envs/kneurons.yaml"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
        gpu=gpu_count(),
    params:
        group_ranking=group_ranking_param,
    script:
        "../workflow/scripts/evaluate_masked.py"
