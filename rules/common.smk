# Helpers shared by all rules: the combinations the config asks for, wildcard constraints and
# input functions. Rules themselves hold no logic.

import itertools
import json
import os
import re

from kneurons.masking import GROUPS as MASK_GROUPS
from kneurons.masking import group_layer_types
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

# Masking options (README, "Masking options"): every (mode, scope, direction) is its own target.
EVALUATION = config["evaluation"]
MODES = EVALUATION["modes"]
SCOPES = EVALUATION["scopes"]
DIRECTIONS = EVALUATION["directions"]
if "qkv" in SCOPES and not {"query", "key", "value"} <= set(LAYER_TYPES):
    raise ValueError(
        "evaluation.scopes: qkv needs query, key and value in scoring.layer_types"
    )


def scope_targets(scope):
    """{layer_type} values of a scope: each layer type, or the group's own name."""
    return [scope] if scope in MASK_GROUPS else list(LAYER_TYPES)


EVAL_TARGETS = list(dict.fromkeys(t for s in SCOPES for t in scope_targets(s)))


def one_of(values):
    return "|".join(re.escape(str(v)) for v in values)


wildcard_constraints:
    model=one_of(MODELS),
    method=one_of(METHODS),
    layer_type=one_of(LAYER_TYPES),
    retention=one_of(RETENTIONS),
    layer=r"\d+",
    mode=one_of(MODES),
    scope=one_of(SCOPES),
    direction=one_of(DIRECTIONS),


def memory(base_mb):
    """mem_mb for a rule: doubles with every retry (profiles set `retries`)."""

    def mem_mb(wildcards, attempt):
        return base_mb * 2 ** (attempt - 1)

    return mem_mb


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
    if wildcards.method.startswith("random-"):
        return {"seed": int(wildcards.method.split("-", 1)[1])}
    return {
        "n_examples": scoring["n_examples"],
        "seed": scoring["seed"],
        "per_class": scoring["per_class"],
        "options": scoring.get(wildcards.method, {}),  # the method's own block
    }


EVAL_FILE = "results/eval/{model}/{mode}/{scope}/{method}/{layer_type}/{direction}{retention}.parquet"


def eval_files(model):
    """Every masked evaluation of a model: modes x scopes x directions x methods x targets x
    retention levels (a target is a layer type, or the group of a group scope)."""
    files = []
    for mode, scope, direction in itertools.product(MODES, SCOPES, DIRECTIONS):
        files += expand(
            EVAL_FILE,
            model=model,
            mode=mode,
            scope=scope,
            method=METHODS,
            layer_type=scope_targets(scope),
            direction=direction,
            retention=RETENTIONS,
        )
    return files


def eval_layer_types(wildcards):
    """The layer types one evaluation masks; a target must match its scope."""
    scope, target = wildcards.scope, wildcards.layer_type
    if (target in MASK_GROUPS or scope in MASK_GROUPS) and target != scope:
        raise ValueError(
            f"evaluation target {target!r} does not belong to scope {scope!r}"
        )
    return group_layer_types(target, LAYER_TYPES)


def eval_score_files(wildcards):
    return expand(
        "results/scores/{model}/{method}/{layer_type}/layer{layer}.parquet",
        model=wildcards.model,
        method=wildcards.method,
        layer_type=eval_layer_types(wildcards),
        layer=range(NUM_LAYERS[wildcards.model]),
    )


def eval_mean_files(wildcards):
    if wildcards.mode != "mean":
        return []
    return expand(
        "results/activations/{model}/{layer_type}.parquet",
        model=wildcards.model,
        layer_type=eval_layer_types(wildcards),
    )


def group_ranking_param(wildcards):
    """Only group scopes depend on it, so changing it reruns only their evaluations."""
    return EVALUATION["group_ranking"] if wildcards.scope in MASK_GROUPS else None


def all_score_files(wildcards):
    return expand(
        "results/scores/{model}/{method}/{layer_type}/layer{layer}.parquet",
        model=wildcards.model,
        method=METHODS,
        layer_type=LAYER_TYPES,
        layer=range(NUM_LAYERS[wildcards.model]),
    )


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
    selection_methods = [m for m in METHODS if not m.startswith("random-")]
    for scope in (s for s in SCOPES if s != "layer"):  # scope layer: r% of every layer
        for method in selection_methods:
            figures[f"heatmap_{scope}_{method}"] = {
                "kind": "heatmap",
                "scope": scope,
                "method": method,
            }
    figures["enrichment"] = {"kind": "enrichment"}
    return figures


FIGURES = summary_figures()
FIGURE_CATEGORIES = {
    "accuracy": "Accuracy vs retention",
    "per_class": "Per-class accuracy",
    "heatmap": "Where knowledge neurons live",
    "enrichment": "Where knowledge neurons live",
}


def figure_files(kind, ext):
    """Figure paths (with the {model} wildcard) of one kind, or of every kind for None."""
    return [
        f"results/summary/{{model}}/figures/{fid}.{ext}"
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
        fid: {**spec, "png": f"results/summary/{wildcards.model}/figures/{fid}.png"}
        for fid, spec in FIGURES.items()
    }


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
        "scores": all_score_files(wildcards),
        "card": "results/data/dataset_card.json",
        "metrics": f"results/models/{wildcards.model}/metrics.json",
        "history": f"results/models/{wildcards.model}/training_log.tsv",
        **(
            {"recovery": f"results/summary/{wildcards.model}/site_recovery.parquet"}
            if RESIDUES.get("enabled", False)
            else {}
        ),
    }


def all_targets():
    # Every figure is requested: a new masking variant or method adds figures, which makes
    # the summary (and so the new evaluations) run even where the input-set trigger is off.
    return expand(
        [
            "results/summary/{model}/masked_eval.parquet",
            "results/summary/{model}/summary.md",
            "results/summary/{model}/summary.html",
            *figure_files(None, "png"),
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


# --- data inputs (rules/data.smk) ---------------------------------------------------------


def dataset_sources(wildcards):
    """clean_dataset's inputs: data.input, else fetch_uniprot's download and its manifest;
    plus data.non_enzymes when set. With data.input set nothing touches the network."""
    data = config["data"]
    if data.get("input"):
        sources = {"table": data["input"]}
    elif data.get("synthetic") is not None:
        sources = {"table": "results/data/synthetic/uniprot.tsv"}
    else:
        sources = {
            "table": "results/data/uniprot.tsv.gz",
            "manifest": "results/data/uniprot_manifest.json",
        }
    if data.get("non_enzymes"):
        sources["non_enzymes"] = data["non_enzymes"]
    return sources


def split_inputs(wildcards):
    inputs = {"table": "results/data/cleaned.parquet"}
    if config["data"]["split"]["method"] == "homology":
        inputs["clusters"] = "results/data/homology/clusters.tsv"
        inputs["hits"] = "results/data/homology/hits.tsv"
        inputs["version"] = "results/data/homology/mmseqs_version.txt"
    return inputs


def split_options():
    """The dataset options: the `data:` block without file paths and download settings."""
    skip = {"input", "non_enzymes", "uniprot", "synthetic"}
    return {key: value for key, value in config["data"].items() if key not in skip}


def cleaning_options():
    """The options cleaning depends on: a new split must not re-run cleaning and MMseqs2."""
    return {key: value for key, value in split_options().items() if key != "split"}


def mmseqs_thresholds():
    from kneurons.homology import threshold_args

    split = config["data"]["split"]
    return " ".join(threshold_args(split["identity"], split["coverage"]))


def mmseqs_hit_fields():
    from kneurons.homology import HIT_FIELDS

    return ",".join(HIT_FIELDS)


# Residue maps (rules/residues.smk) -------------------------------------------------------------
RESIDUES = config.get("residues", {"enabled": False})


def residue_methods():
    """Non-random methods as configured, plus the first `random_seeds` random instances."""
    n_random = RESIDUES.get("random_seeds", 3)
    return [m for m in METHODS if not m.startswith("random-")] + [
        m
        for m in METHODS
        if m.startswith("random-") and int(m.split("-")[1]) < n_random
    ]


def residue_params():
    keys = ("n_sequences", "n_plotted", "steps", "quadrature", "seed")
    return {key: RESIDUES[key] for key in keys}


def residue_map_files(wildcards):
    return expand(
        "results/residues/{model}/{method}/{layer_type}/keep{retention}.parquet",
        model=wildcards.model,
        method=residue_methods(),
        layer_type=LAYER_TYPES,
        retention=[format_retention(r) for r in RESIDUES["retention"]],
    )


def sites_table():
    """Planted motifs of the synthetic data, or sites annotated in the input TSV."""
    data = config["data"]
    if not data.get("input") and data.get("synthetic") is not None:
        return "results/data/synthetic/sites.tsv"
    return "results/data/sites.tsv"


def residue_targets():
    if not RESIDUES.get("enabled", False):
        return []
    return expand("results/summary/{model}/site_recovery.md", model=MODELS)


# Provenance (rules/provenance.smk) -------------------------------------------------------------
def provenance_stages():
    stages = ["data"]
    for model in MODELS:
        stages += [
            f"{kind}/{model}" for kind in ("models", "scores", "eval", "summary")
        ]
    return stages


def _stage(wildcards):
    kind, _, model = wildcards.stage.partition("/")
    return kind, model


def provenance_inputs(wildcards):
    """`inputs`: what the directory was computed from; `outputs`: what it holds."""
    kind, model = _stage(wildcards)
    data = [f"results/data/{s}.parquet" for s in ("train", "val", "test")]
    model_file = f"results/models/{model}/model.pt"
    if kind == "data":
        sources = list(dataset_sources(wildcards).values())
        return {"inputs": sources, "outputs": [*data, "results/data/dataset_card.json"]}
    if kind == "models":
        outputs = [model_file, f"results/models/{model}/metrics.json"]
        return {"inputs": data, "outputs": outputs}
    if kind == "scores":
        scores = expand(
            "results/scores/{model}/{method}/{layer_type}/layer{layer}.parquet",
            model=model,
            method=METHODS,
            layer_type=LAYER_TYPES,
            layer=range(NUM_LAYERS[model]),
        )
        return {"inputs": [model_file, "results/data/train.parquet"], "outputs": scores}
    if kind == "eval":
        return {
            "inputs": [model_file, "results/data/test.parquet"],
            "outputs": eval_files(model),
        }
    summary = [t for t in all_targets() if t.startswith(f"results/summary/{model}/")]
    return {"inputs": eval_files(model), "outputs": summary}


def provenance_config(wildcards):
    """The config sections a directory depends on (changing others leaves it alone)."""
    kind, model = _stage(wildcards)
    sections = {
        "data": ["data"],
        "models": ["data", "finetune"],
        "scores": ["data", "finetune", "scoring"],
        "eval": ["data", "finetune", "scoring", "evaluation"],
    }.get(kind)
    if sections is None:  # summary: everything
        return {k: v for k, v in config.items() if k != "models"} | {
            "models": {model: config["models"][model]}
        }
    out = {key: config.get(key) for key in sections}
    if model:
        out["models"] = {model: config["models"][model]}
    return out


def write_provenance(inputs, out_path, log_path, stage_config):
    from kneurons.io import write_json
    from kneurons.provenance import provenance

    record = provenance(stage_config, workflow.basedir, inputs.inputs, inputs.outputs)
    write_json(out_path, record)
    with open(log_path, "w") as fh:
        fh.write(
            f"provenance of {len(record['outputs'])} outputs written to {out_path}\n"
        )


def provenance_targets():
    return [f"results/{stage}/provenance.json" for stage in provenance_stages()]


def library(*modules):
    """Library modules that a job computes with, declared as its inputs. The profiles turn the
    `code` rerun trigger off; a change to these modules still reruns the job (through `mtime`),
    while a comment edited in a workflow script does not (README, "Reproducibility")."""
    return [
        os.path.join(workflow.basedir, "src", "kneurons", f"{m}.py") for m in modules
    ]
