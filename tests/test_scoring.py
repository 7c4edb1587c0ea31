import numpy as np
import pandas as pd
import pytest
import torch
from captum.attr import LayerIntegratedGradients
from torch import nn

from kneurons.errors import DataError
from kneurons.io import write_parquet
from kneurons.model.batching import pad
from kneurons.model.classifier import get_module
from kneurons.model.hooks import forward_hooks
from kneurons.scoring.adaptive import _Part, _to_split, gap_summary
from kneurons.scoring.files import (
    count_per_class,
    examples_per_class,
    pick_stratified,
    random_scores,
    score_frame,
    split_halves,
    stratified_counts,
)
from kneurons.scoring.integrals import gradient_integrals, panel_integrals
from kneurons.scoring.methods import (
    activation_scores,
    grad_x_activation_scores,
    integrated_gradients_scores,
    score_neurons,
    score_table,
)
from kneurons.scoring.quadrature import completeness_tolerance, quadrature_rule
from kneurons.selection.ranking import all_class_rows
from kneurons.vocab import ALL_CLASSES, LAYER_TYPES, NEURON_TYPES, QUADRATURES

LABELS = [0, 1, 2, 0]


@pytest.fixture
def sharp_model(tiny_model):
    """A sharpened head makes F(alpha) clearly nonlinear in alpha."""
    with torch.no_grad():
        tiny_model.head.weight.mul_(30.0)
    return tiny_model


def assert_fp32_close(actual, desired, rtol=1e-4):
    """Equal up to fp32 sums taken in another order (other batches, fused modules): relative
    `rtol`, and absolute 1e-6 of the largest |desired|, since an entry near zero inherits the
    rounding of the larger terms it was summed from (how large depends on the CPU's kernels)."""
    desired = np.asarray(desired, dtype=float)
    scale = float(np.abs(desired).max()) if desired.size else 0.0
    np.testing.assert_allclose(actual, desired, rtol=rtol, atol=max(1e-6 * scale, 1e-12))


def test_activation_score_hand_checkable(tiny_model, tiny_tokens):
    """fc1 with zero weights outputs its bias at every position: mean_abs |bias|, mean bias."""
    fc1 = tiny_model.encoder.layers[1].fc1
    with torch.no_grad():
        fc1.weight.zero_()
        fc1.bias.copy_(torch.linspace(-2.0, 2.0, fc1.out_features))
    bias = fc1.bias.detach().numpy()
    for statistic, expected in [("mean_abs", np.abs(bias)), ("mean", bias)]:
        result = activation_scores(tiny_model, tiny_tokens, LABELS, "ffn_in", statistic=statistic)
        np.testing.assert_allclose(result.scores[("ffn_in", 1)], expected, rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match="unknown activation statistic"):
        activation_scores(tiny_model, tiny_tokens, LABELS, "ffn_in", statistic="median")


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
    result = activation_scores(tiny_model, tiny_tokens, LABELS, ["query", "key"])
    np.testing.assert_allclose(result.scores[("query", 0)], expected.numpy(), rtol=1e-5)
    assert set(result.scores) == {("query", 0), ("query", 1), ("key", 0), ("key", 1)}


def test_batched_activation_equals_one_by_one(tiny_model, tiny_tokens):
    together = activation_scores(tiny_model, tiny_tokens, LABELS, "value")
    alone = [activation_scores(tiny_model, [t], None, "value") for t in tiny_tokens]
    mean = np.mean([a.scores[("value", 1)] for a in alone], axis=0)
    np.testing.assert_allclose(together.scores[("value", 1)], mean, rtol=1e-5)
    assert pad(tiny_tokens, 1).shape[0] == 4


@pytest.mark.parametrize("layer_type", ["query", "value", "ffn_in", "ffn_out"])
def test_ig_completeness_gap_shrinks_with_steps(sharp_model, tiny_tokens, layer_type):
    gaps = []
    for steps in (2, 8, 32):
        result = integrated_gradients_scores(
            sharp_model,
            tiny_tokens,
            LABELS,
            layer_type,
            adaptive=False,
            steps=steps,
            quadrature="riemann_trapezoid",
        )
        gaps.append(result.gaps["gap"].abs().max())
        delta = (result.gaps["f1"] - result.gaps["f0"]).abs().max()
    assert gaps[0] > gaps[1] > gaps[2]
    assert gaps[2] < 0.05 * delta + 1e-6
    # Gauss-Legendre is far more accurate for the same steps
    gl = integrated_gradients_scores(
        sharp_model, tiny_tokens, LABELS, layer_type, adaptive=False, steps=8
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


def captum_ig(model, tok, label, layer_type, layer, steps, quadrature):
    """captum's LayerIntegratedGradients of one module for one example, summed over tokens."""
    *path, attr = LAYER_TYPES[layer_type].split(".")
    parent = model.encoder.layers[layer]
    for part in path:
        parent = getattr(parent, part)
    gate = Gate(getattr(parent, attr))
    setattr(parent, attr, nn.Sequential(gate, Restore()))

    def forward(gate_value, tokens):
        gate.gate = gate_value
        return torch.softmax(model(tokens), dim=-1)

    try:
        attributions = LayerIntegratedGradients(forward, gate).attribute(
            torch.ones(1),
            baselines=torch.zeros(1),
            target=label,
            additional_forward_args=(tok.unsqueeze(0),),
            n_steps=steps,
            method=quadrature,
        )
    finally:
        setattr(parent, attr, gate.inner)
    theirs = attributions.sum(1).squeeze(0).detach().double().numpy()
    # captum's trapezoid weights are 1/n (halved at the ends) and sum to (n-1)/n, not 1
    return theirs * (steps / (steps - 1) if quadrature == "riemann_trapezoid" else 1.0)


@pytest.mark.parametrize("layer_type", list(NEURON_TYPES))
def test_ig_matches_captum_every_layer_type(sharp_model, tiny_tokens, layer_type):
    """All examples in one padded batch, both layers: per example equal to captum's LIG."""
    steps, quadrature = 16, "gausslegendre"
    ours = integrated_gradients_scores(
        sharp_model,
        tiny_tokens,
        LABELS,
        layer_type,
        adaptive=False,
        steps=steps,
        quadrature=quadrature,
    )
    for layer in (0, 1):
        for example, (tok, label) in enumerate(zip(tiny_tokens, LABELS, strict=True)):
            theirs = captum_ig(sharp_model, tok, label, layer_type, layer, steps, quadrature)
            mine = ours.per_example[(layer_type, layer)][example]
            np.testing.assert_allclose(mine, theirs, rtol=1e-3, atol=1e-6 * np.abs(theirs).max())


@pytest.mark.parametrize("quadrature", ["riemann_trapezoid", "riemann_middle"])
def test_ig_matches_captum_riemann(sharp_model, tiny_tokens, quadrature):
    tok, label = tiny_tokens[1], 2
    ours = integrated_gradients_scores(
        sharp_model, [tok], [label], "key", [1], adaptive=False, steps=9, quadrature=quadrature
    )
    theirs = captum_ig(sharp_model, tok, label, "key", 1, 9, quadrature)
    np.testing.assert_allclose(ours.scores[("key", 1)], theirs, rtol=1e-3, atol=1e-8)


def test_padding_and_batching_do_not_change_scores(sharp_model, tiny_tokens):
    """One example alone equals the same example in a padded batch with others, for every way
    of cutting the rows into passes (examples together, modules fused, steps split)."""
    types = ["query", "value", "ffn_in"]
    alone = [
        integrated_gradients_scores(sharp_model, [tok], [label], types, adaptive=False, steps=6)
        for tok, label in zip(tiny_tokens, LABELS, strict=True)
    ]
    for max_tokens in (10**6, 200, 37):  # one pass; a few passes; steps split (< 1 example)
        together = integrated_gradients_scores(
            sharp_model, tiny_tokens, LABELS, types, adaptive=False, steps=6, max_tokens=max_tokens
        )
        for module, values in together.per_example.items():
            for example, single in enumerate(alone):
                assert_fp32_close(values[example], single.per_example[module][0])
        keys = ["example", "layer_type", "layer"]
        single_gaps = pd.concat(
            [a.gaps.assign(example=i) for i, a in enumerate(alone)], ignore_index=True
        )
        merged = together.gaps.merge(single_gaps, on=keys, suffixes=("", "_alone"))
        assert len(merged) == len(together.gaps) == 4 * 3 * 2
        for column in ("f0", "f1", "sum_ig"):
            assert_fp32_close(merged[column], merged[f"{column}_alone"])
        # the gap is a difference of nearly equal numbers: float32 rounding of F shows in it
        np.testing.assert_allclose(merged["gap"], merged["gap_alone"], atol=1e-6)


def test_fused_modules_equal_one_at_a_time(sharp_model, tiny_tokens):
    fused = integrated_gradients_scores(
        sharp_model, tiny_tokens, LABELS, list(NEURON_TYPES), adaptive=False
    )
    for layer_type in NEURON_TYPES:
        single = integrated_gradients_scores(
            sharp_model, tiny_tokens, LABELS, layer_type, adaptive=False
        )
        for layer in (0, 1):
            assert_fp32_close(
                fused.scores[(layer_type, layer)], single.scores[(layer_type, layer)], rtol=1e-5
            )


def test_scoring_is_deterministic(sharp_model, tiny_tokens):
    torch.use_deterministic_algorithms(True)
    try:
        runs = [
            integrated_gradients_scores(sharp_model, tiny_tokens, LABELS, ["key", "ffn_out"])
            for _ in range(2)
        ]
    finally:
        torch.use_deterministic_algorithms(False)
    for module in runs[0].scores:
        assert np.array_equal(runs[0].scores[module], runs[1].scores[module])
    pd.testing.assert_frame_equal(runs[0].gaps, runs[1].gaps)


def test_grad_x_activation_is_first_order_autograd(sharp_model, tiny_tokens):
    """sum_t a * dF/da at the unmodified network, from fair-esm's own forward and autograd;
    equal to IG with one right-Riemann step."""
    layer_type, layer = "value", 0
    module = get_module(sharp_model.encoder, layer_type, layer)
    expected = []
    for tok, label in zip(tiny_tokens, LABELS, strict=True):
        kept = {}

        def hook(m, i, output, kept=kept):
            kept["a"] = output
            output.retain_grad()

        handle = module.register_forward_hook(hook)
        try:
            prob = torch.softmax(sharp_model(tok.unsqueeze(0)), -1)[0, label]
            (grad,) = torch.autograd.grad(prob, kept["a"])
        finally:
            handle.remove()
        expected.append((kept["a"] * grad).sum((0, 1)).detach().double().numpy())
    result = grad_x_activation_scores(sharp_model, tiny_tokens, LABELS, layer_type, [layer])
    assert_fp32_close(result.per_example[(layer_type, layer)], np.stack(expected))
    ig = integrated_gradients_scores(
        sharp_model,
        tiny_tokens,
        LABELS,
        layer_type,
        [layer],
        adaptive=False,
        steps=1,
        quadrature="riemann_right",
    )
    np.testing.assert_array_equal(
        ig.scores[(layer_type, layer)], result.scores[(layer_type, layer)]
    )


@pytest.mark.parametrize(
    "method,options",
    [
        ("activation", {"statistic": "mean"}),
        ("grad_x_activation", {}),
        ("integrated_gradients", {"steps": 4}),
    ],
)
def test_per_class_scores_average_back_to_all_classes(tiny_model, tiny_tokens, method, options):
    result = score_neurons(
        method, tiny_model, tiny_tokens, LABELS, ["key", "ffn_in"], None, "cpu", options=options
    )
    assert result.class_counts == {0: 2, 1: 1, 2: 1}
    for module, score in result.scores.items():
        weighted = sum(
            result.class_counts[c] * values for c, values in result.class_scores[module].items()
        ) / len(LABELS)
        np.testing.assert_allclose(weighted, score, rtol=1e-12)
        # class 0 is examples 0 and 3
        np.testing.assert_allclose(
            result.class_scores[module][0], result.per_example[module][[0, 3]].mean(0)
        )


def test_score_table_all_class_rows_are_what_selection_reads(tiny_model, tiny_tokens, tmp_path):
    result = activation_scores(tiny_model, tiny_tokens, LABELS, "key", [1])
    table = score_table(result, ("key", 1))
    assert list(table.columns) == [
        "layer", "layer_type", "neuron", "score", "label", "score_a", "score_b"
    ]  # fmt: skip
    assert table["label"].tolist() == [ALL_CLASSES] * 32 + [0] * 32 + [1] * 32 + [2] * 32
    path = tmp_path / "layer1.parquet"
    write_parquet(path, table, {"method": "activation"})
    read = all_class_rows(pd.read_parquet(path)).loc[:, ["layer", "layer_type", "neuron", "score"]]
    pd.testing.assert_frame_equal(
        read, score_frame(result.scores[("key", 1)], "key", 1), check_dtype=False
    )
    assert len(score_table(result, ("key", 1), per_class=False)) == 32


def test_score_halves_are_means_over_alternating_examples_of_each_class(tiny_model, tiny_tokens):
    result = activation_scores(tiny_model, tiny_tokens, LABELS, "key", [1])
    values = result.per_example[("key", 1)]
    labels = np.asarray(LABELS)
    half = split_halves(labels)
    for label in np.unique(labels):  # alternate within the class, first one in half 0
        assert half[labels == label].tolist() == [i % 2 for i in range((labels == label).sum())]
    table = score_table(result, ("key", 1))
    everyone = table[table["label"] == ALL_CLASSES]
    np.testing.assert_allclose(everyone["score_a"], values[half == 0].mean(0), rtol=1e-12)
    np.testing.assert_allclose(everyone["score_b"], values[half == 1].mean(0), rtol=1e-12)
    class0 = table[table["label"] == 0]  # class 0 is examples 0 and 3: one in each half
    np.testing.assert_allclose(class0["score_a"], values[0], rtol=1e-12)
    np.testing.assert_allclose(class0["score_b"], values[3], rtol=1e-12)
    one = score_table(
        activation_scores(tiny_model, tiny_tokens[:1], LABELS[:1], "key", [1]), ("key", 1)
    )
    assert one["score_b"].isna().all() and one["score_a"].notna().all()  # an empty half: NaN


def test_completeness_tolerance_is_relative_with_an_absolute_floor():
    np.testing.assert_allclose(
        completeness_tolerance(np.array([0.0, -0.5, 2.0]), rtol=0.01, atol=1e-4),
        [1e-4, 1e-4 + 0.005, 1e-4 + 0.02],
    )


def test_adaptive_steps_redo_only_examples_above_their_tolerance(sharp_model, tiny_tokens):
    base = integrated_gradients_scores(
        sharp_model, tiny_tokens, LABELS, "ffn_in", [0], steps=2, quadrature="riemann_trapezoid",
        adaptive=False, rtol=0.0, atol=0.0,
    )  # fmt: skip
    rel = base.gaps["gap"].abs() / (base.gaps["f1"] - base.gaps["f0"]).abs()
    rtol = float(rel.median())
    result = integrated_gradients_scores(
        sharp_model, tiny_tokens, LABELS, "ffn_in", [0], steps=2, quadrature="riemann_trapezoid",
        rtol=rtol, atol=0.0, max_steps=64,
    )  # fmt: skip
    above = rel > rtol
    assert above.any() and not above.all()
    assert (result.gaps.loc[~above, "steps"] == 2).all()
    assert (result.gaps.loc[above, "steps"] > 2).all()
    delta = (result.gaps["f1"] - result.gaps["f0"]).abs()
    done = result.gaps["gap"].abs() <= rtol * delta
    assert (done | (result.gaps["steps"] == 64)).all()
    assert (result.gaps["above_tolerance"] == ~done).all()
    assert result.info["n_above_tolerance"] == int((~done).sum())
    # capped at too few steps: the pairs left above their tolerance are counted, not hidden
    capped = integrated_gradients_scores(
        sharp_model, tiny_tokens, LABELS, "ffn_in", [0], steps=2, quadrature="riemann_trapezoid",
        rtol=1e-9, atol=0.0, max_steps=4,
    )  # fmt: skip
    still = capped.gaps["gap"].abs() > 1e-9 * (capped.gaps["f1"] - capped.gaps["f0"]).abs()
    assert still.sum() > 0
    assert capped.info["n_above_tolerance"] == int(still.sum())
    assert gap_summary(capped.gaps)["n_above_tolerance"] == int(still.sum())
    assert (capped.gaps["steps"] == 4).all()
    # refined pairs end as composite rules: capped at 4 nodes, the one panel [0, 1] was halved
    # once, and two 2-node trapezoids on [0, 1/2], [1/2, 1] are the 3-node trapezoid on [0, 1]
    assert (capped.gaps["panels"] == 2).all()
    three = integrated_gradients_scores(
        sharp_model, tiny_tokens, LABELS, "ffn_in", [0], steps=3, quadrature="riemann_trapezoid",
        adaptive=False,
    )  # fmt: skip
    assert_fp32_close(capped.per_example[("ffn_in", 0)], three.per_example[("ffn_in", 0)], 1e-5)
    assert_fp32_close(capped.gaps["gap"], three.gaps["gap"])
    # pairs within tolerance at once keep the first pass's values, bit for bit
    kept = result.gaps.index[~above]
    np.testing.assert_array_equal(
        result.per_example[("ffn_in", 0)][kept], base.per_example[("ffn_in", 0)][kept]
    )
    assert (result.gaps.loc[~above, "panels"] == 1).all()
    assert (result.gaps["steps"] == 2 * result.gaps["panels"]).all()
    summary = gap_summary(result.gaps)
    assert summary["n_more_steps"] == int(above.sum())
    assert summary["steps_max"] == result.gaps["steps"].max() > 2


def test_panels_add_up_to_the_whole_path(sharp_model, tiny_tokens):
    """Two panels [0, 0.3] and [0.3, 1] integrate to the whole path's attributions, and the
    second panel's F(lo) is F with the module's output scaled by 0.3 (fair-esm's forward with a
    hook)."""
    module = ("query", 1)
    pairs = [(e, module) for e in range(len(tiny_tokens))]
    alphas, weights = quadrature_rule("gausslegendre", 32)
    whole = gradient_integrals(sharp_model, tiny_tokens, LABELS, pairs, alphas, weights)
    tasks = [(pair, panel) for pair in pairs for panel in ((0.0, 0.3), (0.3, 1.0))]
    parts = panel_integrals(sharp_model, tiny_tokens, LABELS, tasks, alphas, weights)
    hook = {module: lambda _m, _i, output: output * 0.3}
    for e, pair in enumerate(pairs):
        total = parts.values[(pair, (0.0, 0.3))] + parts.values[(pair, (0.3, 1.0))]
        np.testing.assert_allclose(total, whole.values[pair], rtol=1e-5, atol=1e-8)
        assert parts.f0[(pair, (0.0, 0.3))] == pytest.approx(whole.f0[pair], abs=1e-7)
        with torch.no_grad(), forward_hooks(sharp_model, hook):
            scaled = torch.softmax(sharp_model(tiny_tokens[e].unsqueeze(0)), -1)[0, LABELS[e]]
        assert parts.f0[(pair, (0.3, 1.0))] == pytest.approx(float(scaled), abs=1e-6)
        # each panel is complete on its own: its attributions sum to F(hi) - F(lo)
        f_mid = parts.f0[(pair, (0.3, 1.0))]
        assert parts.values[(pair, (0.3, 1.0))].sum() == pytest.approx(
            whole.f1[e] - f_mid, abs=1e-5
        )


def _part(lo, hi, gap):
    return _Part(lo, hi, np.array([gap]), 0.0, 0.0)


def test_panels_to_halve_are_those_over_their_share_of_the_tolerance():
    parts = [_part(0.0, 0.5, 0.001), _part(0.5, 0.75, 0.2), _part(0.75, 1.0, -0.03)]
    # tolerance 0.1: shares 0.05, 0.025, 0.025; over them: the second and the third panel
    assert _to_split(parts, 0.1, budget=5) == [parts[1], parts[2]]
    assert _to_split(parts, 0.1, budget=1) == [parts[1]]  # the largest gap first
    assert _to_split(parts, 0.1, budget=0) == []
    assert parts[1].mid == 0.625 and parts[2].gap == pytest.approx(-0.03)


def test_refinement_finds_a_sharp_switch_that_doubling_steps_misses():
    """F(alpha) = sigmoid((alpha - 0.42) / 0.005), the shape a trained model's query and key
    paths show: a global 64-node Gauss-Legendre rule misses the switch by 7%, the
    panel rule of 16-node panels (same `_to_split` as the engine) meets 1% within 64 nodes."""
    from scipy.special import expit

    def f(a):
        return expit((np.asarray(a) - 0.42) / 0.005)

    def df(a):
        return f(a) * (1 - f(a)) / 0.005

    def integral(lo, hi, steps):
        x, w = quadrature_rule("gausslegendre", steps)
        return float(np.sum(w * (hi - lo) * df(lo + (hi - lo) * x)))

    delta = float(f(1.0) - f(0.0))
    assert abs(integral(0.0, 1.0, 64) - delta) > 0.01 * delta
    parts = [_Part(0.0, 1.0, np.array([integral(0.0, 1.0, 16)]), float(f(0.0)), float(f(1.0)))]
    while abs(sum(p.gap for p in parts)) > 0.01 * delta:
        split = _to_split(parts, 0.01 * delta, budget=(64 - 16 * len(parts)) // 16)
        assert split, "budget spent before the tolerance was met"
        for part in split:
            at = parts.index(part)
            parts[at : at + 1] = [
                _Part(lo, hi, np.array([integral(lo, hi, 16)]), float(f(lo)), float(f(hi)))
                for lo, hi in ((part.lo, part.mid), (part.mid, part.hi))
            ]
    assert 16 * len(parts) <= 64


def test_bf16_autocast_is_the_same_code_path(sharp_model, tiny_tokens):
    """bf16 autocast (meant for CUDA) runs through the same engine and ranks units alike."""
    exact = integrated_gradients_scores(
        sharp_model, tiny_tokens, LABELS, "ffn_in", [1], adaptive=False
    )
    bf16 = integrated_gradients_scores(
        sharp_model, tiny_tokens, LABELS, "ffn_in", [1], autocast=True
    )
    a, b = exact.scores[("ffn_in", 1)], bf16.scores[("ffn_in", 1)]
    ranks = pd.DataFrame({"a": a, "b": b}).rank()
    assert ranks["a"].corr(ranks["b"]) > 0.95
    assert bf16.info["autocast"] is True


def test_bad_input_is_refused(tiny_model, tiny_tokens):
    with pytest.raises(ValueError, match="unknown scoring method"):
        score_neurons("saliency", tiny_model, tiny_tokens, LABELS, "key")
    with pytest.raises(ValueError, match="label 5 out of range"):
        integrated_gradients_scores(tiny_model, tiny_tokens, [0, 1, 5, 0], "key")
    with pytest.raises(ValueError, match="out of range"):
        integrated_gradients_scores(tiny_model, tiny_tokens, LABELS, "key", [2])
    with pytest.raises(ValueError, match="unknown layer type"):
        integrated_gradients_scores(tiny_model, tiny_tokens, LABELS, "keys")


def test_quadrature_integrates_polynomials():
    for quadrature, exact_degree in [
        ("gausslegendre", 7),
        ("riemann_trapezoid", 1),
        ("riemann_middle", 1),
    ]:
        alphas, weights = quadrature_rule(quadrature, 4)
        for degree in range(exact_degree + 1):
            assert abs((weights * alphas**degree).sum() - 1 / (degree + 1)) < 1e-12
    for quadrature in QUADRATURES:
        alphas, weights = quadrature_rule(quadrature, 5)
        assert ((alphas >= 0) & (alphas <= 1)).all() and abs(weights.sum() - 1) < 1e-12
    with pytest.raises(ValueError, match="unknown quadrature"):
        quadrature_rule("simpson", 4)


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


# --- the engine: unit masks and per-token integrals ------------------------------------------


def test_engine_per_token_sums_to_the_scores(sharp_model, tiny_tokens):
    """per_token keeps the token axis (the example's unpadded tokens); its sum over tokens is
    the score, in a padded batch too; a mask of all ones is no mask."""
    alphas, weights = quadrature_rule("gausslegendre", 6)
    modules = [("query", 0), ("ffn_in", 1)]
    pairs = [(e, m) for e in range(len(tiny_tokens)) for m in modules]
    summed = gradient_integrals(sharp_model, tiny_tokens, LABELS, pairs, alphas, weights)
    ones = {m: torch.ones(get_module(sharp_model.encoder, *m).out_features) for m in modules}
    tokens = gradient_integrals(
        sharp_model, tiny_tokens, LABELS, pairs, alphas, weights, masks=ones, per_token=True
    )
    for e, m in pairs:
        units = get_module(sharp_model.encoder, *m).out_features
        assert tokens.values[(e, m)].shape == (len(tiny_tokens[e]), units)
        np.testing.assert_allclose(
            tokens.values[(e, m)].sum(0), summed.values[(e, m)], rtol=1e-6, atol=1e-12
        )
        assert tokens.f0[(e, m)] == pytest.approx(summed.f0[(e, m)], abs=1e-7)
    assert tokens.f1 == pytest.approx(summed.f1, abs=1e-7)


@pytest.mark.parametrize("layer_type", ["key", "attn_out", "ffn_in"])
def test_engine_unit_mask_scales_only_the_masked_units(sharp_model, tiny_tokens, layer_type):
    """With a unit mask, only those units are scaled: unmasked units get exactly zero
    attribution, F(0) is F with the masked units silenced (a hook on fair-esm's forward), and
    the attributions sum to F(1) - F(0)."""
    layer = 1
    units = get_module(sharp_model.encoder, layer_type, layer).out_features
    mask = torch.from_numpy((np.random.default_rng(0).random(units) < 0.3).astype(np.float32))
    module = (layer_type, layer)
    alphas, weights = quadrature_rule("gausslegendre", 24)
    pairs = [(e, module) for e in range(len(tiny_tokens))]
    out = gradient_integrals(
        sharp_model, tiny_tokens, LABELS, pairs, alphas, weights, masks={module: mask}
    )
    hook = {module: lambda _m, _i, output: output * (1 - mask)}
    for e, tok in enumerate(tiny_tokens):
        values = out.values[(e, module)]
        assert (values[mask.numpy() == 0] == 0).all() and (values[mask.numpy() == 1] != 0).any()
        with torch.no_grad():
            plain = torch.softmax(sharp_model(tok.unsqueeze(0)), -1)[0, LABELS[e]]
            with forward_hooks(sharp_model, hook):
                silenced = torch.softmax(sharp_model(tok.unsqueeze(0)), -1)[0, LABELS[e]]
        assert out.f1[e] == pytest.approx(float(plain), abs=1e-6)
        assert out.f0[(e, module)] == pytest.approx(float(silenced), abs=1e-6)
        assert values.sum() == pytest.approx(out.f1[e] - out.f0[(e, module)], abs=1e-4)


def training_frame(sizes: dict[int, int]) -> pd.DataFrame:
    """A train split with `sizes[label]` rows per class, classes interleaved as after a split."""
    rows = [(label, i) for label, n in sizes.items() for i in range(n)]
    rows.sort(key=lambda r: (r[1], r[0]))
    return pd.DataFrame(
        {
            "accession": [f"A{label}_{i}" for label, i in rows],
            "label": [label for label, _ in rows],
            "sequence": ["MK" * (1 + i % 5) for _, i in rows],
        }
    )


def test_stratified_sample_covers_every_class_equally():
    # one class far smaller than the others (the real-enzyme case: EC 7): it still gets examples
    frame = training_frame({0: 120, 1: 80, 2: 40, 3: 9, 4: 60, 5: 30, 6: 3})
    examples = pick_stratified(frame, 16, seed=0)
    counts = examples["label"].value_counts().to_dict()
    assert len(examples) == 16 and set(counts) == set(range(7))
    assert counts == {0: 3, 1: 3, 2: 2, 3: 2, 4: 2, 5: 2, 6: 2}  # 2 each, the 2 left: largest
    assert examples["accession"].is_unique
    # stable order: the rows keep the order they have in the train split
    assert (
        examples["accession"]
        .map(frame.set_index("accession").index.get_loc)
        .is_monotonic_increasing
    )
    # balanced as far as the classes allow: a class with fewer rows than its share gives all
    examples = pick_stratified(frame, 64, seed=0)
    assert examples["label"].value_counts().to_dict() == {
        0: 11, 1: 11, 2: 10, 3: 9, 4: 10, 5: 10, 6: 3,
    }  # fmt: skip
    assert stratified_counts({"a": 5, "b": 5, "c": 5}, 9) == {"a": 3, "b": 3, "c": 3}
    assert stratified_counts({"a": 1, "b": 7, "c": 7}, 10) == {"a": 1, "b": 5, "c": 4}
    assert stratified_counts({"a": 2, "b": 3}, 50) == {"a": 2, "b": 3}  # more than there are
    pd.testing.assert_frame_equal(pick_stratified(frame, 10_000, seed=0), frame)


def test_stratified_sample_is_seeded():
    frame = training_frame({0: 50, 1: 50, 2: 50})
    a, b = pick_stratified(frame, 12, seed=3), pick_stratified(frame, 12, seed=3)
    pd.testing.assert_frame_equal(a, b)
    # a class's pick depends on its own rows only: another class's rows change nothing of it
    more = pd.concat([frame, training_frame({3: 50})], ignore_index=True)
    picked = pick_stratified(more, 16, seed=3)
    assert picked["label"].value_counts().to_dict() == {0: 4, 1: 4, 2: 4, 3: 4}
    assert set(picked.loc[picked["label"] < 3, "accession"]) == set(a["accession"])
    assert set(pick_stratified(frame, 12, seed=4)["accession"]) != set(a["accession"])
    assert a["label"].value_counts().to_dict() == {0: 4, 1: 4, 2: 4}


def test_stratified_sample_refuses_fewer_examples_than_classes():
    frame = training_frame({0: 10, 1: 10, 2: 10, 3: 10})
    with pytest.raises(
        DataError, match=r"scoring\.n_examples is 3, fewer than the 4 classes"
    ) as err:
        pick_stratified(frame, 3, seed=0)
    assert "\n" not in str(err.value) and "at least 4" in str(err.value)
    with pytest.raises(DataError, match=r"evaluation\.mean_ablation\.n_examples"):
        pick_stratified(frame, 2, seed=0, setting="evaluation.mean_ablation.n_examples")
    assert len(pick_stratified(frame, 4, seed=0)) == 4


def test_examples_per_class_is_read_back_from_the_score_metadata(tmp_path):
    frame = training_frame({0: 20, 1: 20, 2: 1})
    examples = pick_stratified(frame, 7, seed=0)
    per_class = count_per_class(examples, ["1", "2", "3", "4"])
    assert per_class == {"1": 3, "2": 3, "3": 1, "4": 0}  # a class of the model without rows: 0
    path = tmp_path / "layer0.parquet"
    write_parquet(path, score_frame(np.zeros(3), "key", 0), {"examples_per_class": per_class})
    assert examples_per_class(path) == per_class
    assert list(examples_per_class(path)) == ["1", "2", "3", "4"]  # class order, not sorted keys
    # files from before: class_counts by label index, named by the model's classes
    old = {"class_counts": {"0": 5, "2": 1}, "classes": ["1", "2", "3"]}
    assert examples_per_class(old) == {"1": 5, "2": 0, "3": 1}
    assert examples_per_class({"method": "random-0"}) == {}


def test_one_accuracy_policy_for_scores_and_maps():
    """The IG accuracy policy is one object (`AccuracyPolicy`), read from the scores' block and
    the residue maps' block alike; its node limit is what both engines refine up to."""
    from kneurons.scoring.quadrature import ATOL, RTOL, AccuracyPolicy

    scores = AccuracyPolicy.from_config({"steps": 16, "quadrature": "gausslegendre",
                                         "max_tokens": 8192, "max_steps": 128})  # fmt: skip
    assert (scores.rtol, scores.atol, scores.adaptive, scores.node_limit) == (RTOL, ATOL, True, 128)
    maps = AccuracyPolicy.from_config({"steps": 8, "adaptive": False, "n_sequences": 20})
    assert maps.node_limit == 8  # not adaptive: one pass
    assert AccuracyPolicy(steps=4, max_steps=None).node_limit == 64


@pytest.mark.parametrize(
    "quadrature, steps, panel",
    [
        ("gausslegendre", 16, (0.0, 1.0)),  # nodes inside (0, 1): shared
        ("riemann_right", 1, (0.0, 1.0)),  # gradient x activation's rule: shared
        ("riemann_left", 8, (0.3, 1.0)),  # a node at the panel's start 0.3 > 0: shared
        ("riemann_trapezoid", 9, (0.0, 1.0)),  # a node at alpha = 0: run apart
    ],
)
def test_query_and_key_sharing_their_rows_equal_them_run_apart(
    sharp_model, tiny_tokens, quadrature, steps, panel
):
    """One backward at (alpha q, k) gives the query path's gradient and alpha times the key
    path's: the shared rows give the attributions and F(lo) of separate rows (float rounding)."""
    modules = [(lt, layer) for lt in ("query", "key", "value") for layer in (0, 1)]
    tasks = [((e, m), panel) for e in range(len(tiny_tokens)) for m in modules]
    alphas, weights = quadrature_rule(quadrature, steps)
    run = {
        share: panel_integrals(
            sharp_model, tiny_tokens, LABELS, tasks, alphas, weights, share_query_key=share
        )
        for share in (True, False)
    }
    for task in tasks:
        apart = run[False].values[task]
        np.testing.assert_allclose(
            run[True].values[task], apart, rtol=1e-4, atol=1e-6 * np.abs(apart).max()
        )
        assert run[True].f0[task] == pytest.approx(run[False].f0[task], abs=1e-6)


def test_query_and_key_tasks_merge_only_where_the_key_gradient_can_be_recovered():
    from kneurons.scoring.integrals import SHARED, _merge_query_key

    tasks = [("query", 0, 0.0, 1.0), ("key", 0, 0.0, 1.0), ("value", 0, 0.0, 1.0),
             ("query", 1, 0.0, 1.0)]  # fmt: skip
    inside = np.array([0.1, 0.5, 0.9])
    assert _merge_query_key(tasks, inside, {}) == [
        (SHARED, 0, 0.0, 1.0), ("value", 0, 0.0, 1.0), ("query", 1, 0.0, 1.0)
    ]  # fmt: skip
    with_zero = np.array([0.0, 0.5, 1.0])
    assert _merge_query_key(tasks, with_zero, {}) == tasks  # dF/dk / alpha at alpha = 0
    assert _merge_query_key(tasks, inside, {"key": torch.ones(4)}) == tasks  # unit masks
