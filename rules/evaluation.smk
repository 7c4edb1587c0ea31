# Masked evaluation: one cached target per (model, mode, scope, method, target, direction,
# retention), one job per (model, mode, scope, target, direction) that writes all its methods and
# retention levels: one start-up, model load and tokenisation for all of them, several masks per
# forward pass, and masks evaluated before taken from the store (kneurons.store), so that a new
# retention level or random seed computes only its own masks (README, "Throughput"). A target is
# a layer type, or a group's name for group scopes. For the models of `evaluation.jobs`
# (auto: those under a million encoder weights, whose jobs are all start-up), one job
# (evaluate_masked_model) covers every layer type of a (mode, scope, direction) instead.


include: "inputs/evaluation.smk"


ruleorder: evaluate_masked_model > evaluate_masked


rule mean_activations:
    input:
        checkpoint=model_file("{model}"),
        saes=sae_inputs,
        lib=script_library("mean_activations"),
        train=DATA_FILES["train"],
    output:
        results(vocab.MEANS_FILE),
    log:
        log_path("mean_activations/{model}/{layer_type}.log"),
    benchmark:
        results("benchmarks/mean_activations/{model}/{layer_type}.tsv")
    conda:
        "../envs/kneurons.yaml"
    threads: model_threads(2)
    resources:
        mem_mb=4000,
        runtime=60,
        gpu=gpu_count(),
        gpu_percent=gpu_share("forward", EVALUATION["max_tokens"]),
    params:
        job=JOB,
        options=EVALUATION["mean_ablation"],
        max_tokens=EVALUATION["max_tokens"],
    script:
        "../workflow/scripts/mean_activations.py"


rule evaluate_unmasked:
    input:
        checkpoint=model_file("{model}"),
        lib=script_library("evaluate_unmasked"),
        test=DATA_FILES["test"],
    output:
        results(vocab.UNMASKED_FILE),
    log:
        log_path("evaluate_unmasked/{model}.log"),
    conda:
        "../envs/kneurons.yaml"
    threads: model_threads(2)
    resources:
        mem_mb=4000,
        runtime=60,
        gpu=gpu_count(),
        gpu_percent=gpu_share("forward", EVALUATION["max_tokens"]),
    params:
        job=JOB,
        max_tokens=EVALUATION["max_tokens"],
    script:
        "../workflow/scripts/evaluate_unmasked.py"


rule evaluate_masked:
    input:
        checkpoint=model_file("{model}"),
        saes=sae_inputs,
        lib=script_library("evaluate_masked"),
        test=DATA_FILES["test"],
        selections=eval_selections,
        means=eval_mean_files,
    output:
        target_eval_files(),
    log:
        log_path("evaluate_masked/{model}/{mode}/{scope}/{target}/{direction}.log"),
    benchmark:
        results(
            "benchmarks/evaluate_masked/{model}/{mode}/{scope}/{target}/{direction}.tsv"
        )
    conda:
        "../envs/kneurons.yaml"
    threads: model_threads(2)
    resources:
        mem_mb=4000,
        runtime=60,
        gpu=gpu_count(),
        gpu_percent=gpu_share("forward", EVALUATION["max_tokens"]),
    params:
        job=JOB,
        group_ranking=group_ranking_param,
        max_tokens=EVALUATION["max_tokens"],
        store=vocab.STORE_DIR,
    script:
        "../workflow/scripts/evaluate_masked.py"


# Small models: one job per (model, mode, scope, direction) for every layer type (config
# `evaluation.jobs`); the same job body as evaluate_masked.
use rule evaluate_masked as evaluate_masked_model with:
    input:
        checkpoint=model_file("{model}"),
        saes=sae_inputs,
        lib=script_library("evaluate_masked"),
        test=DATA_FILES["test"],
        selections=model_eval_selections,
        means=eval_mean_files,
    output:
        model_eval_files(),
    log:
        log_path("evaluate_masked_model/{model}/{mode}/{scope}/{direction}.log"),
    benchmark:
        results(
            "benchmarks/evaluate_masked_model/{model}/{mode}/{scope}/{direction}.tsv"
        )
    wildcard_constraints:
        model=PER_MODEL_PATTERN,
        scope=one_of(LAYER_TYPE_SCOPES),
    params:
        job=JOB,
        group_ranking=None,
        max_tokens=EVALUATION["max_tokens"],
        store=vocab.STORE_DIR,
