"""Defaults have one home, config/schema.yaml (issue 25): where a library function or object
takes a setting with a default of its own, that default is the schema's. Every block of the
schema that has defaults is listed here, so a new block cannot be left out."""

from __future__ import annotations

import inspect
from dataclasses import fields

import pytest
import yaml
from workflow_helpers import REPO, schema_defaults

from kneurons.classes import rankings, stats
from kneurons.concepts import matching, report
from kneurons.model import resources
from kneurons.profiles.scan import profile_neurons
from kneurons.residues.maps import residue_maps
from kneurons.sae.train import train_sae
from kneurons.scoring import methods
from kneurons.scoring.quadrature import AccuracyPolicy
from kneurons.summary.baseline import add_statistics


def signature_defaults(function) -> dict:
    return {
        name: p.default
        for name, p in inspect.signature(function).parameters.items()
        if p.default is not inspect.Parameter.empty
    }


def policy_defaults() -> dict:
    return {f.name: f.default for f in fields(AccuracyPolicy)}


# block -> [(library defaults, {schema key: library name})]; an empty list: the block's settings
# reach the library only as explicit values (rules pass them), so no default lives there.
CONSUMERS = {
    "scoring.activation": [(signature_defaults(methods.activation_scores), None)],
    "scoring.grad_x_activation": [(signature_defaults(methods.grad_x_activation_scores), None)],
    "scoring.integrated_gradients": [
        (signature_defaults(methods.integrated_gradients_scores), None),
        (policy_defaults(), None),
    ],
    "residues": [(signature_defaults(residue_maps), None), (policy_defaults(), None)],
    "profiles": [(signature_defaults(profile_neurons), None)],
    "concepts": [
        ({"thresholds": list(matching.THRESHOLDS)}, None),
        (signature_defaults(report.best_units), None),
    ],
    "evaluation": [
        (signature_defaults(add_statistics), {"alpha": "alpha", "equivalence_margin": "margin"}),
        # `auto`, which the jobs resolve per device (kneurons.model.resources.pass_tokens)
        ({"max_tokens": resources.AUTO}, {"max_tokens": "max_tokens"}),
    ],
    "evaluation.bootstrap": [
        (signature_defaults(add_statistics), {"n": "n_boot", "seed": "seed", "level": "level"}),
        (
            signature_defaults(stats.specificity_table),
            {"n": "n_boot", "seed": "seed", "level": "level"},
        ),
    ],  # fmt: skip
    "class_specific": [
        (signature_defaults(stats.specificity_table), {"margin": "margin"}),
        (signature_defaults(rankings.shared_units), {"shared_fraction": "shared_fraction"}),
    ],
    "sae": [(signature_defaults(train_sae), None)],
    # explicit values from the rules (rules/inputs/sae.smk)
    "sae.expansion": [],
    "sae.flag": [],
    "evaluation.mean_ablation": [],
    # tested in their own modules: test_data (data, data.split), test_uniprot (data.uniprot),
    # test_train (finetune)
    "data": [],
    "data.split": [],
    "data.uniprot": [],
    "finetune": [],
    "scoring": [],
}


def blocks_with_defaults(properties: dict, prefix: str = "") -> list[str]:
    out = []
    for key, spec in properties.items():
        if isinstance(spec, dict) and "properties" in spec:
            path = prefix + key
            if any("default" in sub for sub in spec["properties"].values()):
                out.append(path)
            out += blocks_with_defaults(spec["properties"], path + ".")
    return out


def test_every_schema_block_with_defaults_is_checked():
    schema = yaml.safe_load((REPO / "config/schema.yaml").read_text())
    assert set(blocks_with_defaults(schema["properties"])) == set(CONSUMERS)


def block_of(config: dict, path: str) -> dict:
    for part in path.split("."):
        config = config[part]
    return config


@pytest.mark.parametrize("path", sorted(CONSUMERS))
def test_library_defaults_are_the_schemas(path):
    config = schema_defaults(
        residues={"enabled": True},
        profiles={"enabled": True},
        class_specific={"enabled": True},
        concepts={"enabled": True},
        sae={},
    )
    block = block_of(config, path)
    for defaults, names in CONSUMERS[path]:
        names = names or {key: key for key in block if key in defaults}
        assert names, f"{path}: no setting in common with its consumer"
        for key, name in names.items():
            assert defaults[name] == block[key], f"{path}.{key}: {defaults[name]!r} in the library"
