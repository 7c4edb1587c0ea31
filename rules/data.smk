# Data: (fetch_uniprot ->) clean_dataset (-> cluster_sequences) -> prepare_dataset.
# With data.input set, fetch_uniprot is not in the DAG; cluster_sequences only with
# data.split.method: homology.


include: "inputs/data.smk"


rule fetch_uniprot:
    input:
        lib=script_library("fetch_uniprot"),
    output:
        tsv=results(vocab.UNIPROT_DOWNLOAD),
        manifest=results(vocab.UNIPROT_MANIFEST),
    log:
        log_path("fetch_uniprot.log"),
    # On the submit host: compute nodes of many clusters have no internet.
    localrule: True
    conda:
        "../envs/kneurons.yaml"
    resources:
        mem_mb=2000,
        runtime=240,
    params:
        job=JOB,
        uniprot=config["data"]["uniprot"],
        classes=config["data"]["classes"],
    script:
        "../workflow/scripts/fetch_uniprot.py"


rule clean_dataset:
    input:
        unpack(dataset_sources),
        lib=script_library("clean_dataset"),
    output:
        table=DATA_FILES["cleaned"],
        fasta=results(vocab.CLEANED_FASTA),
    log:
        log_path("clean_dataset.log"),
    benchmark:
        results("benchmarks/clean_dataset.tsv")
    conda:
        "../envs/kneurons.yaml"
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        job=JOB,
        data=cleaning_options(),
    script:
        "../workflow/scripts/clean_dataset.py"


rule cluster_sequences:
    input:
        results(vocab.CLEANED_FASTA),
    output:
        clusters=results(vocab.HOMOLOGY_CLUSTERS),
        hits=results(vocab.HOMOLOGY_HITS),
        version=results(vocab.MMSEQS_VERSION),
    log:
        log_path("cluster_sequences.log"),
    benchmark:
        results("benchmarks/cluster_sequences.tsv")
    conda:
        "../envs/mmseqs2.yaml"
    threads: 4
    resources:
        mem_mb=8000,
        runtime=240,
    params:
        thresholds=mmseqs_thresholds(),
        fields=mmseqs_hit_fields(),
    shell:
        """
        work=$(mktemp -d)
        trap 'rm -rf "$work"' EXIT
        (
            mmseqs version >{output.version}
            mmseqs easy-cluster {input} "$work/clu" "$work/tmp" {params.thresholds} \
                --threads {threads}
            mv "$work/clu_cluster.tsv" {output.clusters}
            mmseqs easy-search {input} {input} {output.hits} "$work/tmp" {params.thresholds} \
                --format-output {params.fields} --threads {threads}
        ) >{log} 2>&1
        """


rule prepare_dataset:
    input:
        unpack(split_inputs),
        lib=script_library("prepare_dataset"),
    output:
        train=DATA_FILES["train"],
        val=DATA_FILES["val"],
        test=DATA_FILES["test"],
        card=results(vocab.DATASET_CARD),
        card_md=results("data/dataset_card.md"),
    log:
        log_path("prepare_dataset.log"),
    conda:
        "../envs/kneurons.yaml"
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        job=JOB,
        data=split_options(),
    script:
        "../workflow/scripts/prepare_dataset.py"


# The planted-motif task (config `data.synthetic`): sequences with class-specific motifs at
# known positions, and those positions as a site table.
rule make_synthetic:
    input:
        lib=script_library("make_synthetic"),
    output:
        table=results(vocab.SYNTHETIC_TABLE),
        sites=results(vocab.SYNTHETIC_SITES),
    log:
        log_path("make_synthetic.log"),
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


# The annotated sites of the user's UniProt table (active, binding, metal-binding sites), for
# site recovery (rules/residues.smk).
rule extract_sites:
    input:
        unpack(dataset_sources),
        lib=script_library("extract_sites"),
    output:
        results(vocab.SITES_TABLE),
    log:
        log_path("extract_sites.log"),
    conda:
        "../envs/kneurons.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        job=JOB,
    script:
        "../workflow/scripts/extract_sites.py"
