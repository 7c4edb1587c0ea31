# Store maintenance (kneurons.store): `snakemake --cores 1 prune_store` (or `kneurons store
# prune`) removes the entries of results/store that no target of this config uses. The
# targets' files record the entries they were made from; targets not yet made keep none.
# No output: the rule runs whenever it is named, and never as part of `all`.


include: "inputs/store.smk"


rule prune_store:
    log:
        log_path("prune_store.log"),
    localrule: True
    params:
        targets=store_targets(),
        dry_run=os.environ.get("KNEURONS_PRUNE_DRY_RUN") == "1",
    run:
        from kneurons.store import prune_unused

        prune_unused(vocab.STORE_DIR, params.targets, log[0], params.dry_run)
