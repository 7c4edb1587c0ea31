"""The config as the schema means it. Snakemake's `--config 'scoring={n_examples: 3}'` hands
nested values over as strings ('3', 'true'); `coerce_numbers` turns a string into the number
(or boolean) the schema asks for at that key (and nowhere else), so that the command line works
like the config file. Imports no torch."""

from __future__ import annotations

import re

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
    boolean (and does not allow a string) turned into it; everything else as it is."""
    if not isinstance(schema, dict):
        return value
    types = _types(schema)
    if isinstance(value, str):
        return value if "string" in types else _number(value, types)
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
