# Residue maps of selected neurons and how well they recover known sites (planted motifs on
# synthetic data, annotated active/binding sites on real enzymes). Enabled by `residues.enabled`.


include: "inputs/residues.smk"


rule make_synthetic:
    input:
        lib=script_library("make_synthetic"),
    output:
        table="results/data/synthetic/uniprot.tsv",
        sites="results/data/synthetic/sites.tsv",
    log:
        "logs/make_synthetic.log",
    conda:
        "../envs/kneurons.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        job=JOB,
        synthetic=config["data"]["synthetic"],
    script:
        "../workflow/scripts/make_synthetic.py"


rule extract_sites:
    input:
        unpack(dataset_sources),
        lib=script_library("extract_sites"),
    output:
        "results/data/sites.tsv",
    log:
        "logs/extract_sites.log",
    conda:
        "../envs/kneurons.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        job=JOB,
    script:
        "../workflow/scripts/extract_sites.py"


rule map_residues:
    input:
        checkpoint="results/models/{model}/model.pt",
        lib=script_library("map_residues"),
        test="results/data/test.parquet",
        sites=sites_table(),
        selection=residue_selection,
    output:
        maps=vocab.RESIDUE_FILE,
        plot=report(
            "results/residues/{model}/{method}/{layer_type}/keep{retention}.png",
            caption="../report/residue_map.rst",
            category="Residue maps",
        ),
    log:
        "logs/map_residues/{model}/{method}/{layer_type}/keep{retention}.log",
    benchmark:
        "results/benchmarks/map_residues/{model}/{method}/{layer_type}/keep{retention}.tsv"
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
        table="results/summary/{model}/site_recovery.parquet",
        markdown=report(
            "results/summary/{model}/site_recovery.md",
            caption="../report/site_recovery.rst",
            category="Site recovery",
        ),
        plot=report(
            "results/summary/{model}/figures/site_recovery.png",
            caption="../report/site_recovery_plot.rst",
            category="Site recovery",
        ),
        svg="results/summary/{model}/figures/site_recovery.svg",
    log:
        "logs/site_recovery/{model}.log",
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
