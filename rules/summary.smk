# One summary per model: tables, statistics, markdown, HTML pages and figures. Outputs flagged
# with report(...) are what `snakemake --report report.html` gathers (captions in report/).


include: "inputs/summary.smk"


rule summarize:
    input:
        unpack(summary_inputs),
        lib=script_library("summarize"),
    output:
        table=results("summary/{model}/masked_eval.parquet"),
        random=results("summary/{model}/random_baseline.parquet"),
        auc=results("summary/{model}/auc.parquet"),
        enrichment=results("summary/{model}/enrichment.parquet"),
        type_enrichment=results("summary/{model}/type_enrichment.parquet"),
        class_overlap=results("summary/{model}/class_overlap.parquet"),
        completeness=results("summary/{model}/ig_completeness.parquet"),
        stability=results("summary/{model}/stability.parquet"),
        self_check=results("summary/{model}/self_check.parquet"),
        findings=results(vocab.FINDINGS_FILE),
        markdown=results("summary/{model}/summary.md"),
        html=report(
            results("summary/{model}/summary.html"),
            caption="../report/summary.rst",
            category="Summary",
            labels={"model": "{model}", "page": "summary"},
        ),
        dataset=report(
            results("summary/{model}/dataset.html"),
            caption="../report/dataset.rst",
            category="Data and fine-tuning",
            labels={"model": "{model}", "page": "dataset card"},
        ),
        finetuning=report(
            results("summary/{model}/finetuning.html"),
            caption="../report/finetuning.rst",
            category="Data and fine-tuning",
            labels={"model": "{model}", "page": "fine-tuning metrics"},
        ),
        accuracy=report_figures("accuracy"),
        per_class=report_figures("per_class"),
        heatmaps=report_figures("heatmap"),
        enrichment_plot=report_figures("enrichment"),
        stability_plot=report_figures("stability"),
        svg=figure_files(None, "svg"),
    log:
        log_path("summarize/{model}.log"),
    conda:
        "../envs/kneurons.yaml"
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        job=JOB,
        figures=figure_params,
        linked_figures=linked_figures,
        bootstrap=EVALUATION["bootstrap"],
        alpha=EVALUATION["alpha"],
        equivalence_margin=EVALUATION["equivalence_margin"],
        retention=EVALUATION["retention"],
        group_ranking=EVALUATION["group_ranking"],
        sae_flag=SAE["flag"],
    script:
        "../workflow/scripts/summarize.py"


# The report's front page: the workflow description followed by every model's Findings, so
# that `snakemake --report` opens on what the run found (the Snakefile points `report:` here
# once it exists).
rule report_front:
    input:
        intro=os.path.join(workflow.basedir, "report/workflow.rst"),
        findings=expand(results(vocab.FINDINGS_FILE), model=MODELS),
        lib=module_library("summary.report"),
    output:
        FRONT_PAGE,
    log:
        log_path("report_front.log"),
    localrule: True
    run:
        from kneurons.summary.report import write_front_page
        from kneurons.jobs import in_process  # one line for a known error

        in_process(
            write_front_page,
            rule,
            input,
            output,
            log[0],
            input.intro,
            input.findings,
            output[0],
            log[0],
        )


# Models that differ only in their fine-tuning seed (models.<name>.finetune_seed): do they
# select the same neurons? Defined only when the config has such replicates.
if REPLICATES:

    rule stability_across_models:
        input:
            unpack(replicate_scores),
            lib=script_library("stability_across_models"),
        output:
            table=results("summary/stability_across_models.parquet"),
            figure=report(
                results("summary/figures/stability_across_models.png"),
                caption="../report/stability.rst",
                category="Stability of the selection",
                labels={"model": "replicates", "figure": "stability_across_models"},
            ),
            svg=results("summary/figures/stability_across_models.svg"),
        log:
            log_path("stability_across_models.log"),
        conda:
            "../envs/kneurons.yaml"
        resources:
            mem_mb=4000,
            runtime=30,
        params:
            job=JOB,
            groups=REPLICATES,
            retention=EVALUATION["retention"],
        script:
            "../workflow/scripts/stability_across_models.py"

    # Per replicate group (named by its first model): in how many replicates each finding of
    # the models' summaries holds, with every replicate's Δ, and the pairwise overlap of their
    # selections (kneurons.summary.replicates).
    rule replicate_findings:
        input:
            unpack(replicate_summaries),
            lib=script_library("replicate_findings"),
        output:
            table=results("summary/replicates/{group}/replicate_findings.parquet"),
            markdown=results("summary/replicates/{group}/replicate_findings.md"),
        log:
            log_path("replicate_findings/{group}.log"),
        wildcard_constraints:
            group=one_of(REPLICATE_GROUPS),
        # A few small tables: seconds of work, not worth a cluster submission.
        localrule: True
        conda:
            "../envs/kneurons.yaml"
        resources:
            mem_mb=2000,
            runtime=10,
        params:
            job=JOB,
            models=replicate_models,
            alpha=EVALUATION["alpha"],
        script:
            "../workflow/scripts/replicate_findings.py"
