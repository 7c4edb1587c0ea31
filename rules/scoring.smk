# One job per (model, method, layer type, layer): on a cluster the expensive gradient jobs spread
# out, and a new layer type in the config adds jobs without redoing the others. Within a job the
# steps of several examples share a batch (scoring.<method>.max_tokens), which keeps the passes
# as full as fusing the six modules of a layer would; what a per-layer job would share (the plain
# forward below the layer) is a few percent of a job (README, "Scoring methods").


include: "inputs/scoring.smk"


rule score_neurons:
    input:
        checkpoint="results/models/{model}/model.pt",
        lib=script_library("score_neurons"),
        train="results/data/train.parquet",
    output:
        vocab.SCORE_FILE,
    log:
        "logs/score_neurons/{model}/{method}/{layer_type}/layer{layer}.log",
    benchmark:
        "results/benchmarks/score_neurons/{model}/{method}/{layer_type}/layer{layer}.tsv"
    wildcard_constraints:
        method=one_of(vocab.SCORING_METHODS),
    conda:
        "../envs/kneurons.yaml"
    threads: 4
    resources:
        mem_mb=8000,
        runtime=12 * 60,
        gpu=gpu_count(),
    params:
        job=JOB,
        scoring=scoring_params,
    script:
        "../workflow/scripts/score_neurons.py"


# Random scores need only the layer sizes: written in this process (no model, no torch).
rule score_random:
    input:
        info="results/models/{model}/model.json",
        lib=module_library("scores"),
    output:
        vocab.SCORE_FILE,
    log:
        "logs/score_random/{model}/{method}/{layer_type}/layer{layer}.log",
    wildcard_constraints:
        method=rf"{vocab.RANDOM}-\d+",
    localrule: True
    run:
        from kneurons.scores import write_random_scores

        write_random_scores(
            input.info,
            output[0],
            log[0],
            wildcards.method,
            wildcards.layer_type,
            int(wildcards.layer),
        )
