# One job per (model, method, layer), writing one score file per layer type: the layer types of
# a layer share the job's start-up and model load, and the gradient methods put their modules in
# the same batches. On a cluster the expensive gradient jobs still spread out over layers. A
# module scored before with the same checkpoint, examples, settings and code is taken from the
# store (kneurons.store), so a new layer type in the config computes only itself (README,
# "Scoring methods" and "Throughput").


include: "inputs/scoring.smk"


rule score_neurons:
    input:
        checkpoint=model_file("{model}"),
        saes=sae_inputs,
        lib=script_library("score_neurons"),
        train=DATA_FILES["train"],
    output:
        layer_score_files(),
    log:
        log_path("score_neurons/{model}/{method}/layer{layer}.log"),
    benchmark:
        results("benchmarks/score_neurons/{model}/{method}/layer{layer}.tsv")
    wildcard_constraints:
        method=one_of(vocab.SCORING_METHODS),
    conda:
        "../envs/kneurons.yaml"
    threads: model_threads(4)
    resources:
        mem_mb=8000,
        runtime=12 * 60,
        gpu=gpu_count(),
        gpu_percent=gpu_share(scoring_kind, scoring_tokens),
    params:
        job=JOB,
        scoring=scoring_params,
        store=vocab.STORE_DIR,
    script:
        "../workflow/scripts/score_neurons.py"


# Random scores need only the layer sizes: written in this process (no model, no torch), one
# job per (model, seed, layer) like the scored methods.
rule score_random:
    input:
        info=results(vocab.MODEL_INFO),
        lib=module_library("scoring.files"),
    output:
        layer_score_files(),
    log:
        log_path("score_random/{model}/{method}/layer{layer}.log"),
    wildcard_constraints:
        method=rf"{vocab.RANDOM}-\d+",
    localrule: True
    run:
        from kneurons.scoring.files import write_random_scores
        from kneurons.jobs import in_process  # one line for a known error

        in_process(
            write_random_scores,
            rule,
            input,
            output,
            log[0],
            input.info,
            list(output),
            log[0],
            wildcards.method,
            latent_units(wildcards.model),
        )
