# Class-specific knowledge neurons (kneurons.classes.rankings): for every class, method and layer type,
# the top r% units by the class's own scores multiplied by each factor (0 suppresses, 2
# amplifies), every class evaluated; random units of the same size are the baseline. One job
# per (model, layer type) writes every method x factor x retention file (several masks per
# forward pass; masks seen before come from the store), then one summary job per model (own-class
# effect, largest off-target effect, input vs output and sink collapse against random units,
# kneurons.classes.stats). For the models of `evaluation.jobs` (auto: those under a million
# encoder weights) one job (evaluate_classes_model) covers every layer type instead.
# Enabled by `class_specific.enabled`.

from kneurons.classes.rankings import CLASS_EVAL_FILE


include: "inputs/classes.smk"


ruleorder: evaluate_classes_model > evaluate_classes


rule evaluate_classes:
    input:
        checkpoint=model_file("{model}"),
        saes=sae_inputs,
        lib=script_library("evaluate_classes"),
        test=DATA_FILES["test"],
        selections=class_selections,
    output:
        layer_type_class_files(),
    log:
        log_path("evaluate_classes/{model}/{layer_type}.log"),
    benchmark:
        results("benchmarks/evaluate_classes/{model}/{layer_type}.tsv")
    wildcard_constraints:
        factor=r"\d+(\.\d+)?",
    conda:
        "../envs/kneurons.yaml"
    threads: model_threads(2)
    resources:
        mem_mb=4000,
        runtime=120,
        gpu=gpu_count(),
        gpu_percent=gpu_share("forward", EVALUATION["max_tokens"]),
    params:
        job=JOB,
        max_tokens=EVALUATION["max_tokens"],
        store=vocab.STORE_DIR,
    script:
        "../workflow/scripts/evaluate_classes.py"


# Small models: one job for every layer type (config `evaluation.jobs`); the same job body.
use rule evaluate_classes as evaluate_classes_model with:
    output:
        model_class_files(),
    log:
        log_path("evaluate_classes_model/{model}.log"),
    benchmark:
        results("benchmarks/evaluate_classes_model/{model}.tsv")
    wildcard_constraints:
        model=PER_MODEL_PATTERN,
        factor=r"\d+(\.\d+)?",


rule class_specificity:
    input:
        unpack(class_summary_inputs),
        lib=script_library("class_specificity"),
    output:
        table=results("summary/{model}/class_specificity.parquet"),
        effects=results("summary/{model}/class_effects.parquet"),
        markdown=report(
            results(vocab.CLASS_PAGE),
            caption="../report/class_specificity.rst",
            category="Class-specific neurons",
            labels={"model": "{model}", "page": "class specificity"},
        ),
        figures=class_matrix_figures(),
    log:
        log_path("class_specificity/{model}.log"),
    conda:
        "../envs/kneurons.yaml"
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        job=JOB,
        figures=class_matrix_pairs(),
        retention=[float(r) for r in CLASS_RETENTIONS],
        shared_fraction=CLASS_SPECIFIC["shared_fraction"],
        bootstrap=EVALUATION["bootstrap"],
        alpha=EVALUATION["alpha"],
        margin=CLASS_SPECIFIC["margin"],
    script:
        "../workflow/scripts/class_specificity.py"
