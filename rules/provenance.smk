# provenance.json in every result directory: config sections, git commit, packages, device,
# seeds and checksums.


include: "inputs/provenance.smk"


rule provenance:
    input:
        unpack(provenance_inputs),
        lib=script_library("provenance"),
    output:
        results("{stage}/provenance.json"),
    log:
        log_path("provenance/{stage}.log"),
    wildcard_constraints:
        stage=one_of(provenance_stages()),
    # Checksums and versions: seconds of work, not worth a cluster submission.
    localrule: True
    conda:
        "../envs/kneurons.yaml"
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        job=JOB,
        config=provenance_config,
    script:
        "../workflow/scripts/provenance.py"
