# Helpers shared by all rules: the combinations the config asks for, wildcard constraints and
# input functions. Rules themselves hold no logic.

import json
import re

from kneurons.model import ModelSpec, num_layers_of

MODELS = {
    name: ModelSpec.from_config(name, spec) for name, spec in config["models"].items()
}
LAYER_TYPES = config["scoring"]["layer_types"]


def expand_methods(methods, n_seeds):
    """`random` becomes one method instance per seed: random-0 .. random-{n-1}."""
    out = []
    for method in methods:
        if method == "random":
            out.extend(f"random-{seed}" for seed in range(n_seeds))
        else:
            out.append(method)
    return out


def format_retention(value):
    """50 -> "50", 0.5 -> "0.5": the {retention} wildcard as written in paths."""
    return f"{float(value):g}"


METHODS = expand_methods(
    config["scoring"]["methods"], config["scoring"]["random_seeds"]
)
RETENTIONS = [format_retention(r) for r in config["evaluation"]["retention"]]
NUM_LAYERS = {name: num_layers_of(spec) for name, spec in MODELS.items()}


def one_of(values):
    return "|".join(re.escape(str(v)) for v in values)


wildcard_constraints:
    model=one_of(MODELS),
    method=one_of(METHODS),
    layer_type=one_of(LAYER_TYPES),
    retention=one_of(RETENTIONS),
    layer=r"\d+",


def gpu_count():
    return 1 if config.get("device", "auto") == "cuda" else 0


def score_files(wildcards):
    """All per-layer score files of one (model, method, layer type)."""
    return expand(
        "results/scores/{model}/{method}/{layer_type}/layer{layer}.parquet",
        model=wildcards.model,
        method=wildcards.method,
        layer_type=wildcards.layer_type,
        layer=range(NUM_LAYERS[wildcards.model]),
    )


def scoring_params(wildcards):
    """Only the settings a method depends on, so changing IG steps leaves activation alone."""
    scoring = config["scoring"]
    params = {"n_examples": scoring["n_examples"], "seed": scoring["seed"]}
    if wildcards.method == "integrated_gradients":
        params.update(scoring["integrated_gradients"])
    if wildcards.method.startswith("random-"):
        params = {"seed": int(wildcards.method.split("-", 1)[1])}
    return params


def eval_files(model):
    return expand(
        "results/eval/{model}/{method}/{layer_type}/keep{retention}.parquet",
        model=model,
        method=METHODS,
        layer_type=LAYER_TYPES,
        retention=RETENTIONS,
    )


def ig_score_files(wildcards):
    if "integrated_gradients" not in METHODS:
        return []
    return expand(
        "results/scores/{model}/integrated_gradients/{layer_type}/layer{layer}.parquet",
        model=wildcards.model,
        layer_type=LAYER_TYPES,
        layer=range(NUM_LAYERS[wildcards.model]),
    )


def summary_inputs(wildcards):
    return {
        "evals": eval_files(wildcards.model),
        "unmasked": f"results/eval/{wildcards.model}/unmasked.parquet",
        "ig_scores": ig_score_files(wildcards),
        "card": "results/data/dataset_card.json",
        "metrics": f"results/models/{wildcards.model}/metrics.json",
    }


def all_targets():
    return expand(
        [
            "results/summary/{model}/masked_eval.parquet",
            "results/summary/{model}/summary.md",
            "results/summary/{model}/accuracy_vs_retention.png",
        ],
        model=MODELS,
    )


def data_options():
    """The `data:` block without the input path (a moved file is not a changed dataset)."""
    return {key: value for key, value in config["data"].items() if key != "input"}


def model_config(wildcards):
    return config["models"][wildcards.model]


def write_random_scores(info_path, out_path, log_path, wildcards, seed):
    from kneurons.io import write_parquet
    from kneurons.scoring import random_scores, score_frame

    with open(info_path) as fh:
        units = json.load(fh)["units"][wildcards.layer_type]
    layer = int(wildcards.layer)
    scores = random_scores(units, seed, wildcards.layer_type, layer)
    metadata = {
        "method": wildcards.method,
        "seed": seed,
        "layer_type": wildcards.layer_type,
        "layer": layer,
    }
    write_parquet(out_path, score_frame(scores, wildcards.layer_type, layer), metadata)
    with open(log_path, "w") as fh:
        fh.write(f"{len(scores)} random scores (seed {seed}) written to {out_path}\n")
