# Fine-tuning: one classifier per entry of `models:` (the {model} wildcard).


include: "inputs/model.smk"


# No inputs: it runs in the first wave of jobs, so that an offline machine stops at once.
rule fetch_pretrained:
    input:
        lib=script_library("fetch_pretrained"),
    output:
        results(vocab.WEIGHTS_RECORD),
    log:
        log_path("fetch_pretrained/{model}.log"),
    priority: 100
    # On the submit host: compute nodes of many clusters have no internet.
    localrule: True
    conda:
        "../envs/kneurons.yaml"
    resources:
        mem_mb=2000,
        runtime=120,
    params:
        job=JOB,
        name=pretrained_name,
    script:
        "../workflow/scripts/fetch_pretrained.py"


rule finetune:
    input:
        train=DATA_FILES["train"],
        lib=script_library("finetune"),
        val=DATA_FILES["val"],
        test=DATA_FILES["test"],
        card=results(vocab.DATASET_CARD),
        weights=pretrained_weights,
    output:
        checkpoint=model_file("{model}"),
        info=results(vocab.MODEL_INFO),
        metrics=results(vocab.MODEL_METRICS),
        history=results("models/{model}/training_log.tsv"),
    log:
        log_path("finetune/{model}.log"),
    benchmark:
        results("benchmarks/finetune/{model}.tsv")
    conda:
        "../envs/kneurons.yaml"
    threads: model_threads(8)
    resources:
        mem_mb=memory(16000),
        runtime=24 * 60,
        gpu=gpu_count(),
        gpu_percent=gpu_share("train", config["finetune"]["max_tokens"]),
    params:
        job=JOB,
        model=model_config,
        finetune=finetune_options,
    script:
        "../workflow/scripts/finetune.py"
