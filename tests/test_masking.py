import copy

import numpy as np
import pandas as pd
import pytest
import torch

from kneurons.batching import pad
from kneurons.masking import keep_masks, num_kept, select_top, silenced
from kneurons.model import LAYER_TYPES, get_module


def test_num_kept_is_ceiling_without_float_noise():
    assert num_kept(10, 320) == 32
    assert num_kept(1, 1920) == 20
    assert num_kept(1, 50) == 1
    assert num_kept(100, 7) == 7
    for bad in (0, -1, 101):
        with pytest.raises(ValueError, match="retention"):
            num_kept(bad, 10)


def test_select_top_across_layers_with_deterministic_ties():
    scores = pd.DataFrame(
        {
            "layer": [0, 0, 0, 1, 1, 1],
            "neuron": [0, 1, 2, 0, 1, 2],
            "score": [0.1, 0.9, 0.5, 0.5, 0.2, 0.9],
        }
    )
    kept = select_top(scores, 50)  # ceil(3) = 3: the two 0.9s, then the 0.5 in layer 0
    assert kept.loc[kept["keep"], ["layer", "neuron"]].values.tolist() == [[0, 1], [0, 2], [1, 2]]
    masks = keep_masks(kept, 3)
    assert masks[0].tolist() == [0, 1, 1] and masks[1].tolist() == [0, 0, 1]


@pytest.mark.parametrize("layer_type", list(LAYER_TYPES))
def test_silencing_equals_zeroed_weight_rows(tiny_model, tiny_tokens, layer_type):
    """Hook masking must give the same logits as zeroing the weight rows and biases."""
    rng = np.random.default_rng(0)
    units = get_module(tiny_model.encoder, layer_type, 0).out_features
    masks = {
        layer: torch.from_numpy((rng.random(units) < 0.5).astype(np.float32)) for layer in (0, 1)
    }
    batch = pad(tiny_tokens, tiny_model.encoder.padding_idx)

    edited = copy.deepcopy(tiny_model)
    with torch.no_grad():
        for layer, mask in masks.items():
            module = get_module(edited.encoder, layer_type, layer)
            module.weight[mask == 0] = 0.0
            module.bias[mask == 0] = 0.0
        expected = edited(batch)
        with silenced(tiny_model, layer_type, masks):
            got = tiny_model(batch)
        after = tiny_model(batch)
        original = copy.deepcopy(tiny_model)(batch)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(got, after)  # masking changed something ...
    torch.testing.assert_close(after, original)  # ... and the hooks are gone afterwards


def test_silenced_units_output_exactly_zero(tiny_model):
    mask = torch.ones(128)
    mask[[3, 50, 127]] = 0
    with torch.no_grad(), silenced(tiny_model, "ffn_in", {1: mask}):
        out = tiny_model.encoder.layers[1].fc1(torch.randn(5, 1, 32))
    assert torch.count_nonzero(out[..., [3, 50, 127]]) == 0
    assert torch.count_nonzero(out[..., 4]) == 5
