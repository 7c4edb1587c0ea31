# One job per (model, method, layer type, layer): on a cluster the expensive integrated-gradients
# jobs spread out; on one machine nothing is computed twice.


rule score_neurons:
    input:
        checkpoint="results/models/{model}/model.pt",
        train="results/data/train.parquet",
    output:
        "results/scores/{model}/{method}/{layer_type}/layer{layer}.parquet",
    log:
        "logs/score_neurons/{model}/{method}/{layer_type}/layer{layer}.log",
    benchmark:
        "results/benchmarks/score_neurons/{model}/{method}/{layer_type}/layer{layer}.tsv"
    wildcard_constraints:
        method="activation|integrated_gradients",
    conda:
        "../envs/kneurons.yaml"
    threads: 4
    resources:
        mem_mb=8000,
        runtime=12 * 60,
        gpu=gpu_count(),
    params:
        scoring=scoring_params,
    script:
        "../workflow/scripts/score_neurons.py"


# Random scores need only the layer sizes; written in-process (no model, no torch).
rule score_random:
    input:
        info="results/models/{model}/model.json",
    output:
        "results/scores/{model}/{method}/{layer_type}/layer{layer}.parquet",
    log:
        "logs/score_random/{model}/{method}/{layer_type}/layer{layer}.log",
    wildcard_constraints:
        method=r"random-\d+",
    localrule: True
    params:
        scoring=scoring_params,
    run:
        write_random_scores(
            input.info, output[0], log[0], wildcards, params.scoring["seed"]
        )
