# Input functions and constants of rules/profiles.smk (no rules here: snakemake --lint).


def profile_methods():
    """Every non-random selection method, and random-0 as the reference (what units drawn
    without looking at the task respond to) when the random baseline is run."""
    reference = vocab.random_method(0)
    return SELECTION_METHODS + ([reference] if reference in METHODS else [])


def profile_selections(wildcards):
    """The rankings the profiled units come from: scope layer_type (all layers of a type)."""
    return [
        selection_file(wildcards.model, "layer_type", method, layer_type)
        for method in profile_methods()
        for layer_type in LAYER_TYPES
    ]


def profile_params():
    keys = ("n_units", "top_k", "half_width", "n_plotted", "n_sequences", "seed")
    return {key: PROFILES[key] for key in keys}


def profile_logos():
    """One logo per (method, layer type) of its top `n_plotted` units; none for n_plotted 0.
    The job finds each figure's selection by its file name (profile_neurons.py, logo_name).
    """
    if PROFILES["n_plotted"] == 0:
        return []
    return [
        profile_logo(method, layer_type)
        for method in profile_methods()
        for layer_type in LAYER_TYPES
    ]


def profile_logo(method, layer_type):
    return report(
        results(f"summary/{{model}}/figures/logo_{method}_{layer_type}.png"),
        caption="../report/neuron_profile_logo.rst",
        category="Neuron profiles",
        labels={"model": "{model}", "figure": f"logo {method} {layer_type}"},
    )


def profile_targets():
    if not PROFILES["enabled"] or not profile_methods():
        return []
    return expand(results(vocab.PROFILES_PAGE), model=MODELS)
