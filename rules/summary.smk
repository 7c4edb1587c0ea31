# One summary per model: tables, statistics, markdown, HTML pages and figures. Outputs flagged
# with report(...) are what `snakemake --report report.html` gathers (captions in report/).


include: "inputs/summary.smk"


rule summarize:
    input:
        unpack(summary_inputs),
        lib=script_library("summarize"),
    output:
        table="results/summary/{model}/masked_eval.parquet",
        random="results/summary/{model}/random_baseline.parquet",
        auc="results/summary/{model}/auc.parquet",
        enrichment="results/summary/{model}/enrichment.parquet",
        type_enrichment="results/summary/{model}/type_enrichment.parquet",
        class_overlap="results/summary/{model}/class_overlap.parquet",
        completeness="results/summary/{model}/ig_completeness.parquet",
        markdown="results/summary/{model}/summary.md",
        html=report(
            "results/summary/{model}/summary.html",
            caption="../report/summary.rst",
            category="Summary",
            labels={"model": "{model}", "page": "summary"},
        ),
        dataset=report(
            "results/summary/{model}/dataset.html",
            caption="../report/dataset.rst",
            category="Data and fine-tuning",
            labels={"model": "{model}", "page": "dataset card"},
        ),
        finetuning=report(
            "results/summary/{model}/finetuning.html",
            caption="../report/finetuning.rst",
            category="Data and fine-tuning",
            labels={"model": "{model}", "page": "fine-tuning metrics"},
        ),
        accuracy=report_figures("accuracy"),
        per_class=report_figures("per_class"),
        heatmaps=report_figures("heatmap"),
        enrichment_plot=report_figures("enrichment"),
        svg=figure_files(None, "svg"),
    log:
        "logs/summarize/{model}.log",
    conda:
        "../envs/kneurons.yaml"
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        job=JOB,
        figures=figure_params,
        bootstrap=EVALUATION["bootstrap"],
        retention=EVALUATION["retention"],
        group_ranking=EVALUATION["group_ranking"],
    script:
        "../workflow/scripts/summarize.py"
