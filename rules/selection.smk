# Which units are selected, computed once per (model, scope, method, target) and read by the
# evaluations, the residue maps and the summary: every unit's rank in its pool
# (kneurons.selection.ranking). Retention-free, so a new retention level reuses it. Model-free and
# cheap: it runs in this process.


include: "inputs/selection.smk"


rule select_units:
    input:
        scores=selection_inputs,
        lib=module_library("selection.ranking"),
    output:
        results(vocab.SELECTION_FILE),
    log:
        log_path("select_units/{model}/{scope}/{method}/{target}.log"),
    localrule: True
    run:
        from kneurons.selection.ranking import write_selection
        from kneurons.jobs import in_process  # one line for a known error

        in_process(
            write_selection,
            rule,
            input,
            output,
            log[0],
            input.scores,
            output[0],
            log[0],
            wildcards.scope,
            wildcards.method,
            wildcards.target,
        )
