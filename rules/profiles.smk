# Neuron profiles: what the top units of each method and layer type respond to (their most
# active test-sequence windows, the windows' residue composition, overlap with planted motifs or
# annotated sites). Enabled by `profiles.enabled`; one job per model, one forward pass.


include: "inputs/profiles.smk"


rule profile_neurons:
    input:
        checkpoint=model_file("{model}"),
        saes=sae_inputs,
        lib=script_library("profile_neurons"),
        test=DATA_FILES["test"],
        sites=sites_table(),
        selections=profile_selections,
    output:
        windows=results(vocab.PROFILE_WINDOWS),
        composition=results(vocab.PROFILE_COMPOSITION),
        table=results("summary/{model}/neuron_profiles.parquet"),
        markdown=report(
            results(vocab.PROFILES_PAGE),
            caption="../report/neuron_profiles.rst",
            category="Neuron profiles",
            labels={"model": "{model}", "page": "neuron profiles"},
        ),
        logos=profile_logos(),
    log:
        log_path("profile_neurons/{model}.log"),
    benchmark:
        results("benchmarks/profile_neurons/{model}.tsv")
    conda:
        "../envs/kneurons.yaml"
    threads: model_threads(2)
    resources:
        mem_mb=memory(4000),
        runtime=60,
        gpu=gpu_count(),
        gpu_percent=gpu_share("forward", EVALUATION["max_tokens"]),
    params:
        job=JOB,
        profiles=profile_params(),
    script:
        "../workflow/scripts/profile_neurons.py"
