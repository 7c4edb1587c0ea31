# Masked evaluation: one job, and one cached target, per (model, mode, scope, method, target,
# direction, retention). A target is a layer type, or a group's name for group scopes.


include: "inputs/evaluation.smk"


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
        job=JOB,
        options=EVALUATION["mean_ablation"],
        max_tokens=EVALUATION["max_tokens"],
    script:
        "../workflow/scripts/mean_activations.py"


rule evaluate_unmasked:
    input:
        checkpoint="results/models/{model}/model.pt",
        lib=script_library("evaluate_unmasked"),
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
        job=JOB,
        max_tokens=EVALUATION["max_tokens"],
    script:
        "../workflow/scripts/evaluate_unmasked.py"


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
        job=JOB,
        group_ranking=group_ranking_param,
        max_tokens=EVALUATION["max_tokens"],
    script:
        "../workflow/scripts/evaluate_masked.py"
