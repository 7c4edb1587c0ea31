import numpy as np
import pandas as pd
import pytest
import torch

from kneurons.model.batching import tokenize
from kneurons.model.classifier import alphabet, get_module
from kneurons.residues.maps import (
    activation_map,
    activation_maps,
    completeness_summary,
    ig_map,
    ig_maps,
    ig_maps_of_selections,
    residue_maps,
    residue_maps_of_selections,
)
from kneurons.residues.recovery import site_recovery
from kneurons.scoring.quadrature import quadrature_rule


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
    return tiny_model, {("query", 0): mask}


def test_residue_map_of_a_single_residue_detector(w_detector):
    model, masks = w_detector
    seq = "MKAWLLGWAKE"
    examples = pd.DataFrame({"accession": ["P1"], "sequence": [seq], "label": [1]})
    maps, _ = residue_maps(model, alphabet(), examples, masks, steps=8)
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


def _random_masks(layer_type, fraction=0.3, seed=1, units=128):
    rng = np.random.default_rng(seed)
    return {
        (layer_type, layer): torch.from_numpy((rng.random(units) < fraction).astype(np.float32))
        for layer in (0, 1)
    }


def test_residue_ig_is_complete(tiny_model):
    tokens = torch.tensor([0, *alphabet().encode("MKTAYIAKQRWW"), 2])
    masks = _random_masks("ffn_in")
    with torch.no_grad():
        tiny_model.head.weight.mul_(20)
    values, gaps = ig_map(tiny_model, tokens, 1, masks, steps=32)
    assert len(values) == 12
    assert set(gaps) == set(masks)
    assert max(abs(g) for g in gaps.values()) < 1e-4


def reference_ig_map(model, tokens, label, layer_type, masks, steps, quadrature):
    """The residue IG of the earlier implementation: fair-esm's own layers, one sequence, the
    module's output scaled through a hook (masks: layer -> unit mask). Map and gap per layer."""

    def run_layers(x, start, stop=None):
        for layer in model.encoder.layers[start:stop]:
            x, _ = layer(x, self_attn_padding_mask=None, need_head_weights=False)
        return x

    alphas_np, weights_np = quadrature_rule(quadrature, steps)
    alphas = torch.tensor([*alphas_np, 0.0, 1.0], dtype=torch.float32)
    weights = torch.tensor([*weights_np, 0.0, 0.0], dtype=torch.float64)
    n_rows = len(alphas)
    batch = tokens.unsqueeze(0).expand(n_rows, -1)
    total = torch.zeros(len(tokens) - 2, dtype=torch.float64)
    gaps = {}
    model.requires_grad_(False)
    with torch.no_grad():
        x, _ = model.embed(tokens.unsqueeze(0))
        prefix = [x]
        for layer in range(max(masks)):
            prefix.append(run_layers(prefix[-1], layer, layer + 1))
    for layer, mask in masks.items():
        state = {}

        def hook(module, inputs, output, mask=mask, state=state):
            scale = 1 - mask + mask * alphas.view(-1, 1)  # (rows, units)
            state["a"] = output[:, 0].detach().clone()
            scaled = (output.detach() * scale.unsqueeze(0)).requires_grad_(True)
            state["scaled"] = scaled
            return scaled.clone()

        handle = get_module(model.encoder, layer_type, layer).register_forward_hook(hook)
        try:
            with torch.enable_grad():
                x_l = prefix[layer].expand(-1, n_rows, -1).contiguous()
                logits = model.classify(run_layers(x_l, layer), batch)
                prob = torch.softmax(logits.float(), dim=-1)[:, label]
                (grad,) = torch.autograd.grad(prob.sum(), state["scaled"])
        finally:
            handle.remove()
        integral = torch.einsum("tku,k->tu", grad.double(), weights)  # (T, units)
        per_token = (state["a"].double() * integral * mask.double()).sum(1)  # (T,)
        total += per_token[1:-1]
        prob = prob.detach()
        gaps[layer] = float(per_token.sum() - (prob[-1] - prob[-2]))
    model.requires_grad_(True)
    return total.numpy(), gaps


@pytest.mark.parametrize("layer_type", ["query", "key", "value", "attn_out", "ffn_in", "ffn_out"])
def test_residue_ig_equals_the_fair_esm_reference(tiny_model, tiny_tokens, layer_type):
    """The engine's masked per-token IG (all sequences in one padded batch) equals the earlier
    one-sequence implementation through fair-esm's own layers, up to float noise."""
    with torch.no_grad():
        tiny_model.head.weight.mul_(20)
    units = get_module(tiny_model.encoder, layer_type, 0).out_features
    masks = _random_masks(layer_type, units=units)
    labels = [0, 1, 2, 0]
    maps, completeness = ig_maps(tiny_model, tiny_tokens, labels, masks, steps=8, rtol=None)
    gaps = {
        (e, (lt, layer)): gap
        for e, lt, layer, gap in completeness[["example", "layer_type", "layer", "gap"]].itertuples(
            index=False
        )
    }
    for e, (tok, label) in enumerate(zip(tiny_tokens, labels, strict=True)):
        by_layer = {layer: mask for (_, layer), mask in masks.items()}
        expected, expected_gaps = reference_ig_map(
            tiny_model, tok, label, layer_type, by_layer, 8, "gausslegendre"
        )
        scale = np.abs(expected).max()
        np.testing.assert_allclose(maps[e], expected, rtol=1e-4, atol=1e-6 * scale)
        for layer, gap in expected_gaps.items():
            assert gaps[(e, (layer_type, layer))] == pytest.approx(gap, abs=1e-6)


def test_residue_maps_of_several_sequences_equal_one_at_a_time(tiny_model, tiny_tokens):
    masks = _random_masks("value", units=32)
    sequences = ["MKTAYIAKQRWW", "GAVLIMFWPSTCYNQDEKRH", "MKW"]
    examples = pd.DataFrame(
        {"accession": ["A", "B", "C"], "sequence": sequences, "label": [0, 2, 1]}
    )
    together, _ = residue_maps(tiny_model, alphabet(), examples, masks, steps=4, rtol=None)
    for row, tok in zip(examples.itertuples(), tokenize(alphabet(), sequences), strict=True):
        alone, _ = ig_map(tiny_model, tok, row.label, masks, steps=4)
        got = together.loc[together["accession"] == row.accession, "ig"].to_numpy()
        # fp32 sums in another batch order: near zero, 1e-6 of the map's largest value
        np.testing.assert_allclose(got, alone, rtol=1e-5, atol=1e-6 * np.abs(alone).max())


def _selections(layer_type, units, seeds=(1, 2, 3)):
    """Selections of one layer type as a job maps them: one per seed, plus a copy of the
    first (two methods that select the same units share their integrals)."""
    selections = {f"s{seed}": _random_masks(layer_type, seed=seed, units=units) for seed in seeds}
    selections["copy"] = dict(selections[f"s{seeds[0]}"])
    return selections


@pytest.mark.parametrize("layer_type", ["key", "ffn_in"])
def test_batched_activation_maps_equal_one_forward_per_sequence(
    tiny_model, tiny_tokens, layer_type
):
    """One forward per length bucket (padding, here all four sequences in one batch and in
    batches of one or two) for every selection equals one forward per sequence per selection."""
    units = get_module(tiny_model.encoder, layer_type, 0).out_features
    selections = _selections(layer_type, units)
    for max_tokens in (16384, 40):
        batched = activation_maps(tiny_model, tiny_tokens, selections, max_tokens)
        for name, masks in selections.items():
            for e, tok in enumerate(tiny_tokens):
                alone = activation_map(tiny_model, tok, masks)
                assert batched[name][e].shape == alone.shape == (len(tok) - 2,)
                np.testing.assert_allclose(batched[name][e], alone, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("layer_type", ["query", "key", "value", "ffn_in"])
def test_ig_maps_of_selections_equal_each_selection_alone(tiny_model, tiny_tokens, layer_type):
    """Several selections in one engine run (identical masks shared, their rows in the same
    batches) give each selection's own `ig_maps`: one fixed pass to float rounding (maps, F(0),
    F(1), gaps); with the accuracy policy every (sequence, module, selection) integral is judged
    and refined on its own, so each meets the tolerance as it does alone. The number of panels
    may differ where a panel's gap sits within float noise of its share of the tolerance (the
    same happens to one selection run with another `max_tokens`); elsewhere it is the same."""
    with torch.no_grad():
        tiny_model.head.weight.mul_(20)
    units = get_module(tiny_model.encoder, layer_type, 0).out_features
    selections = _selections(layer_type, units)
    labels = [0, 1, 2, 0]
    fixed = {"steps": 4, "quadrature": "gausslegendre", "rtol": None}
    together = ig_maps_of_selections(tiny_model, tiny_tokens, labels, selections, **fixed)
    exact = ["example", "layer_type", "layer", "steps", "panels", "above_tolerance"]
    for name, masks in selections.items():
        maps, gaps = together[name]
        alone_maps, alone_gaps = ig_maps(tiny_model, tiny_tokens, labels, masks, **fixed)
        for got, expected in zip(maps, alone_maps, strict=True):
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)
        pd.testing.assert_frame_equal(gaps[exact], alone_gaps[exact])
        for column in ("f0", "f1", "gap"):
            np.testing.assert_allclose(gaps[column], alone_gaps[column], rtol=0, atol=1e-7)

    rule = {"steps": 2, "quadrature": "riemann_trapezoid", "rtol": 1e-3, "atol": 1e-5}
    together = ig_maps_of_selections(tiny_model, tiny_tokens, labels, selections, **rule)
    refined = same = 0
    for name, masks in selections.items():
        maps, gaps = together[name]
        alone_maps, alone_gaps = ig_maps(tiny_model, tiny_tokens, labels, masks, **rule)
        assert not gaps["above_tolerance"].any() and not alone_gaps["above_tolerance"].any()
        pd.testing.assert_frame_equal(gaps[exact[:3]], alone_gaps[exact[:3]])
        refined += int((alone_gaps["panels"] > 1).sum())
        same += int((gaps["panels"] == alone_gaps["panels"]).sum())
        for e, (got, expected) in enumerate(zip(maps, alone_maps, strict=True)):
            rows = gaps["example"] == e
            if (gaps.loc[rows, "panels"] == alone_gaps.loc[rows, "panels"]).all():
                np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)
    assert refined, "the test needs refined integrals"
    assert same >= 0.95 * len(selections) * len(tiny_tokens) * 2


def test_residue_maps_of_selections_equal_residue_maps(tiny_model):
    sequences = ["MKTAYIAKQRWW", "GAVLIMFWPSTCYNQDEKRH", "MKW"]
    examples = pd.DataFrame(
        {"accession": ["A", "B", "C"], "sequence": sequences, "label": [0, 2, 1]}
    )
    selections = _selections("value", 32)
    together = residue_maps_of_selections(
        tiny_model, alphabet(), examples, selections, steps=4, rtol=None
    )
    for name, masks in selections.items():
        alone, alone_gaps = residue_maps(
            tiny_model, alphabet(), examples, masks, steps=4, rtol=None
        )
        maps, gaps = together[name]
        pd.testing.assert_frame_equal(maps, alone, rtol=1e-5, atol=1e-7)
        assert len(gaps) == len(alone_gaps) == 3 * 2


def test_residue_heat_strips_are_labelled_with_colour_bars(tmp_path, monkeypatch):
    import kneurons.residues.maps as residues_module

    shown = {}

    def keep(fig, path, **kwargs):
        shown["fig"], shown["path"] = fig, path

    monkeypatch.setattr(residues_module, "save_figure", keep)
    maps = pd.DataFrame(
        {
            "accession": ["A"] * 5 + ["B"] * 4,
            "position": [1, 2, 3, 4, 5, 1, 2, 3, 4],
            "activation": np.arange(9.0),
            "ig": np.linspace(-1, 1, 9),
        }
    )
    sites = pd.DataFrame({"accession": ["A"], "kind": ["motif"], "start": [2], "end": [3]})
    title = "integrated_gradients, value: top 10% of the neurons kept (all layers)"
    residues_module.plot_residue_maps(maps, sites, ["A", "B"], tmp_path / "x.png", title=title)
    fig = shown["fig"]
    assert fig._suptitle.get_text().startswith(title)
    strips = [ax for ax in fig.axes if ax.get_ylabel() in ("activation", "IG")]
    assert [ax.get_ylabel() for ax in strips] == ["activation", "IG", "activation", "IG"]
    assert len(fig.axes) == 8  # a colour bar beside each of the 4 strips
    assert "top strip activation" in strips[0].get_title(loc="left")


def test_ig_maps_refine_the_integrals_above_tolerance(tiny_model, tiny_tokens):
    """The maps follow the scores' accuracy policy: from 2 trapezoid nodes, the (sequence,
    module) integrals above 1e-3 |F(1) - F(0)| get panels until they meet it; the ones that met
    it at once keep their one-pass map; each refined map sums to F(1) - F(0) within the
    tolerance; a fixed pass (rtol None) judges nothing."""
    with torch.no_grad():
        tiny_model.head.weight.mul_(20)
    masks = _random_masks("query", units=32)
    labels = [0, 1, 2, 0]
    rule = {"steps": 2, "quadrature": "riemann_trapezoid"}
    fixed, fixed_gaps = ig_maps(tiny_model, tiny_tokens, labels, masks, **rule, rtol=None)
    assert not fixed_gaps["above_tolerance"].any() and (fixed_gaps["panels"] == 1).all()
    maps, gaps = ig_maps(tiny_model, tiny_tokens, labels, masks, **rule, rtol=1e-3, atol=0.0)
    delta = (gaps["f1"] - gaps["f0"]).abs()
    first = fixed_gaps["gap"].abs() <= 1e-3 * delta
    assert (~first).any(), "the test needs integrals above tolerance at 2 nodes"
    assert (gaps.loc[~first, "panels"] > 1).all() and (gaps.loc[first, "panels"] == 1).all()
    assert not gaps["above_tolerance"].any()
    assert (gaps["gap"].abs() <= 1e-3 * delta).all()
    for e in range(len(tiny_tokens)):
        rows = gaps[gaps["example"] == e]
        if (rows["panels"] == 1).all():
            np.testing.assert_array_equal(maps[e], fixed[e])
        # BOS and EOS are dropped from the map, so its sum is only close to sum of the integrals
    summary = completeness_summary(gaps)
    assert summary["n_integrals"] == len(gaps) and summary["n_above_tolerance"] == 0
    assert summary["n_refined"] == int((~first).sum())
