# Sparse autoencoders on the fine-tuned model: one per (model, site, layer) for the sites whose
# layer types (sae_resid, sae_ffn) are scored; their latents are then units like neurons (every
# job on the model splices them in: input `saes`). Fidelity: how well each SAE stands in for its
# site (docs/methods.md, "SAE latents").


include: "inputs/sae.smk"


rule train_sae:
    input:
        checkpoint=model_file("{model}"),
        lib=script_library("train_sae"),
        train=DATA_FILES["train"],
        val=DATA_FILES["val"],
    output:
        sae=results(vocab.SAE_FILE),
        history=results("sae/{model}/{site}/layer{layer}.tsv"),
    log:
        log_path("train_sae/{model}/{site}/layer{layer}.log"),
    benchmark:
        results("benchmarks/train_sae/{model}/{site}/layer{layer}.tsv")
    wildcard_constraints:
        site="resid|ffn",
    conda:
        "../envs/kneurons.yaml"
    threads: model_threads(4)
    resources:
        mem_mb=memory(8000),
        runtime=6 * 60,
        gpu=gpu_count(),
        gpu_percent=gpu_share("forward", 4096),
    params:
        job=JOB,
        sae=sae_params,
    script:
        "../workflow/scripts/train_sae.py"


rule sae_fidelity:
    input:
        checkpoint=model_file("{model}"),
        lib=script_library("sae_fidelity"),
        test=DATA_FILES["test"],
        saes=sae_inputs,
    output:
        table=results(vocab.SAE_FIDELITY),
        markdown=report(
            results(vocab.SAE_PAGE),
            caption="../report/sae_fidelity.rst",
            category="SAE latents",
            labels={"model": "{model}", "page": "SAE fidelity"},
        ),
    log:
        log_path("sae_fidelity/{model}.log"),
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
        flag=SAE["flag"],
        max_tokens=EVALUATION["max_tokens"],
    script:
        "../workflow/scripts/sae_fidelity.py"
