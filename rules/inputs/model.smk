# Input functions and constants of rules/model.smk (no rules here: snakemake --lint).


def model_config(wildcards):
    return config["models"][wildcards.model]


def pretrained_weights(wildcards):
    """A pretrained model's weights record (rule fetch_pretrained), checked first thing."""
    if MODELS[wildcards.model].source != "pretrained":
        return []
    return results(vocab.WEIGHTS_RECORD).format(model=wildcards.model)


def pretrained_name(wildcards):
    return MODELS[wildcards.model].name


def finetune_options(wildcards):
    """The finetune block, with this model's `finetune_seed` (if given) as its seed."""
    entry = config["models"][wildcards.model]
    return {
        **config["finetune"],
        "seed": entry.get("finetune_seed", config["finetune"]["seed"]),
    }
