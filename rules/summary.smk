rule summarize:
    input:
        unpack(summary_inputs),
    output:
        table="results/summary/{model}/masked_eval.parquet",
        completeness="results/summary/{model}/ig_completeness.parquet",
        markdown="results/summary/{model}/summary.md",
        plot="results/summary/{model}/accuracy_vs_retention.png",
        plot_svg="results/summary/{model}/accuracy_vs_retention.svg",
    log:
        "logs/summarize/{model}.log",
    conda:
        "../envs/kneurons.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../workflow/scripts/summarize.py"
