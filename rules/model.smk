rule finetune:
    input:
        train="results/data/train.parquet",
        lib=library("model", "train", "evaluate", "batching"),
        val="results/data/val.parquet",
        test="results/data/test.parquet",
        card="results/data/dataset_card.json",
    output:
        checkpoint="results/models/{model}/model.pt",
        info="results/models/{model}/model.json",
        metrics="results/models/{model}/metrics.json",
        history="results/models/{model}/training_log.tsv",
    log:
        "logs/finetune/{model}.log",
    benchmark:
        "results/benchmarks/finetune/{model}.tsv"
    conda:
        "../envs/kneurons.yaml"
    threads: 8
    resources:
        mem_mb=memory(16000),
        runtime=24 * 60,
        gpu=gpu_count(),
    params:
        model=model_config,
        finetune=config["finetune"],
    script:
        "../workflow/scripts/finetune.py"
