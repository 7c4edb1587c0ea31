import numpy as np
import pytest
import torch
from captum.attr import LayerIntegratedGradients
from torch import nn

from kneurons.batching import pad
from kneurons.model import get_module
from kneurons.scoring import (
    activation_scores,
    integrated_gradients_scores,
    quadrature,
    random_scores,
    score_frame,
)


def test_activation_score_hand_checkable(tiny_model, tiny_tokens):
    """fc1 with zero weights outputs its bias at every position, so the score is |bias|."""
    fc1 = tiny_model.encoder.layers[1].fc1
    with torch.no_grad():
        fc1.weight.zero_()
        fc1.bias.copy_(torch.linspace(-2.0, 2.0, fc1.out_features))
    scores = activation_scores(tiny_model, tiny_tokens, ["ffn_in"], torch.device("cpu"))
    np.testing.assert_allclose(scores[("ffn_in", 1)], fc1.bias.detach().abs().numpy(), rtol=1e-6)


def test_activation_score_excludes_special_tokens_and_padding(tiny_model, tiny_tokens):
    """Mean |a| over residues only, computed independently from fair-esm's own forward."""
    captured = []
    handle = get_module(tiny_model.encoder, "query", 0).register_forward_hook(
        lambda m, i, o: captured.append(o.detach().clone())
    )
    expected = torch.zeros(32, dtype=torch.float64)
    with torch.no_grad():
        for tok in tiny_tokens:
            tiny_model.encoder(tok.unsqueeze(0))
            expected += captured.pop()[1:-1, 0].abs().double().mean(0)  # drop BOS and EOS
    handle.remove()
    expected /= len(tiny_tokens)
    scores = activation_scores(tiny_model, tiny_tokens, ["query", "key"], torch.device("cpu"))
    np.testing.assert_allclose(scores[("query", 0)], expected.numpy(), rtol=1e-5)
    assert set(scores) == {("query", 0), ("query", 1), ("key", 0), ("key", 1)}


@pytest.mark.parametrize("layer_type", ["query", "value", "ffn_in", "ffn_out"])
def test_ig_completeness_gap_shrinks_with_steps(tiny_model, tiny_tokens, layer_type):
    # sharpen the head so that F(alpha) is clearly nonlinear in alpha
    with torch.no_grad():
        tiny_model.head.weight.mul_(30.0)
    gaps = []
    for steps in (2, 8, 32):
        result = integrated_gradients_scores(
            tiny_model, tiny_tokens, [0, 1, 2, 0], layer_type, [0, 1], steps, "riemann_trapezoid"
        )
        gaps.append(result.gaps["gap"].abs().max())
        delta = (result.gaps["f1"] - result.gaps["f0"]).abs().max()
    assert gaps[0] > gaps[1] > gaps[2]
    assert gaps[2] < 0.05 * delta + 1e-6
    # Gauss-Legendre is far more accurate for the same steps
    gl = integrated_gradients_scores(
        tiny_model, tiny_tokens, [0, 1, 2, 0], layer_type, [0, 1], 8, "gausslegendre"
    )
    assert gl.gaps["gap"].abs().max() < gaps[1]


class Gate(nn.Module):
    """Wraps a module so that captum's layer baseline (gate 0) is a zero output.

    Captum puts the batch first; fair-esm's layers are (T, B, E), so the gate hands captum a
    (B, T, E) view and `Restore` turns it back (and copies it: fair-esm scales q in place and
    captum's substituted output is a leaf).
    """

    def __init__(self, inner):
        super().__init__()
        self.inner, self.gate = inner, None

    def forward(self, x):
        return (self.inner(x) * self.gate.view(1, -1, 1)).transpose(0, 1)


class Restore(nn.Module):
    def forward(self, x):
        return x.transpose(0, 1).clone()


@pytest.mark.parametrize("layer_type,layer", [("query", 0), ("key", 1), ("ffn_in", 1)])
def test_ig_matches_captum_layer_integrated_gradients(tiny_model, tiny_tokens, layer_type, layer):
    steps, method, label = 16, "gausslegendre", 2
    tok = tiny_tokens[1]
    ours = integrated_gradients_scores(
        tiny_model, [tok], [label], layer_type, [layer], steps, method
    )

    parent_name, attr = {
        "query": ("self_attn", "q_proj"),
        "key": ("self_attn", "k_proj"),
        "ffn_in": (None, "fc1"),
    }[layer_type]
    parent = tiny_model.encoder.layers[layer]
    parent = getattr(parent, parent_name) if parent_name else parent
    gate = Gate(getattr(parent, attr))
    setattr(parent, attr, nn.Sequential(gate, Restore()))

    def forward(gate_value, tokens):
        gate.gate = gate_value
        return torch.softmax(tiny_model(tokens), dim=-1)

    try:
        lig = LayerIntegratedGradients(forward, gate)
        attributions = lig.attribute(
            torch.ones(1),
            baselines=torch.zeros(1),
            target=label,
            additional_forward_args=(tok.unsqueeze(0),),
            n_steps=steps,
            method=method,
        )
    finally:
        setattr(parent, attr, gate.inner)
    theirs = attributions.sum(1).squeeze(0).detach().numpy()  # (1, T, units): sum over tokens
    np.testing.assert_allclose(ours.scores[layer], theirs, rtol=1e-3, atol=1e-7)


def test_quadrature_integrates_polynomials():
    for method, exact_degree in [
        ("gausslegendre", 7),
        ("riemann_trapezoid", 1),
        ("riemann_middle", 1),
    ]:
        alphas, weights = quadrature(method, 4)
        for degree in range(exact_degree + 1):
            assert abs((weights * alphas**degree).sum() - 1 / (degree + 1)) < 1e-12
    with pytest.raises(ValueError, match="unknown quadrature"):
        quadrature("simpson", 4)


def test_random_scores_seeded_and_distinct():
    a = random_scores(100, 0, "key", 2)
    assert np.array_equal(a, random_scores(100, 0, "key", 2))
    assert not np.array_equal(a, random_scores(100, 1, "key", 2))
    assert not np.array_equal(a, random_scores(100, 0, "key", 3))
    assert not np.array_equal(a, random_scores(100, 0, "query", 2))


def test_score_frame_schema():
    frame = score_frame(np.array([0.5, 0.1]), "value", 3)
    assert list(frame.columns) == ["layer", "layer_type", "neuron", "score"]
    assert frame["neuron"].tolist() == [0, 1] and (frame["layer"] == 3).all()


def test_batched_activation_equals_one_by_one(tiny_model, tiny_tokens):
    together = activation_scores(tiny_model, tiny_tokens, ["value"], torch.device("cpu"))
    alone = [
        activation_scores(tiny_model, [t], ["value"], torch.device("cpu")) for t in tiny_tokens
    ]
    mean = np.mean([a[("value", 1)] for a in alone], axis=0)
    np.testing.assert_allclose(together[("value", 1)], mean, rtol=1e-5)
    assert pad(tiny_tokens, 1).shape[0] == 4
