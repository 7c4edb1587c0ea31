# Shared by every stage: config checks, the combinations the config asks for, wildcard
# constraints and the generic helpers of rules. No job work here: job bodies are workflow
# scripts (or, for model-free jobs run in this process, one library call); each stage's input
# functions live beside its rules. The names come from kneurons.vocab (no torch is imported).

import functools
import itertools
import os
import re
import sys

import yaml

from kneurons import vocab
from kneurons.deps import library_files
from kneurons.io import stage_by_content
from kneurons.model.resources import gpu_percent, planned_tokens
from kneurons.errors import ModelError, disk_error_line
from kneurons.model.spec import ModelSpec, shape_of
from kneurons.configuration import (
    dataset_id,
    expand_replicates,
    group_names,
    replicate_groups,
)


def canonical(obj):
    """`obj` with every mapping's keys sorted, recursively (lists keep their order)."""
    if isinstance(obj, dict):
        return {key: canonical(obj[key]) for key in sorted(obj, key=str)}
    if isinstance(obj, (list, tuple)):
        return [canonical(value) for value in obj]
    return obj


# Snakemake compares a job's params by their repr, in which a dict's key order shows. The config's
# keys are put in one order here, before anything reads it, so that every param drawn from it
# compares by content: the same config with its keys in another order (yaml.safe_dump sorts
# them) reruns nothing, and jobs see the same blocks (README, "Reproducibility").
_canonical_config = canonical(config)
config.clear()
config.update(_canonical_config)


def config_error(message):
    """Stop the DAG build with one line: a raised error would be printed with the frames of
    the rule files, which say nothing to someone who got a config key wrong."""
    stop(f"Error in config: {message}")


def stop(line):
    print(line, file=sys.stderr)
    raise SystemExit(1)


@functools.cache
def staged(path):
    """The user's file `path` through its copy named by content (`kneurons.io.stage_by_content`,
    re-hashed on every DAG build, once: the dataset id and the input functions of the data and
    provenance rules all ask); a full disk or read-only results folder is one line.
    """
    try:
        return stage_by_content(path, vocab.STAGED_DIR)
    except OSError as err:
        stop(f"Error: {disk_error_line(err) or err}")


def model_entry(name, entry):
    """A `models:` entry and its layer count, from the weights where they are files; a bad
    entry or file stops the DAG build with one line naming the key (no stack of frames).
    """
    try:
        spec = ModelSpec.from_config(name, entry)
        return spec, shape_of(spec)
    except ModelError as err:
        message = str(err)
        if not message.startswith("models."):
            message = f"models.{name}: {message}"
        config_error(message)


# `models.<id>.replicates: N` -> N entries <id>, <id>_rep2, ... that differ only in their
# finetune_seed (kneurons.configuration.expand_replicates): from here on every reader of
# config["models"] sees one entry per fine-tuned model, and a config without replicates is
# unchanged. Expanding is idempotent (jobs that rebuild the DAG from this config agree).
try:
    config["models"] = {
        name: canonical(entry)
        for name, entry in expand_replicates(
            config["models"], config["finetune"].get("seed", 0)
        ).items()
    }
except ValueError as err:
    config_error(str(err))

MODELS, SHAPES = {}, {}
for _name, _entry in config["models"].items():
    MODELS[_name], SHAPES[_name] = model_entry(_name, _entry)
NUM_LAYERS = {name: shape.num_layers for name, shape in SHAPES.items()}
LAYER_TYPES = config["scoring"]["layer_types"]
METHODS = vocab.expand_methods(
    config["scoring"]["methods"], config["scoring"]["random_seeds"]
)
SELECTION_METHODS = [m for m in METHODS if not vocab.is_random(m)]
EVALUATION = config["evaluation"]


def config_block(name):
    """A top-level config block with the schema's defaults for keys left out: Snakemake's
    validate fills a block's defaults only when the block is written in the config."""
    with open(os.path.join(workflow.basedir, "config/schema.yaml")) as fh:
        properties = yaml.safe_load(fh)["properties"][name]["properties"]
    defaults = {k: v["default"] for k, v in properties.items() if "default" in v}
    return {**defaults, **(config.get(name) or {})}


def smallest_pool(per_layer):
    """The fewest units any retention level is applied to, over the config's models and scored
    layer types: one layer's units (`per_layer`, scope layer) or one layer type's over all
    layers. FFN-in has 4 x embed_dim units per layer, the other types embed_dim; an SAE layer
    type its latents (kneurons.configuration.sae_latents)."""
    from kneurons.configuration import sae_latents

    expansion = config_block("sae")["expansion"]
    sizes = []
    for shape in SHAPES.values():
        for layer_type in LAYER_TYPES:
            if layer_type in vocab.LATENT_TYPES:
                site = layer_type.removeprefix("sae_")
                units = sae_latents(site, shape.embed_dim, expansion[site])
            else:
                units = shape.embed_dim * (4 if layer_type == "ffn_in" else 1)
            sizes.append(units if per_layer else units * shape.num_layers)
    return min(sizes)


def retention_names(key, values, pool):
    """The {retention} names of a config list of levels. Two levels that differ but print the
    same (`vocab.format_retention`, 6 significant digits: 12.5 and 12.500001) would be one
    target evaluated at the printed level, and a level that keeps no unit of the smallest
    pool it is applied to (`pool` units) measures nothing: both refused, naming the key.
    """
    from kneurons.selection.ranking import num_kept

    names = {}
    for value in values:
        name = vocab.format_retention(value)
        if name in names and names[name] != value:
            config_error(
                f"{key}: {names[name]!r} and {value!r} both name the retention level "
                f"{name!r} (paths keep 6 significant digits); use levels that differ there"
            )
        if num_kept(float(name), pool) < 1:
            config_error(
                f"{key}: {value!r} selects no unit of the smallest pool ({pool} units); "
                f"{100 / pool:.3g} selects one"
            )
        names[name] = value
    return list(names)


RETENTIONS = retention_names(
    "evaluation.retention",
    EVALUATION["retention"],
    smallest_pool(per_layer="layer" in EVALUATION["scopes"]),
)
MODES = EVALUATION["modes"]
SCOPES = EVALUATION["scopes"]
DIRECTIONS = EVALUATION["directions"]
if "remove" in DIRECTIONS and any(float(r) >= 100 for r in RETENTIONS):
    config_error(
        "evaluation.retention: 100 with evaluation.directions remove keeps no unit (every "
        "method removes the whole pool and equals random); use levels below 100 there"
    )
RESIDUES = config.get("residues", {"enabled": False})


CLASS_SPECIFIC = config_block("class_specific")
PROFILES = config_block("profiles")
# What every job script needs besides its own params (kneurons.jobs.start_job): scripts read
# only what their rule declares, never `snakemake.config`.
JOB = {"device": config["device"], "deterministic": config["deterministic"]}
retention_names(  # the same checks
    "residues.retention", RESIDUES.get("retention", []), smallest_pool(per_layer=False)
)

if "qkv" in SCOPES and not set(vocab.GROUPS["qkv"]) <= set(LAYER_TYPES):
    config_error(
        "evaluation.scopes: qkv needs query, key and value in scoring.layer_types"
    )


# Everything made from the dataset goes to its own folder, results/<dataset>/ (logs to
# logs/<dataset>/): two datasets, or two settings of one, never overwrite each other. The id
# is data.name, else the input's name and a digest of its content and of the data settings
# (kneurons.configuration.dataset_id); the store and the staged inputs are shared.
for _key in ("input", "non_enzymes"):
    _path = config["data"].get(_key)
    if _path and not os.path.isfile(_path):
        config_error(
            f"data.{_key}: no such file: {_path} (a relative path is read from the working "
            f"directory, {os.getcwd()}: with -d/--directory give an absolute path)"
        )
DATASET = dataset_id(
    config["data"],
    {
        key: os.path.basename(staged(config["data"][key]))
        for key in ("input", "non_enzymes")
        if config["data"].get(key)
    },
)
if DATASET in {os.path.basename(vocab.STORE_DIR), os.path.basename(vocab.STAGED_DIR)}:
    config_error(f"data.name: {DATASET!r} is the name of a shared folder of results/")
RUN = f"{vocab.RESULTS}/{DATASET}"


def results(path):
    """`path` (relative to a run folder, e.g. `vocab.SCORE_FILE`) in this dataset's folder."""
    return f"{RUN}/{path}"


def log_path(path):
    return f"logs/{DATASET}/{path}"


def one_of(values):
    return "|".join(re.escape(str(v)) for v in values)


wildcard_constraints:
    model=one_of(MODELS),
    method=one_of(METHODS),
    layer_type=one_of(LAYER_TYPES),
    target=one_of([*LAYER_TYPES, *vocab.GROUPS]),
    retention=r"\d+(\.\d+)?",
    layer=r"\d+",
    mode=one_of(vocab.MODES),
    scope=one_of(vocab.SCOPES),
    direction=one_of(vocab.DIRECTIONS),


def library(code):
    """The library files that `code` (a workflow script, or a library module for jobs run in
    this process) imports, transitively (kneurons.deps): declared as a job's inputs, so that
    editing a module reruns exactly the jobs that use it, with the `code` trigger off too
    (README, "Reproducibility")."""
    path = os.path.join(workflow.basedir, code)
    return library_files(path, os.path.join(workflow.basedir, "src"))


def script_library(name):
    return library(f"workflow/scripts/{name}.py")


def module_library(module):
    return library(f"src/kneurons/{module.replace('.', '/')}.py")


def memory(base_mb):
    """mem_mb for a rule: doubles with every retry (profiles set `retries`)."""

    def mem_mb(wildcards, attempt):
        return base_mb * 2 ** (attempt - 1)

    return mem_mb


def small_model(name):
    """Under a million encoder weights (e.g. the test configs' 2-layer models): its jobs are
    all start-up, ~4 s of imports against milliseconds of compute."""
    shape = SHAPES[name]
    return 12 * shape.num_layers * shape.embed_dim**2 < 1_000_000


def model_threads(most):
    """`threads` of a job on a model: `most`, but 1 for a small model (`small_model`): two of
    its jobs then run side by side on 2 cores instead of one after the other."""

    def threads(wildcards):
        return 1 if small_model(wildcards.model) else most

    return threads


# Models whose evaluations run one job for all layer types (rules evaluate_masked_model and
# evaluate_classes_model; config `evaluation.jobs`, auto: the small models), and the regex
# that lets those rules match only them.
_JOBS = EVALUATION.get("jobs", "auto")
PER_MODEL = [
    m for m in MODELS if _JOBS == "per_model" or (_JOBS == "auto" and small_model(m))
]
PER_MODEL_PATTERN = one_of(PER_MODEL) if PER_MODEL else "(?!)"  # (?!): matches nothing


def gpu_count():
    return 1 if config.get("device", "auto") == "cuda" else 0


def gpu_share(kind, max_tokens):
    """The `gpu_percent` resource of a GPU job (kneurons.model.resources): its estimated
    share of the GPU's memory (`gpu_memory_gb`), 100 without it, 0 off CUDA. `kind` and
    `max_tokens` (the job's token budget per pass): values or functions of the wildcards.
    """

    def percent(wildcards):
        if config.get("device", "auto") != "cuda":
            return 0
        job_kind = kind(wildcards) if callable(kind) else kind
        tokens = max_tokens(wildcards) if callable(max_tokens) else max_tokens
        tokens = planned_tokens(tokens)  # `auto`: the most it picks on a GPU
        return gpu_percent(
            SHAPES[wildcards.model], job_kind, tokens, config.get("gpu_memory_gb")
        )

    return percent


def score_files(model, methods, layer_types):
    """Every per-layer score file of a model for these methods and layer types."""
    return expand(
        results(vocab.SCORE_FILE),
        model=model,
        method=methods,
        layer_type=layer_types,
        layer=range(NUM_LAYERS[model]),
    )


def selection_file(model, scope, method, target):
    return results(vocab.SELECTION_FILE).format(
        model=model, scope=scope, method=method, target=target
    )


def model_file(model):
    return results(vocab.MODEL_FILE).format(model=model)


DATA_FILES = {
    split: results(vocab.DATA_FILE).format(split=split)
    for split in ("train", "val", "test", "cleaned")
}
SPLITS = [DATA_FILES[split] for split in ("train", "val", "test")]
