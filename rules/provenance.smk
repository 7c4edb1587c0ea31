# provenance.json in every result directory: config sections, git commit, packages, device,
# seeds and checksums. Cheap and model-free, so it runs in the Snakemake process itself.


rule provenance:
    input:
        unpack(provenance_inputs),
    output:
        "results/{stage}/provenance.json",
    log:
        "logs/provenance/{stage}.log",
    wildcard_constraints:
        stage=one_of(provenance_stages()),
    localrule: True
    params:
        config=provenance_config,
    run:
        write_provenance(input, output[0], log[0], params.config)
