# Concept matching (issue 27): every unit of every scored layer type and layer, neurons and SAE
# latents, as a detector of a known concept's residues (planted motifs, annotated site kinds);
# threshold and best unit chosen on validation, reported on test. Enabled by `concepts.enabled`;
# one job per model.


include: "inputs/concepts.smk"


rule match_concepts:
    input:
        checkpoint=model_file("{model}"),
        lib=script_library("match_concepts"),
        val=DATA_FILES["val"],
        test=DATA_FILES["test"],
        sites=sites_table(),
        saes=sae_inputs,
    output:
        units=results(vocab.CONCEPT_UNITS),
        best=results(vocab.CONCEPT_BEST),
        markdown=report(
            results(vocab.CONCEPTS_PAGE),
            caption="../report/concepts.rst",
            category="Concepts",
            labels={"model": "{model}", "page": "concepts"},
        ),
    log:
        log_path("match_concepts/{model}.log"),
    benchmark:
        results("benchmarks/match_concepts/{model}.tsv")
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
        concepts=concept_params(),
    script:
        "../workflow/scripts/match_concepts.py"
