# Input functions and constants of rules/classes.smk (no rules here: snakemake --lint).


def class_methods():
    """Every scored method (their per-class rankings) and the first `random_seeds` random
    seeds (the baseline; a seed's units are not tied to a class)."""
    n_random = CLASS_SPECIFIC["random_seeds"]
    return SELECTION_METHODS + [
        m for m in METHODS if vocab.is_random(m) and vocab.parse_method(m)[1] < n_random
    ]


CLASS_RETENTIONS = retention_names(
    "class_specific.retention",
    CLASS_SPECIFIC["retention"],
    smallest_pool(per_layer=False),
)
CLASS_FACTORS = [vocab.format_retention(f) for f in CLASS_SPECIFIC["factors"]]


def class_eval_files(model):
    return expand(
        results(CLASS_EVAL_FILE),
        model=model,
        layer_type=LAYER_TYPES,
        method=class_methods(),
        factor=CLASS_FACTORS,
        retention=CLASS_RETENTIONS,
    )


def layer_type_class_files():
    """The outputs of one evaluate_classes job (wildcards model, layer_type)."""
    return expand(
        results(CLASS_EVAL_FILE),
        model="{model}",
        layer_type="{layer_type}",
        method=class_methods(),
        factor=CLASS_FACTORS,
        retention=CLASS_RETENTIONS,
    )


def model_class_files():
    """The outputs of one evaluate_classes_model job (wildcard model): every layer type."""
    return expand(
        results(CLASS_EVAL_FILE),
        model="{model}",
        layer_type=LAYER_TYPES,
        method=class_methods(),
        factor=CLASS_FACTORS,
        retention=CLASS_RETENTIONS,
    )


def class_selections(wildcards):
    """The selections of one evaluate_classes job, or of every layer type for
    evaluate_classes_model (no layer_type wildcard)."""
    if hasattr(wildcards, "layer_type"):
        layer_types = [wildcards.layer_type]
    else:
        layer_types = LAYER_TYPES
    return [
        selection_file(wildcards.model, "layer_type", method, layer_type)
        for layer_type in layer_types
        for method in class_methods()
    ]


def class_matrix_pairs():
    """(method, layer type) of every specificity-matrix figure."""
    return [(m, lt) for m in SELECTION_METHODS for lt in LAYER_TYPES]


def class_matrix_figures():
    """Specificity-matrix PNGs (wildcard {model}), flagged for `snakemake --report`."""
    return [class_matrix_figure(m, lt) for m, lt in class_matrix_pairs()]


def class_matrix_figure(method, layer_type):
    path = results(
        f"summary/{{model}}/figures/class_specificity_{method}_{layer_type}.png"
    )
    return report(
        path,
        caption="../report/class_specificity_matrix.rst",
        category="Class-specific neurons",
        labels={
            "model": "{model}",
            "figure": f"class specificity {method} {layer_type}",
        },
    )


def class_summary_inputs(wildcards):
    return {
        "evals": class_eval_files(wildcards.model),
        "selections": [
            selection_file(wildcards.model, "layer_type", method, layer_type)
            for method in SELECTION_METHODS
            for layer_type in LAYER_TYPES
        ],
        "test": DATA_FILES["test"],
        "card": results(vocab.DATASET_CARD),
    }


def class_targets():
    if not CLASS_SPECIFIC["enabled"]:
        return []
    return expand(results(vocab.CLASS_PAGE), model=MODELS)


def check_class_config():
    """The class-specific targets need per-class scores and enough random seeds."""
    if not CLASS_SPECIFIC["enabled"]:
        return
    if not config["scoring"].get("per_class", True):
        config_error(
            "class_specific.enabled needs scoring.per_class: true (each class's own scores)"
        )
    n_random = CLASS_SPECIFIC["random_seeds"]
    if vocab.RANDOM in config["scoring"]["methods"]:
        if n_random > config["scoring"]["random_seeds"]:
            config_error(
                f"class_specific.random_seeds ({n_random}) exceeds scoring.random_seeds "
                f"({config['scoring']['random_seeds']}): the random units are the scoring's "
                "random seeds"
            )
    for factor in CLASS_SPECIFIC["factors"]:
        if not re.fullmatch(r"\d+(\.\d+)?", vocab.format_retention(factor)):
            config_error(
                f"class_specific.factors: {factor!r} does not print as a plain number "
                "(paths name it); use e.g. 0, 0.5, 2"
            )


check_class_config()
