# Residue maps of selected neurons and how well they recover known sites (planted motifs on
# synthetic data, annotated active/binding sites on real enzymes). Enabled by `residues.enabled`.


include: "inputs/residues.smk"


rule map_residues:
    input:
        checkpoint=model_file("{model}"),
        saes=sae_inputs,
        lib=script_library("map_residues"),
        test=DATA_FILES["test"],
        sites=sites_table(),
        selection=residue_selection,
    output:
        maps=results(vocab.RESIDUE_FILE),
        plot=report(
            results("residues/{model}/{method}/{layer_type}/keep{retention}.png"),
            caption="../report/residue_map.rst",
            category="Residue maps",
        ),
    log:
        log_path("map_residues/{model}/{method}/{layer_type}/keep{retention}.log"),
    benchmark:
        results(
            "benchmarks/map_residues/{model}/{method}/{layer_type}/keep{retention}.tsv"
        )
    wildcard_constraints:
        retention=one_of(residue_retentions()),
    conda:
        "../envs/kneurons.yaml"
    threads: model_threads(2)
    resources:
        mem_mb=memory(4000),
        runtime=120,
    params:
        job=JOB,
        residues=residue_params(),
    script:
        "../workflow/scripts/map_residues.py"


rule site_recovery:
    input:
        sites=sites_table(),
        lib=script_library("site_recovery"),
        maps=residue_map_files,
    output:
        table=results("summary/{model}/site_recovery.parquet"),
        markdown=report(
            results("summary/{model}/site_recovery.md"),
            caption="../report/site_recovery.rst",
            category="Site recovery",
        ),
        plot=report(
            results("summary/{model}/figures/site_recovery.png"),
            caption="../report/site_recovery_plot.rst",
            category="Site recovery",
        ),
        svg=results("summary/{model}/figures/site_recovery.svg"),
    log:
        log_path("site_recovery/{model}.log"),
    conda:
        "../envs/kneurons.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        job=JOB,
        contrast=RESIDUES.get("contrast", "scaled"),
    script:
        "../workflow/scripts/site_recovery.py"
