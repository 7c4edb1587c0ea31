# Residue maps of selected neurons and how well they recover known sites (planted motifs on
# synthetic data, annotated active/binding sites on real enzymes). Enabled by `residues.enabled`.
# One map_residues job per (model, layer type) writes every (method, retention) map of it: one
# start-up and model load, one forward pass per batch of sequences for all activation maps, and
# every selection's IG integrals in one engine run; a map made before with the same inputs is
# taken from the store (kneurons.store), so a new method or retention computes only its maps.


include: "inputs/residues.smk"


rule map_residues:
    input:
        checkpoint=model_file("{model}"),
        saes=sae_inputs,
        lib=script_library("map_residues"),
        test=DATA_FILES["test"],
        sites=sites_table(),
        selections=residue_selections,
    output:
        maps=layer_type_residue_files(vocab.RESIDUE_FILE),
        plots=report(
            layer_type_residue_files(vocab.RESIDUE_PLOT),
            caption="../report/residue_map.rst",
            category="Residue maps",
        ),
    log:
        log_path("map_residues/{model}/{layer_type}.log"),
    benchmark:
        results("benchmarks/map_residues/{model}/{layer_type}.tsv")
    conda:
        "../envs/kneurons.yaml"
    threads: model_threads(2)
    resources:
        mem_mb=memory(4000),
        runtime=120,
    params:
        job=JOB,
        residues=residue_params(),
        store=vocab.STORE_DIR,
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
