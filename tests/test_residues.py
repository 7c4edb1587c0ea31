import numpy as np
import pandas as pd
import pytest
import torch

from kneurons.model import alphabet
from kneurons.residues import (
    auroc,
    ig_map,
    parse_site_features,
    residue_maps,
    site_recovery,
    sites_from_uniprot,
)


@pytest.fixture
def w_detector(tiny_model):
    """Layer 0's query unit 0 fires on tryptophan only; every other token embeds to zero.

    Layer 0 sees each token's layer-normed embedding alone (ESM-2 has no absolute position
    embedding), and LayerNorm(0) = 0 with fair-esm's zero LN bias, so unit 0 (bias 0) outputs
    zero at every residue except W.
    """
    enc = tiny_model.encoder
    w = alphabet().get_idx("W")
    with torch.no_grad():
        signature = torch.randn(enc.embed_dim, generator=torch.Generator().manual_seed(0))
        enc.embed_tokens.weight.zero_()
        enc.embed_tokens.weight[w] = signature
        q = enc.layers[0].self_attn.q_proj
        normed = enc.layers[0].self_attn_layer_norm(signature * (1 - 0.15 * 0.8))
        q.weight[0] = normed
        q.bias.zero_()
    mask = torch.zeros(q.out_features)
    mask[0] = 1.0
    return tiny_model, {0: mask}


def test_residue_map_of_a_single_residue_detector(w_detector):
    model, masks = w_detector
    seq = "MKAWLLGWAKE"
    examples = pd.DataFrame({"accession": ["P1"], "sequence": [seq], "label": [1]})
    maps = residue_maps(model, alphabet(), examples, "query", masks, steps=8)
    is_w = np.array([aa == "W" for aa in seq])
    assert maps["residue"].tolist() == list(seq)
    assert maps["position"].tolist() == list(range(1, len(seq) + 1))
    assert (maps.loc[~is_w, "activation"] == 0).all()
    assert (maps.loc[is_w, "activation"] > 0).all()
    assert (maps.loc[~is_w, "ig"] == 0).all()  # no activation, no attribution
    assert (
        site_recovery(
            maps,
            pd.DataFrame({"accession": ["P1", "P1"], "start": [4, 8], "end": [4, 8]}),
            "activation",
        )["auroc_mean"]
        == 1.0
    )


def test_residue_ig_is_complete(tiny_model):
    tokens = torch.tensor([0, *alphabet().encode("MKTAYIAKQRWW"), 2])
    rng = np.random.default_rng(1)
    masks = {
        layer: torch.from_numpy((rng.random(128) < 0.3).astype(np.float32)) for layer in (0, 1)
    }
    with torch.no_grad():
        tiny_model.head.weight.mul_(20)
    values, gaps = ig_map(tiny_model, tokens, 1, "ffn_in", masks, steps=32)
    assert len(values) == 12
    assert max(abs(g) for g in gaps.values()) < 1e-4


def test_auroc_perfect_random_and_ties():
    labels = np.array([0, 0, 1, 1, 0])
    assert auroc(np.array([0.1, 0.2, 0.9, 0.8, 0.3]), labels) == 1.0
    assert auroc(np.array([0.9, 0.8, 0.1, 0.2, 0.7]), labels) == 0.0
    assert auroc(np.ones(5), labels) == 0.5
    rng = np.random.default_rng(0)
    assert abs(auroc(rng.random(20000), rng.random(20000) < 0.1) - 0.5) < 0.02
    assert np.isnan(auroc(np.ones(3), np.zeros(3)))


def test_uniprot_site_features():
    text = 'ACT_SITE 57; /note="Proton acceptor"; BINDING 100..104; /ligand="ATP"'
    assert parse_site_features(text) == [(57, 57), (100, 104)]
    table = pd.DataFrame(
        {
            "Entry": ["P1", "P2"],
            "Active site": ["ACT_SITE 3", ""],
            "Binding site": ['BINDING 5..6; /ligand="Zn"', "BINDING 2"],
        }
    )
    sites = sites_from_uniprot(table)
    assert sites.values.tolist() == [
        ["P1", "active_site", 3, 3],
        ["P1", "binding_site", 5, 6],
        ["P2", "binding_site", 2, 2],
    ]


def test_recovery_table_and_markdown():
    rng = np.random.default_rng(0)
    frames = []
    for method, shift in (("activation", 5.0), ("random-0", 0.0), ("random-1", 0.0)):
        positions = np.tile(np.arange(1, 41), 3)
        acc = np.repeat(["A", "B", "C"], 40)
        value = rng.random(120) + shift * ((positions >= 10) & (positions <= 14))
        frames.append(
            pd.DataFrame(
                {
                    "method": method,
                    "layer_type": "key",
                    "retention": 10.0,
                    "accession": acc,
                    "position": positions,
                    "residue": "M",
                    "activation": value,
                    "ig": -value,
                }
            )
        )
    sites = pd.DataFrame(
        {
            "accession": ["A", "B", "C", "A"],
            "kind": ["motif"] * 3 + ["decoy"],
            "start": [10, 10, 10, 30],
            "end": [14, 14, 14, 33],
        }
    )
    from kneurons.residues import recovery_markdown, recovery_table

    table = recovery_table(frames, sites)
    assert len(table) == 3 * 2 * 2  # selections x site kinds x maps
    row = table.query("method == 'activation' and site_kind == 'motif' and map == 'activation'")
    assert row["auroc_mean"].item() == 1.0 and row["n_sequences"].item() == 3
    assert (
        table.query("method == 'activation' and map == 'ig' and site_kind == 'motif'")[
            "auroc_mean"
        ].item()
        == 0.0
    )
    text = recovery_markdown(table, "m")
    assert "## motif: activation map" in text and "| activation | 1.000 |" in text
    assert "| random | " in text and " ± " in text
