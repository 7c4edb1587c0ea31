"""The config as the schema means it. Snakemake's `--config 'scoring={n_examples: 3}'` hands
nested values over as strings ('3', 'true'); `coerce_numbers` turns a string into the number
(or boolean) the schema asks for at that key (and nowhere else), so that the command line works
like the config file. `expand_replicates` turns `models.<id>.replicates: N` into N model entries
that differ only in their fine-tuning seed, and `replicate_groups` finds such entries (written
out or expanded); `dataset_id` names the run folder of a `data:` block. Imports no torch."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

_INT = re.compile(r"[+-]?\d+")
_FLOAT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _types(schema: dict) -> set[str]:
    kind = schema.get("type", [])
    return {kind} if isinstance(kind, str) else set(kind)


_BOOLEANS = {"true": True, "false": False}


def _number(value: str, types: set[str]):
    if "boolean" in types and value.strip().lower() in _BOOLEANS:
        return _BOOLEANS[value.strip().lower()]
    if "integer" in types and _INT.fullmatch(value.strip()):
        return int(value)
    if "number" in types and _FLOAT.fullmatch(value.strip()):
        return float(value)
    return value


def coerce_numbers(value, schema: dict):
    """`value` with every string that stands where `schema` wants an integer, a number or a
    boolean (and does not allow that string: no string type, or one whose `pattern` it does not
    match, as "4096" where `auto` or an integer is asked for) turned into it; everything else
    as it is."""
    if not isinstance(schema, dict):
        return value
    types = _types(schema)
    if isinstance(value, str):
        pattern = schema.get("pattern")
        allowed = "string" in types and (pattern is None or re.search(pattern, value))
        return value if allowed else _number(value, types)
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        return {
            key: coerce_numbers(item, properties.get(key, extra if isinstance(extra, dict) else {}))
            for key, item in value.items()
        }
    if isinstance(value, list):
        items = schema.get("items", {})
        return [coerce_numbers(item, items) for item in value]
    return value


REPLICATES = "replicates"


def replicate_id(name: str, replicate: int) -> str:
    """The model id of replicate `replicate` (1-based) of `models.<name>`: replicate 1 keeps the
    id, so a config without replicates keeps its paths; then `<name>_rep2`, `<name>_rep3`, ..."""
    return name if replicate == 1 else f"{name}_rep{replicate}"


def expand_replicates(models: dict[str, dict], finetune_seed: int) -> dict[str, dict]:
    """`models:` with every entry's `replicates: N` (default 1) made into N entries, in config
    order, each without the key: replicate 1 is the entry as written, under its own id;
    replicate i (2..N) is `replicate_id(name, i)` with `finetune_seed` = s + i - 1, where s is
    the entry's `finetune_seed`, else `finetune_seed` (the config's `finetune.seed`).

    Raises ValueError, one line naming the key, when an expanded id is already a model id, or
    when a replicate's fine-tuning seed is that of another model that is otherwise the same
    entry (e.g. `a: {replicates: 2}` beside `b: {<a's entry>, finetune_seed: 1}`): the same
    fine-tuning twice under two ids, so which of them replicates which is ambiguous. An
    explicit `finetune_seed` together with `replicates` is not ambiguous: it is the first
    replicate's seed. Expanding an expanded config changes nothing."""
    out: dict[str, dict] = {}
    expanded: dict[str, tuple[str, int]] = {}  # id -> (config id, seed) of replicate groups
    for name, entry in models.items():
        count = int(entry.get(REPLICATES, 1))
        base = {key: value for key, value in entry.items() if key != REPLICATES}
        first_seed = base.get("finetune_seed", finetune_seed)
        for replicate in range(1, count + 1):
            rid = replicate_id(name, replicate)
            if rid in out or (replicate > 1 and rid in models):
                raise ValueError(
                    f"models.{name}.{REPLICATES}: replicate {replicate} would be model "
                    f"{rid!r}, which is already a model id; rename that model"
                )
            seed = first_seed + replicate - 1
            out[rid] = base if replicate == 1 else {**base, "finetune_seed": seed}
            if count > 1:
                expanded[rid] = (name, seed)
    for rid, (name, seed) in expanded.items():
        rest = _without_seed(out[rid])
        for other, entry in out.items():
            if other == rid or expanded.get(other, (None,))[0] == name:
                continue
            if _without_seed(entry) == rest and entry.get("finetune_seed", finetune_seed) == seed:
                raise ValueError(
                    f"models.{name}.{REPLICATES}: replicate {rid!r} would be fine-tuned with "
                    f"seed {seed}, as models.{other} (otherwise the same entry) is: the same "
                    f"model twice; set models.{name}.finetune_seed so that the seeds differ, or "
                    f"drop models.{other}"
                )
    return out


def _without_seed(entry: dict) -> dict:
    return {key: value for key, value in entry.items() if key != "finetune_seed"}


def replicate_groups(models: dict[str, dict]) -> list[list[str]]:
    """Groups (2 or more, in config order) of `models:` entries that differ only in their
    `finetune_seed`: the same starting weights fine-tuned again, so their units correspond."""
    groups: dict[str, list[str]] = {}
    for name, entry in models.items():
        rest = {k: v for k, v in entry.items() if k != "finetune_seed"}
        groups.setdefault(repr(sorted(rest.items())), []).append(name)
    return [
        names
        for names in groups.values()
        if len(names) > 1
        and len({repr(models[n].get("finetune_seed")) for n in names}) == len(names)
    ]


def group_names(groups: list[list[str]]) -> dict[str, list[str]]:
    """Name -> models of each replicate group: a group is named by its first model (for
    `replicates: N`, the entry's own id), as in results/<dataset>/summary/replicates/{group}/."""
    return {group[0]: group for group in groups}


# The `data:` keys that name files or a name rather than settings: the files enter the id by
# their content, the name replaces it.
_DATA_FILE_KEYS = ("input", "non_enzymes")
_ID_SUFFIXES = (".gz", ".bz2", ".xz", ".tsv", ".txt", ".tab", ".csv", ".fasta", ".fa")


def dataset_id(data: dict, file_digests: dict[str, str]) -> str:
    """The id of the dataset a `data:` block describes: the folder `results/<id>/` that holds
    everything made from it, so that two datasets (or two settings of one) in one clone never
    overwrite each other.

    `data.name` when set (the user's id, used as given: the same name is the same folder, and
    a changed setting then reruns what it touches there). Otherwise `<base>-<digest>`: base
    the input file's name without its suffixes (`enzymes.tsv.gz` -> `enzymes`), or `synthetic`
    (the planted-motif task), or `uniprot` (a download); digest the first 8 hex digits of the
    SHA-256 of the data settings together with `file_digests` (key -> content digest of the
    files named by `data.input` / `data.non_enzymes`, e.g. the names of their staged copies),
    so that an edited file or a changed setting gets a folder of its own.
    """
    if data.get("name"):
        return str(data["name"])
    unused = {"name", *_DATA_FILE_KEYS}  # keys that do not describe this dataset's rows
    if data.get("input"):
        unused |= {"uniprot", "synthetic"}
        base = Path(str(data["input"])).name
        while Path(base).suffix.lower() in _ID_SUFFIXES:
            base = base[: -len(Path(base).suffix)]
        base = re.sub(r"[^A-Za-z0-9_.-]+", "_", base).strip("._-") or "input"
    elif data.get("synthetic") is not None:
        unused.add("uniprot")
        base = "synthetic"
    else:
        unused.add("synthetic")
        base = "uniprot"
    settings = {k: v for k, v in data.items() if k not in unused}
    blob = json.dumps({"settings": settings, "files": file_digests}, sort_keys=True, default=str)
    return f"{base}-{hashlib.sha256(blob.encode()).hexdigest()[:8]}"


def sae_site_width(site: str, embed_dim: int) -> int:
    """The width an SAE of `site` reads (`kneurons.sae.splice`): the residual stream (embed_dim)
    or the FFN hidden layer (4 x embed_dim)."""
    if site not in ("resid", "ffn"):
        raise ValueError(f"unknown SAE site {site!r}; choose resid or ffn")
    return embed_dim * (4 if site == "ffn" else 1)


def sae_latents(site: str, embed_dim: int, expansion: float) -> int:
    """The number of latents of an SAE: round(expansion x the site's width), at least 1 (the
    DAG sizes pools and random scores with it before any SAE exists; `train_sae` uses it)."""
    return max(1, round(float(expansion) * sae_site_width(site, embed_dim)))
