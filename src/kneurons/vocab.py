"""The project's vocabulary: one name per concept, shared by the config, the Snakemake wildcards,
the output paths, the parquet columns and the code. Imports nothing heavy (no torch, no pandas),
so the Snakemake process, the rules and every job read the same definitions.

The names (docs/design.md, "Vocabulary"):
- layer type: a kind of module whose output units are the neurons (`NEURON_TYPES`), or an SAE's
  latents spliced into a site (`LATENT_TYPES`); both are `LAYER_TYPES`; unit kind: neuron or latent;
- group: several layer types ranked together (`GROUPS`): `qkv`, and `all` (every scored neuron
  type);
- target: what one evaluation masks, a layer type or a group (wildcard and column `target`);
- scope: where the top r% is taken (`SCOPES`): all layers of one type, each layer alone, or a
  group's pool;
- retention: percent of a pool's units selected (wildcard `retention`, column `retention`);
- method: a scoring method, or one seed of the random baseline (`random-3`; `parse_method`);
- mode: how an ablated unit is silenced; direction: whether the selected units are kept or
  removed; group ranking: how a group's layer types are put on one scale;
- quadrature: the integration rule of integrated gradients (`QUADRATURES`), with `steps` nodes.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Sequence
from decimal import Decimal

# layer type -> submodule of fair-esm's `model.layers[l]` whose output units are the neurons.
NEURON_TYPES: dict[str, str] = {
    "query": "self_attn.q_proj",
    "key": "self_attn.k_proj",
    "value": "self_attn.v_proj",
    "attn_out": "self_attn.out_proj",
    "ffn_in": "fc1",
    "ffn_out": "fc2",
}
# layer type -> the latents module of a sparse autoencoder spliced into layer l
# (`kneurons.sae.splice`): `sae_resid` reads the residual stream after the layer, `sae_ffn` the
# FFN's hidden layer. Its units are latents; they exist once the SAEs are trained (rule train_sae)
# and attached to the loaded model.
LATENT_TYPES: dict[str, str] = {"sae_resid": "sae_resid.latents", "sae_ffn": "sae_ffn.latents"}
LAYER_TYPES: dict[str, str] = {**NEURON_TYPES, **LATENT_TYPES}
NEURON, LATENT = "neuron", "latent"  # unit kinds (column `unit_kind`)
# group -> its layer types; None: every layer type scored in the run.
GROUPS: dict[str, tuple[str, ...] | None] = {"qkv": ("query", "key", "value"), "all": None}
SCOPES = ("layer_type", "layer", "qkv", "all")
GROUP_RANKINGS = ("zscore", "percentile", "raw")
MODES = ("zero", "mean")
DIRECTIONS = ("keep", "remove")
QUADRATURES = (
    "riemann_left",
    "riemann_right",
    "riemann_middle",
    "riemann_trapezoid",
    "gausslegendre",
)
SCORING_METHODS = ("activation", "grad_x_activation", "integrated_gradients")
RANDOM = "random"  # method family of the seeded random baseline: random-0, random-1, ...
UNMASKED = "unmasked"  # method (and family) of the reference evaluation without a mask
NONE = "none"  # target, scope, mode and direction of the unmasked row
ALL_CLASSES = -1  # `label` of the all-class rows of score and selection files

# A module of the encoder by (layer type, layer): the key of every per-module mapping.
UnitKey = tuple[str, int]

# Every dataset has its own run folder, `results/<dataset>/` (`RESULTS`; the dataset's id is
# `kneurons.configuration.dataset_id`), so that two datasets in one clone never overwrite each
# other. The output paths below are relative to it (rules put them there with `results(...)`,
# rules/common.smk); `{...}` are the Snakemake wildcards.
DATA_FILE = "data/{split}.parquet"  # split: train, val, test, cleaned
MODEL_FILE = "models/{model}/model.pt"
# Paths more than one rule names (rules/, through `vocab.X`; `{model}` is the wildcard).
UNIPROT_DOWNLOAD = "data/uniprot.tsv.gz"
UNIPROT_MANIFEST = "data/uniprot_manifest.json"
CLEANED_FASTA = "data/cleaned.fasta"
HOMOLOGY_CLUSTERS = "data/homology/clusters.tsv"
HOMOLOGY_HITS = "data/homology/hits.tsv"
MMSEQS_VERSION = "data/homology/mmseqs_version.txt"
DATASET_CARD = "data/dataset_card.json"
SYNTHETIC_TABLE = "data/synthetic/uniprot.tsv"
SYNTHETIC_SITES = "data/synthetic/sites.tsv"
SITES_TABLE = "data/sites.tsv"
MODEL_INFO = "models/{model}/model.json"
MODEL_METRICS = "models/{model}/metrics.json"
WEIGHTS_RECORD = "models/{model}/weights.json"
FINDINGS_FILE = "summary/{model}/findings.rst"
PROFILE_WINDOWS = "profiles/{model}/windows.parquet"
PROFILE_COMPOSITION = "profiles/{model}/composition.parquet"
PROFILES_PAGE = "summary/{model}/neuron_profiles.md"
CONCEPT_UNITS = "concepts/{model}/units.parquet"
CONCEPT_BEST = "concepts/{model}/best.parquet"
CONCEPTS_PAGE = "summary/{model}/concepts.md"
CLASS_PAGE = "summary/{model}/class_specificity.md"
SCORE_FILE = "scores/{model}/{method}/{layer_type}/layer{layer}.parquet"
SELECTION_FILE = "selection/{model}/{scope}/{method}/{target}.parquet"
MEANS_FILE = "activations/{model}/{layer_type}.parquet"
UNMASKED_FILE = "eval/{model}/unmasked.parquet"
EVAL_FILE = "eval/{model}/{mode}/{scope}/{method}/{target}/{direction}{retention}.parquet"
RESIDUE_FILE = "residues/{model}/{method}/{layer_type}/keep{retention}.parquet"
RESIDUE_PLOT = "residues/{model}/{method}/{layer_type}/keep{retention}.png"
SAE_FILE = "sae/{model}/{site}/layer{layer}.pt"  # site: resid, ffn (kneurons.sae.splice.SITES)
SAE_FIDELITY = "sae/{model}/fidelity.parquet"
SAE_PAGE = "summary/{model}/sae_fidelity.md"
# Shared by every dataset, relative to the working directory: results kept by content, so that a
# job rerun for a new target computes only it (kneurons.store), and the user's input files, by
# content (kneurons.io.stage_by_content).
RESULTS = "results"
STORE_DIR = "results/store"
STAGED_DIR = "results/input"

# One masked (or unmasked) evaluation: the row of EVAL_FILE / UNMASKED_FILE.
EVAL_KEY_COLUMNS = (
    "model",
    "method",
    "method_family",
    "seed",
    "target",
    "scope",
    "mode",
    "direction",
    "group_ranking",
    "retention",
)
EVAL_COUNT_COLUMNS = ("n_selected", "n_kept", "n_total")
# ... followed by the metrics of `kneurons.model.predict.evaluation_record`.

_RANDOM_METHOD = re.compile(rf"{RANDOM}-(\d+)")


def random_method(seed: int) -> str:
    """The method name of one random seed: 3 -> "random-3"."""
    return f"{RANDOM}-{int(seed)}"


def parse_method(method: str) -> tuple[str, int | None]:
    """ "random-3" -> ("random", 3); "integrated_gradients" -> ("integrated_gradients", None)."""
    match = _RANDOM_METHOD.fullmatch(method)
    if match:
        return RANDOM, int(match.group(1))
    return method, None


def is_random(method: str) -> bool:
    return parse_method(method)[0] == RANDOM


def expand_methods(methods: Iterable[str], n_seeds: int) -> list[str]:
    """Config methods -> method instances: `random` becomes random-0 .. random-{n-1}."""
    out = []
    for method in methods:
        if method == RANDOM:
            out.extend(random_method(seed) for seed in range(n_seeds))
        else:
            out.append(method)
    return out


def format_retention(value: float | str) -> str:
    """50 -> "50", 0.5 -> "0.5", 1e-05 -> "0.00001": the {retention} (or {factor}) wildcard as
    written in paths: 6 significant digits, always in positional notation, so that any positive
    level matches the wildcard's pattern (digits, a point, digits; `%g` would print 1e-05)."""
    text = f"{float(value):.6g}"
    return format(Decimal(text), "f") if "e" in text else text


def unit_kind(layer_type: str) -> str:
    """ "latent" for an SAE layer type, "neuron" for the model's own (column `unit_kind`)."""
    return LATENT if layer_type in LATENT_TYPES else NEURON


def is_group(name: str) -> bool:
    return name in GROUPS


def target_layer_types(target: str, scored: Sequence[str]) -> list[str]:
    """The layer types a target covers: a layer type itself, or a group's members (`all`:
    every scored neuron type; latents and neurons are not ranked on one scale)."""
    if target not in GROUPS:
        return [target]
    members = GROUPS[target]
    if members is None:
        return [t for t in scored if t not in LATENT_TYPES]
    return list(members)


def scope_targets(scope: str, scored: Sequence[str]) -> list[str]:
    """The targets of a scope: the group itself for a group scope, else every scored type."""
    return [scope] if scope in GROUPS else list(scored)


def check_target(scope: str, target: str) -> None:
    """A group target belongs to its own scope only; a layer type to the non-group scopes."""
    if (scope in GROUPS or target in GROUPS) and scope != target:
        raise ValueError(f"target {target!r} does not belong to scope {scope!r}")


# What some wildcards can be, where two of them meet without a separator ({direction}{retention}).
_WILDCARD_VALUES = {
    "direction": "|".join(DIRECTIONS),
    "mode": "|".join(MODES),
    "retention": r"\d+(?:\.\d+)?",
    "layer": r"\d+",
}


def parse_path(pattern: str, path: str) -> dict[str, str]:
    """The wildcard values of `path` under a `{...}` path pattern of this module:
    parse_path(SCORE_FILE, "results/d/scores/m/activation/key/layer3.parquet")["layer"] == "3"
    (the pattern is matched against the end of `path`, so the run folder may be anything).
    A job reads what its outputs are from their paths, not from params that list them (a
    param that changes when the config drops a level would rerun the job)."""
    regex, names = "", []
    for literal, name, _, _ in string.Formatter().parse(pattern):
        regex += re.escape(literal)
        if name is not None:
            value = _WILDCARD_VALUES.get(name, r"[^/]+")
            regex += f"(?P={name})" if name in names else f"(?P<{name}>{value})"
            names.append(name)
    match = re.search(rf"(?:^|/){regex}\Z", str(path))
    if match is None:
        raise ValueError(f"{path!r} does not match {pattern!r}")
    return match.groupdict()


def order_of(values: Iterable[str], reference: Sequence[str]) -> list[str]:
    """`values` in the order of `reference`, unknown ones after, alphabetically."""
    rank = {v: i for i, v in enumerate(reference)}
    return sorted(set(values), key=lambda v: (rank.get(v, len(rank)), v))


TARGET_ORDER = (*LAYER_TYPES, *GROUPS)
