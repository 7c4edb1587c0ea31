rule evaluate_unmasked:
    input:
        checkpoint="results/models/{model}/model.pt",
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
        test="results/data/test.parquet",
        scores=score_files,
    output:
        "results/eval/{model}/{method}/{layer_type}/keep{retention}.parquet",
    log:
        "logs/evaluate_masked/{model}/{method}/{layer_type}/keep{retention}.log",
    benchmark:
        "results/benchmarks/evaluate_masked/{model}/{method}/{layer_type}/keep{retention}.tsv"
    conda:
        "../envs/kneurons.yaml"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
        gpu=gpu_count(),
    script:
        "../workflow/scripts/evaluate_masked.py"
