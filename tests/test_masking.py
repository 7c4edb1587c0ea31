import copy

import numpy as np
import pandas as pd
import pytest
import torch

from kneurons.evaluation.masking import ablated, mean_activations, unit_masks
from kneurons.model.batching import pad
from kneurons.model.classifier import get_module
from kneurons.selection.ranking import all_class_rows, num_kept, per_class_rows, select
from kneurons.vocab import NEURON_TYPES


def test_num_kept_is_ceiling_without_float_noise():
    assert num_kept(10, 320) == 32
    assert num_kept(1, 1920) == 20
    assert num_kept(1, 50) == 1
    assert num_kept(100, 7) == 7
    for bad in (0, -1, 101):
        with pytest.raises(ValueError, match="retention"):
            num_kept(bad, 10)


def test_select_across_layers_with_deterministic_ties():
    scores = pd.DataFrame(
        {
            "layer_type": "key",
            "layer": [0, 0, 0, 1, 1, 1],
            "neuron": [0, 1, 2, 0, 1, 2],
            "score": [0.1, 0.9, 0.5, 0.5, 0.2, 0.9],
        }
    )
    kept = select(scores, 50)  # ceil(3) = 3: the two 0.9s, then the 0.5 in layer 0
    assert kept.loc[kept["selected"], ["layer", "neuron"]].values.tolist() == [
        [0, 1],
        [0, 2],
        [1, 2],
    ]
    masks = unit_masks(kept)
    assert masks[("key", 0)].tolist() == [0, 1, 1] and masks[("key", 1)].tolist() == [0, 0, 1]


@pytest.mark.parametrize("layer_type", list(NEURON_TYPES))
def test_zero_ablation_equals_zeroed_weight_rows(tiny_model, tiny_tokens, layer_type):
    """Hook masking must give the same logits as zeroing the weight rows and biases."""
    rng = np.random.default_rng(0)
    units = get_module(tiny_model.encoder, layer_type, 0).out_features
    masks = {
        (layer_type, layer): torch.from_numpy((rng.random(units) < 0.5).astype(np.float32))
        for layer in (0, 1)
    }
    batch = pad(tiny_tokens, tiny_model.encoder.padding_idx)

    edited = copy.deepcopy(tiny_model)
    with torch.no_grad():
        for (_, layer), mask in masks.items():
            module = get_module(edited.encoder, layer_type, layer)
            module.weight[mask == 0] = 0.0
            module.bias[mask == 0] = 0.0
        expected = edited(batch)
        with ablated(tiny_model, masks):
            got = tiny_model(batch)
        after = tiny_model(batch)
        original = copy.deepcopy(tiny_model)(batch)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(got, after)  # masking changed something ...
    torch.testing.assert_close(after, original)  # ... and the hooks are gone afterwards


def test_zero_ablated_units_output_exactly_zero(tiny_model):
    mask = torch.ones(128)
    mask[[3, 50, 127]] = 0
    with torch.no_grad(), ablated(tiny_model, {("ffn_in", 1): mask}):
        out = tiny_model.encoder.layers[1].fc1(torch.randn(5, 1, 32))
    assert torch.count_nonzero(out[..., [3, 50, 127]]) == 0
    assert torch.count_nonzero(out[..., 4]) == 5


def test_hooks_are_removed_after_an_error(tiny_model, tiny_tokens):
    mask = torch.zeros(32)
    batch = pad(tiny_tokens, tiny_model.encoder.padding_idx)
    with torch.no_grad():
        plain = tiny_model(batch)
        with pytest.raises(RuntimeError, match="boom"), ablated(tiny_model, {("key", 0): mask}):
            raise RuntimeError("boom")
        torch.testing.assert_close(tiny_model(batch), plain, rtol=0, atol=0)


# --- masking options ------------------------------------------------------------------------


def _scores(layer_types=("query", "key", "value"), layers=2, units=4, seed=0):
    rng = np.random.default_rng(seed)
    rows = [
        {"layer_type": lt, "layer": layer, "neuron": n, "score": float(rng.random())}
        for lt in layer_types
        for layer in range(layers)
        for n in range(units)
    ]
    return pd.DataFrame(rows)


def test_select_scope_layer_takes_r_percent_of_every_layer():
    scores = _scores(("key",), layers=3, units=10)
    sel = select(scores, 20, scope="layer")
    assert sel.groupby("layer")["selected"].sum().tolist() == [2, 2, 2]
    for _, rows in sel.groupby("layer"):
        top = rows.sort_values("score", ascending=False).head(2)
        assert top["selected"].all()


def test_select_scope_layer_type_ranks_one_layer_type():
    scores = _scores(("key",), layers=3, units=10)
    sel = select(scores, 25)
    assert sel["selected"].sum() == num_kept(25, 30)
    assert sel.loc[sel["selected"], "score"].min() > sel.loc[~sel["selected"], "score"].max()
    with pytest.raises(ValueError, match="one layer type"):
        select(_scores(), 25, scope="layer_type")


def test_group_rankings_across_types():
    scores = _scores(units=10)
    # value scores 100x larger: raw ranking takes only value units, zscore and percentile do not
    scores.loc[scores["layer_type"] == "value", "score"] *= 100
    raw = select(scores, 10, scope="qkv", group_ranking="raw")
    assert set(raw.loc[raw["selected"], "layer_type"]) == {"value"}
    assert raw["selected"].sum() == 6  # ceil(10% of 60)
    pct = select(scores, 50, scope="qkv", group_ranking="percentile")
    assert pct.groupby("layer_type")["selected"].sum().tolist() == [10, 10, 10]
    z = select(scores, 10, scope="qkv", group_ranking="zscore")
    z_same = select(
        scores.assign(score=scores["score"] / np.where(scores["layer_type"] == "value", 100, 1)),
        10,
        scope="qkv",
        group_ranking="zscore",
    )
    # z-scores do not see a type's scale
    assert (z["selected"].to_numpy() == z_same["selected"].to_numpy()).all()


def test_keep_and_remove_masks_partition_the_units():
    scores = _scores(("key", "ffn_in"), layers=2, units=8)
    sel = select(scores, 30, scope="all")
    keep, remove = unit_masks(sel, "keep"), unit_masks(sel, "remove")
    assert keep.keys() == remove.keys() == {(lt, i) for lt in ("key", "ffn_in") for i in (0, 1)}
    total_kept = 0
    for key in keep:
        # every unit runs in exactly one of the two directions
        assert torch.equal(keep[key] + remove[key], torch.ones(8))
        total_kept += int(keep[key].sum())
    assert total_kept == int(sel["selected"].sum()) == num_kept(30, 32)


def test_mean_ablation_of_constant_units_changes_nothing(tiny_model, tiny_tokens):
    """A unit whose output is the same everywhere equals its mean: mean ablation is a no-op."""
    model = copy.deepcopy(tiny_model)
    with torch.no_grad():
        for layer in (0, 1):
            fc1 = get_module(model.encoder, "ffn_in", layer)
            fc1.weight[:64] = 0.0  # units 0..63 output their bias, whatever the input
    means = mean_activations(model, tiny_tokens, ["ffn_in"], torch.device("cpu"))
    for layer in (0, 1):
        fc1 = get_module(model.encoder, "ffn_in", layer)
        np.testing.assert_allclose(
            means[("ffn_in", layer)][:64], fc1.bias[:64].detach().numpy(), atol=1e-6
        )
    batch = pad(tiny_tokens, model.encoder.padding_idx)
    mask = torch.ones(128)
    mask[:64] = 0
    masks = {("ffn_in", 0): mask, ("ffn_in", 1): mask}
    mean_t = {k: torch.from_numpy(v).float() for k, v in means.items()}
    with torch.no_grad():
        plain = model(batch)
        with ablated(model, masks, mean_t):
            mean_ablated = model(batch)
        with ablated(model, masks):
            zeroed = model(batch)
    torch.testing.assert_close(mean_ablated, plain, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(zeroed, plain, atol=1e-4)  # zero ablation does change them


def test_mean_ablation_writes_the_mean_into_ablated_units(tiny_model):
    mask = torch.ones(128)
    mask[[1, 5]] = 0
    mean = torch.arange(128, dtype=torch.float32)
    with torch.no_grad(), ablated(tiny_model, {("ffn_in", 0): mask}, {("ffn_in", 0): mean}):
        out = tiny_model.encoder.layers[0].fc1(torch.randn(3, 2, 32))
    assert (out[..., 1] == 1.0).all() and (out[..., 5] == 5.0).all()
    assert not (out[..., 2] == 2.0).all()


def test_ablation_hook_keeps_gradients_exact(tiny_model, tiny_tokens):
    """With gradients on, the hook must not edit in place (autograd would see it)."""
    batch = pad(tiny_tokens, tiny_model.encoder.padding_idx)
    mask = (torch.arange(32) % 2).float()
    with ablated(tiny_model, {("value", 1): mask}):
        tiny_model(batch).sum().backward()
    grad = tiny_model.encoder.layers[1].self_attn.v_proj.weight.grad
    assert grad is not None and torch.count_nonzero(grad[mask == 0]) == 0
    assert torch.count_nonzero(grad[mask == 1]) > 0


def test_all_class_rows_filters_per_class_scores():
    frame = pd.DataFrame(
        {
            "layer": [0] * 6,
            "neuron": [0, 1, 0, 1, 0, 1],
            "score": [0.5, 0.4, 0.9, 0.1, 0.2, 0.8],
            "label": [-1, -1, 0, 0, 1, 1],
        }
    )
    assert all_class_rows(frame)["score"].tolist() == [0.5, 0.4]
    assert "label" not in all_class_rows(frame).columns
    assert per_class_rows(frame)["label"].tolist() == [0, 0, 1, 1]
    # files written before -1 was the convention: a missing label also means all classes
    legacy = frame.assign(label=pd.array([None, None, 0, 0, 1, 1], dtype="Int64"))
    assert all_class_rows(legacy)["score"].tolist() == [0.5, 0.4]
    plain = frame.drop(columns="label")
    assert all_class_rows(plain).equals(plain) and per_class_rows(plain).empty
