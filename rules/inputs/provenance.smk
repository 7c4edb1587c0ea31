# Input functions and constants of rules/provenance.smk (no rules here: snakemake --lint).


def provenance_stages():
    stages = ["data"]
    for model in MODELS:
        stages += [
            f"{kind}/{model}" for kind in ("models", "scores", "eval", "summary")
        ]
        if CLASS_SPECIFIC["enabled"]:
            stages.append(f"classes/{model}")
        if PROFILES["enabled"]:
            stages.append(f"profiles/{model}")
        if CONCEPTS["enabled"]:
            stages.append(f"concepts/{model}")
    return stages


def _stage(wildcards):
    kind, _, model = wildcards.stage.partition("/")
    return kind, model


def provenance_inputs(wildcards):
    """`inputs`: what the directory was computed from; `outputs`: what it holds."""
    kind, model = _stage(wildcards)
    if kind == "data":
        sources = list(dataset_sources(wildcards).values())
        return {
            "inputs": sources,
            "outputs": [*SPLITS, results(vocab.DATASET_CARD)],
        }
    if kind == "models":
        outputs = [model_file(model), results(vocab.MODEL_METRICS).format(model=model)]
        return {"inputs": SPLITS, "outputs": outputs}
    if kind == "scores":
        return {
            "inputs": [model_file(model), DATA_FILES["train"]],
            "outputs": score_files(model, METHODS, LAYER_TYPES),
        }
    if kind == "eval":
        return {
            "inputs": [model_file(model), DATA_FILES["test"]],
            "outputs": eval_files(model),
        }
    if kind == "profiles":
        return {
            "inputs": [model_file(model), DATA_FILES["test"]],
            "outputs": [
                results(vocab.PROFILE_WINDOWS).format(model=model),
                results(vocab.PROFILE_COMPOSITION).format(model=model),
            ],
        }
    if kind == "concepts":
        return {
            "inputs": [model_file(model), DATA_FILES["val"], DATA_FILES["test"]],
            "outputs": [
                results(vocab.CONCEPT_UNITS).format(model=model),
                results(vocab.CONCEPT_BEST).format(model=model),
            ],
        }
    if kind == "classes":
        return {
            "inputs": [model_file(model), DATA_FILES["test"]],
            "outputs": class_eval_files(model),
        }
    summary = [
        t for t in summary_targets() if t.startswith(results(f"summary/{model}/"))
    ]
    return {"inputs": eval_files(model), "outputs": summary}


def provenance_config(wildcards):
    """The config sections a directory depends on (changing others leaves it alone)."""
    kind, model = _stage(wildcards)
    sections = {
        "data": ["data"],
        "models": ["data", "finetune"],
        "scores": ["data", "finetune", "scoring"],
        "eval": ["data", "finetune", "scoring", "evaluation"],
        "classes": ["data", "finetune", "scoring", "evaluation", "class_specific"],
        "profiles": ["data", "finetune", "scoring", "profiles"],
        "concepts": ["data", "finetune", "scoring", "concepts"],
    }.get(kind)
    if sections is None:  # summary: everything
        return {k: v for k, v in config.items() if k != "models"} | {
            "models": {model: config["models"][model]}
        }
    out = {key: config.get(key) for key in sections}
    if model:
        out["models"] = {model: config["models"][model]}
    return out


def provenance_targets():
    return [results(f"{stage}/provenance.json") for stage in provenance_stages()]
