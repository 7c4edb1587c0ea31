# Input functions and constants of rules/summary.smk (no rules here: snakemake --lint).


def summary_figures():
    """Figure id -> what it shows (summarize draws figures/{id}.png and .svg for each)."""
    figures = {}
    for mode, scope, direction in itertools.product(MODES, SCOPES, DIRECTIONS):
        variant = {"mode": mode, "scope": scope, "direction": direction}
        figures[f"accuracy_{mode}_{scope}_{direction}"] = {
            "kind": "accuracy",
            **variant,
        }
        figures[f"per_class_{mode}_{scope}_{direction}"] = {
            "kind": "per_class",
            **variant,
        }
    for scope in (s for s in SCOPES if s != "layer"):  # scope layer: r% of every layer
        for method in SELECTION_METHODS:
            figures[f"heatmap_{scope}_{method}"] = {
                "kind": "heatmap",
                "scope": scope,
                "method": method,
            }
    figures["enrichment"] = {"kind": "enrichment"}
    figures["stability"] = {"kind": "stability"}
    return figures


FIGURES = summary_figures()


FIGURE_CATEGORIES = {
    "accuracy": "Accuracy vs retention",
    "per_class": "Per-class accuracy",
    "heatmap": "Where knowledge neurons live",
    "enrichment": "Where knowledge neurons live",
    "stability": "Stability of the selection",
}


def figure_files(kind, ext):
    """Figure paths (with the {model} wildcard) of one kind, or of every kind for None."""
    return [
        results(f"summary/{{model}}/figures/{fid}.{ext}")
        for fid, spec in FIGURES.items()
        if kind is None or spec["kind"] == kind
    ]


def report_figures(kind):
    """The PNGs of one kind of figure, flagged for `snakemake --report` with their caption."""
    return [report_figure(path, kind) for path in figure_files(kind, "png")]


def report_figure(path, kind):
    name = os.path.splitext(os.path.basename(path))[0]
    return report(
        path,
        caption=f"../report/{kind}.rst",
        category=FIGURE_CATEGORIES[kind],
        labels={"model": "{model}", "figure": name},
    )


def figure_params(wildcards):
    return {
        fid: {**spec, "png": results(f"summary/{wildcards.model}/figures/{fid}.png")}
        for fid, spec in FIGURES.items()
    }


def linked_figures(wildcards):
    """Figure id -> what it shows, with its `png`: the other rules' figures that summary.html
    shows (inputs of summarize, so the page links no missing file)."""
    figures = {}
    if RESIDUES.get("enabled", False):
        figures["site_recovery"] = {"kind": "site_recovery"}
    if CLASS_SPECIFIC["enabled"]:
        for method, layer_type in class_matrix_pairs():
            figures[f"class_specificity_{method}_{layer_type}"] = {
                "kind": "class_specificity",
                "method": method,
                "layer_type": layer_type,
            }
    if profile_targets() and PROFILES["n_plotted"]:
        for method in profile_methods():
            for layer_type in LAYER_TYPES:
                figures[f"logo_{method}_{layer_type}"] = {
                    "kind": "logo",
                    "method": method,
                    "layer_type": layer_type,
                }
    return {
        fid: {**spec, "png": results(f"summary/{wildcards.model}/figures/{fid}.png")}
        for fid, spec in figures.items()
    }


def selection_pools():
    """Target -> scope of the pools the enrichment analyses rank: every layer type alone, qkv
    when query, key and value are scored, all when more than one type is."""
    pools = {layer_type: "layer_type" for layer_type in LAYER_TYPES}
    if set(vocab.GROUPS["qkv"]) <= set(LAYER_TYPES):
        pools["qkv"] = "qkv"
    if len(LAYER_TYPES) > 1:
        pools["all"] = "all"
    return pools


def summary_selection_files(wildcards):
    return [
        selection_file(wildcards.model, scope, method, target)
        for target, scope in selection_pools().items()
        for method in METHODS
    ]


def summary_inputs(wildcards):
    model = wildcards.model
    inputs = {
        "evals": eval_files(model),
        "unmasked": results(vocab.UNMASKED_FILE).format(model=model),
        "selections": summary_selection_files(wildcards),
        "card": results(vocab.DATASET_CARD),
        "test": DATA_FILES["test"],
        "metrics": results(vocab.MODEL_METRICS).format(model=model),
        "history": results(f"models/{model}/training_log.tsv"),
    }
    # split-half stability of every scored method; IG's completeness gaps (files' metadata)
    inputs["scores"] = score_files(model, SELECTION_METHODS, LAYER_TYPES)
    if RESIDUES.get("enabled", False):
        inputs["recovery"] = results(f"summary/{model}/site_recovery.parquet")
    if CLASS_SPECIFIC["enabled"]:
        inputs["classes"] = results(f"summary/{model}/class_specificity.parquet")
    if profile_targets():
        inputs["profiles"] = results(f"summary/{model}/neuron_profiles.parquet")
    inputs["figures"] = [spec["png"] for spec in linked_figures(wildcards).values()]
    # SAE latents beside neurons: the SAEs' fidelity and, with concepts, the best unit per
    # concept, with the pages the section links (so it links no missing file)
    if SAE_SITES:
        inputs["sae_fidelity"] = results(vocab.SAE_FIDELITY).format(model=model)
        inputs["sae_page"] = results(vocab.SAE_PAGE).format(model=model)
        if CONCEPTS["enabled"]:
            inputs["concepts"] = results(vocab.CONCEPT_BEST).format(model=model)
            inputs["concepts_page"] = results(vocab.CONCEPTS_PAGE).format(model=model)
    return inputs


# Models that differ only in their fine-tuning seed (written out, or from
# models.<id>.replicates), by group; a group is named by its first model (kneurons.configuration).
REPLICATES = replicate_groups(config["models"])
REPLICATE_GROUPS = group_names(REPLICATES)


def replicate_scores(wildcards):
    """Model -> its scored methods' score files, for every model in a replicate group."""
    return {
        model: score_files(model, SELECTION_METHODS, LAYER_TYPES)
        for group in REPLICATES
        for model in group
    }


def replicate_models(wildcards):
    """The models of replicate group {group}, in config order."""
    return REPLICATE_GROUPS[wildcards.group]


def replicate_summaries(wildcards):
    """Every model's summary tables of replicate group {group}, and the pairwise stability."""
    models = replicate_models(wildcards)
    return {
        "masked": [results(f"summary/{m}/masked_eval.parquet") for m in models],
        "auc": [results(f"summary/{m}/auc.parquet") for m in models],
        "stability": results("summary/stability_across_models.parquet"),
    }


def replicate_targets():
    """The cross-replicate findings of every replicate group (none without replicates)."""
    return expand(
        results("summary/replicates/{group}/replicate_findings.{ext}"),
        group=REPLICATE_GROUPS,
        ext=["parquet", "md"],
    )


def summary_targets():
    # Every figure is requested: a new masking variant or method adds figures, which makes
    # the summary (and so the new evaluations) run even where the input-set trigger is off.
    return (
        expand(
            [
                results("summary/{model}/masked_eval.parquet"),
                results("summary/{model}/summary.md"),
                results("summary/{model}/summary.html"),
                *figure_files(None, "png"),
            ],
            model=MODELS,
        )
        + [FRONT_PAGE]
        + (
            [results("summary/stability_across_models.parquet"), *replicate_targets()]
            if REPLICATES
            else []
        )
    )
