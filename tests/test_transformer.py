import pytest
import torch

from kneurons.model.batching import pad
from kneurons.model.hooks import captured_outputs
from kneurons.model.transformer import BatchFirstLayers, key_mask
from kneurons.vocab import NEURON_TYPES


def fair_esm_layers(model, x, padding):
    """fair-esm's own TransformerLayer.forward, layer after layer: (T, B, E) in and out."""
    for layer in model.encoder.layers:
        x, _ = layer(x, self_attn_padding_mask=padding, need_head_weights=False)
    return x


def test_batch_first_layers_equal_fair_esm_layers(tiny_model, tiny_tokens):
    """The engine's batch-first layers compute what fair-esm's TransformerLayer computes."""
    tokens = pad(tiny_tokens, tiny_model.encoder.padding_idx)
    with torch.no_grad():
        x, padding = tiny_model.embed(tokens)
        reference = fair_esm_layers(tiny_model, x, padding)  # (T, B, E)
        net = BatchFirstLayers(tiny_model.encoder)
        mask = key_mask(padding)
        y = x.transpose(0, 1)
        for index in range(len(net)):
            y = net.forward(index, y, mask)
    real = ~padding
    torch.testing.assert_close(y[real], reference.transpose(0, 1)[real], rtol=1e-5, atol=1e-5)


def test_unpadded_batch_needs_no_mask(tiny_model, tiny_tokens):
    tokens = tiny_tokens[1].unsqueeze(0)
    with torch.no_grad():
        x, padding = tiny_model.embed(tokens)
        assert padding is None and key_mask(padding) is None
        reference = fair_esm_layers(tiny_model, x, None).transpose(0, 1)
        net = BatchFirstLayers(tiny_model.encoder)
        y = x.transpose(0, 1)
        for index in range(len(net)):
            y = net(index, y, None)
    torch.testing.assert_close(y, reference, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("layer_type", list(NEURON_TYPES))
def test_cache_and_resume(tiny_model, tiny_tokens, layer_type):
    """The cache holds each module's output as fair-esm computes it, and resuming a layer from
    a module's cached output gives the layer's output."""
    tokens = pad(tiny_tokens, tiny_model.encoder.padding_idx)
    net = BatchFirstLayers(tiny_model.encoder)
    with torch.no_grad():
        x, padding = tiny_model.embed(tokens)
        mask = key_mask(padding)
        x = x.transpose(0, 1).contiguous()
        with captured_outputs(tiny_model, [(layer_type, 0)]) as captured:
            tiny_model(tokens)
        cache = net.cache(0, x, mask)
        real = ~padding
        theirs = captured[(layer_type, 0)].transpose(0, 1)  # (B, T, units)
        torch.testing.assert_close(cache[layer_type][real], theirs[real], rtol=1e-5, atol=1e-5)
        whole = net.forward(0, x, mask)
        for b in range(len(tiny_tokens)):
            output = cache[layer_type][b : b + 1].expand(2, -1, -1)
            resumed = net.resume(0, cache, layer_type, b, output, mask[b : b + 1])
            assert resumed.shape == (2, *whole.shape[1:])
            torch.testing.assert_close(resumed[1][real[b]], whole[b][real[b]], rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="unknown layer type"):
        net.resume(0, cache, "keys", 0, cache["key"][:1], None)
