# Input functions and constants of rules/data.smk (no rules here: snakemake --lint).


def dataset_sources(wildcards):
    """clean_dataset's inputs: data.input, else the planted-motif table, else fetch_uniprot's
    download and its manifest; plus data.non_enzymes when set. A user's file is read through a
    copy named by its content, so a moved file with the same bytes reruns nothing."""
    data = config["data"]
    if data.get("input"):
        sources = {"table": staged(data["input"])}
    elif data.get("synthetic") is not None:
        sources = {"table": results(vocab.SYNTHETIC_TABLE)}
    else:
        sources = {
            "table": results(vocab.UNIPROT_DOWNLOAD),
            "manifest": results(vocab.UNIPROT_MANIFEST),
        }
    if data.get("non_enzymes"):
        sources["non_enzymes"] = staged(data["non_enzymes"])
    return sources


def split_inputs(wildcards):
    inputs = {"table": DATA_FILES["cleaned"]}
    if config["data"]["split"]["method"] == "homology":
        inputs["clusters"] = results(vocab.HOMOLOGY_CLUSTERS)
        inputs["hits"] = results(vocab.HOMOLOGY_HITS)
        inputs["version"] = results(vocab.MMSEQS_VERSION)
    return inputs


def split_options():
    """The dataset options: the `data:` block without file paths and download settings."""
    from kneurons.data.options import NON_OPTION_CONFIG_KEYS

    return {
        key: value
        for key, value in config["data"].items()
        if key not in NON_OPTION_CONFIG_KEYS
    }


def cleaning_options():
    """The options cleaning depends on: a new split must not re-run cleaning and MMseqs2."""
    return {key: value for key, value in split_options().items() if key != "split"}


def mmseqs_thresholds():
    from kneurons.data.homology import threshold_args

    split = config["data"]["split"]
    return " ".join(threshold_args(split["identity"], split["coverage"]))


def mmseqs_hit_fields():
    from kneurons.data.homology import HIT_FIELDS

    return ",".join(HIT_FIELDS)
