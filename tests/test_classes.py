"""Class-specific targets: a hand-built model whose units each carry one class, the
specificity arithmetic, the random correction, the refinement counts and the summary's words."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from kneurons.batching import tokenize
from kneurons.class_targets import scaled_fingerprint, scaled_masks, true_class_probability
from kneurons.classes import (
    alternative_of_factor,
    class_findings,
    class_rankings,
    effects_table,
    format_factor,
    operation_of,
    shared_units,
    specificity_section,
    specificity_table,
)
from kneurons.evaluate import predict_masked, prepare_batches
from kneurons.masking import mask_fingerprint, unit_masks
from kneurons.model import Architecture, EsmClassifier, alphabet, build_random

CLASS_RESIDUES = "ACD"  # ffn_in unit c fires on residue CLASS_RESIDUES[c]


def hand_built_model() -> EsmClassifier:
    """One layer, width 16, 3 classes. Attention contributes nothing (its weights are 0); ffn_in
    unit c fires where the residue is CLASS_RESIDUES[c] and writes residual dimension c, which
    the head reads as class c's logit. Every residue's embedding also carries a large constant
    (dimension 15) on which the layer norms' scale rests, so a unit's output moves its logit
    nearly linearly. A small head bias favours class 2 when the class signals tie."""
    model = EsmClassifier(build_random(Architecture(1, 16, 2), seed=0), num_classes=3).eval()
    encoder = model.encoder
    ab = alphabet()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "layer_norm" not in name:
                param.zero_()
        for aa in "ACDEFGHIKLMNPQRSTVWY":
            encoder.embed_tokens.weight[ab.get_idx(aa), 15] = 20.0
        fc1, fc2 = encoder.layers[0].fc1, encoder.layers[0].fc2
        for c, aa in enumerate(CLASS_RESIDUES):
            encoder.embed_tokens.weight[ab.get_idx(aa), 8 + c] = 1.0
            fc1.weight[c, 8 + c] = 30.0
            fc1.bias[c] = 6.0
            fc2.weight[c, c] = 8.0
            model.head.weight[c, c] = 1.0
        model.head.bias[2] = 0.2
    return model


SEQUENCES = ["A" * 10, "AAAAGGAAAA", "C" * 10, "CCCGGCCCCC", "D" * 10, "DDDDDGGDDD"]
LABELS = np.array([0, 0, 1, 1, 2, 2])


def unit_selection(units: list[int], n_units: int = 64) -> pd.DataFrame:
    frame = pd.DataFrame({"layer_type": "ffn_in", "layer": 0, "neuron": np.arange(n_units)})
    return frame.assign(selected=frame["neuron"].isin(units))


def run_masks(model, masks, max_tokens=4096):
    batches = prepare_batches(tokenize(alphabet(), SEQUENCES), model.encoder.padding_idx, 4096)
    return predict_masked(model, batches, [{}, *masks], torch.device("cpu"), max_tokens=max_tokens)


def test_hand_built_unit_carries_exactly_its_class():
    model = hand_built_model()
    masks = [scaled_masks(unit_selection([c]), f) for c in range(3) for f in (0.0, 2.0)]
    base, *changed = run_masks(model, masks)
    base_prob = true_class_probability(base, LABELS)
    assert (base.argmax(1).numpy() == LABELS).all()
    assert base_prob.min() > 0.9
    for c in range(3):
        own, other = LABELS == c, LABELS != c
        suppressed, amplified = changed[2 * c], changed[2 * c + 1]
        p_sup = true_class_probability(suppressed, LABELS)
        p_amp = true_class_probability(amplified, LABELS)
        # suppressing unit c takes class c to about chance (1/3) and leaves the others
        assert p_sup[own].max() < 0.4
        assert np.abs(p_sup[other] - base_prob[other]).max() < 0.005
        # amplifying it raises class c's confidence and leaves the others
        assert (p_amp[own] - base_prob[own]).min() > 0.005
        assert np.abs(p_amp[other] - base_prob[other]).max() < 0.005
        predicted = suppressed.argmax(1).numpy()
        assert (predicted[other] == LABELS[other]).all()
        if c < 2:  # with its unit silenced, class c falls to the head's default (class 2)
            assert (predicted[own] == 2).all()


@pytest.mark.parametrize("max_tokens", [1, 4096])
def test_an_amplifying_mask_alone_in_its_pass_is_applied(max_tokens):
    """A scaled mask has no zero, yet it changes the module: with one mask per pass (max_tokens
    1) or several, the x2 mask must be applied (a check for "all nonzero" would skip it)."""
    model = hand_built_model()
    amplify = scaled_masks(unit_selection([0]), 2.0)
    base, amplified = run_masks(model, [amplify], max_tokens=max_tokens)
    p_base = true_class_probability(base, LABELS)
    p_amp = true_class_probability(amplified, LABELS)
    assert (p_amp[LABELS == 0] - p_base[LABELS == 0]).min() > 0.005


def test_scaled_masks_and_their_fingerprints():
    selection = unit_selection([1, 3], n_units=5)
    mask = scaled_masks(selection, 2.0)[("ffn_in", 0)]
    assert mask.tolist() == [1.0, 2.0, 1.0, 2.0, 1.0]
    zero = scaled_masks(selection, 0.0)
    # factor 0 is the zero ablation of the selected units: the same fingerprint
    assert scaled_fingerprint(zero) == mask_fingerprint(unit_masks(selection, "remove"))
    assert scaled_fingerprint(scaled_masks(selection, 2.0)) != scaled_fingerprint(
        scaled_masks(selection, 3.0)
    )
    assert scaled_fingerprint(scaled_masks(selection, 1.0)) == []
    assert scaled_fingerprint({}) == []
    with pytest.raises(ValueError, match="factor"):
        scaled_masks(selection, -1.0)


def test_factor_words():
    assert [operation_of(f) for f in (0, 0.5, 1, 2)] == [
        "suppress",
        "dampen",
        "identity",
        "amplify",
    ]
    assert [alternative_of_factor(f) for f in (0, 0.5, 1, 2)] == ["less", "less", None, "greater"]
    assert format_factor(2.0) == "2" and format_factor(0.5) == "0.5"


Y = np.array([0, 0, 1, 1, 2, 2])


def eval_row(method, label, true_prob, correct, base=0.9, factor=0.0, seed=None):
    family = "random" if method.startswith("random") else method
    return {
        "model": "m",
        "method": method,
        "method_family": family,
        "seed": seed,
        "layer_type": "key",
        "factor": factor,
        "operation": operation_of(factor),
        "retention": 10.0,
        "label": label,
        "selected_class": None if label < 0 else str(label + 1),
        "n_selected": 3,
        "n_total": 30,
        "true_prob": list(true_prob),
        "correct": list(correct),
        "base_true_prob": [base] * 6,
        "base_correct": [True] * 6,
    }


def hand_evals() -> pd.DataFrame:
    """Class 0's own units take 0.6 off class 0's probability and 0.1 off class 2's; three
    random seeds with small class-wise changes."""
    rows = [
        eval_row("ig", 0, [0.3, 0.3, 0.9, 0.9, 0.8, 0.8], [0, 0, 1, 1, 1, 1]),
        eval_row("random-0", -1, [0.8] * 6, [1] * 6, seed=0),  # every class -0.1
        eval_row("random-1", -1, [0.9, 0.9, 0.8, 0.8, 0.9, 0.9], [1] * 6, seed=1),
        eval_row("random-2", -1, [0.85, 0.85, 0.9, 0.9, 0.9, 0.9], [1] * 6, seed=2),
    ]
    frame = pd.DataFrame(rows)
    frame["seed"] = frame["seed"].astype("Int64")
    return frame


def test_specificity_arithmetic_by_hand():
    table = specificity_table(hand_evals(), Y, ["1", "2", "3"], n_boot=200, seed=0)
    ig = table[table["method"] == "ig"].iloc[0]
    # Δ per class: class 0 -0.6, class 1 0.0, class 2 -0.1 -> specificity -0.6 - (-0.05)
    assert ig["delta_prob_class"] == pytest.approx(-0.6)
    assert ig["delta_prob_others"] == pytest.approx(-0.05)
    assert ig["specificity_prob"] == pytest.approx(-0.55)
    # within-class changes are constant: every bootstrap resample gives the same value
    assert ig["specificity_prob_ci_low"] == pytest.approx(-0.55)
    assert ig["specificity_prob_ci_high"] == pytest.approx(-0.55)
    # accuracy: class 0 loses both (-1), the others keep theirs -> -1 - 0
    assert ig["specificity_acc"] == pytest.approx(-1.0)
    # random specificities for class 0: seed 0: 0; seed 1: 0 - (-0.05) = 0.05; seed 2: -0.05
    null = [0.0, 0.05, -0.05]
    assert ig["random_prob_mean"] == pytest.approx(np.mean(null))
    assert ig["random_prob_std"] == pytest.approx(np.std(null, ddof=1))
    assert ig["corrected_prob"] == pytest.approx(-0.55 - np.mean(null))
    assert ig["p_empirical_prob"] == pytest.approx(1 / 4)  # below every seed: (0 + 1) / (3 + 1)
    assert ig["p_t_prob"] < 0.01
    assert ig["corrected_ci_high_prob"] < 0
    # random rows: one per class, no tests of their own
    random = table[table["method_family"] == "random"]
    assert len(random) == 9
    seed1 = random[(random["method"] == "random-1") & (random["label"] == 1)].iloc[0]
    assert seed1["specificity_prob"] == pytest.approx(-0.1 - 0.0)
    assert np.isnan(seed1["p_prob"])


def test_amplification_is_tested_upwards():
    evals = hand_evals()
    evals["factor"] = 2.0
    evals["operation"] = "amplify"
    table = specificity_table(evals, Y, ["1", "2", "3"], n_boot=200, seed=0)
    ig = table[table["method"] == "ig"].iloc[0]
    # the same fall now goes against the expected direction: no finding
    assert ig["p_empirical_prob"] == pytest.approx(1.0)
    assert not ig["specific_prob"]


def test_effects_are_corrected_by_the_random_mean():
    effects = effects_table(hand_evals(), Y, ["1", "2", "3"])
    assert len(effects) == 4 * 3
    ig = effects[effects["method"] == "ig"].set_index("evaluated_label")
    assert ig.loc[0, "delta_prob"] == pytest.approx(-0.6)
    assert ig.loc[2, "delta_prob"] == pytest.approx(-0.1)
    # random mean change of class 0: (-0.1 + 0 - 0.05) / 3
    assert ig.loc[0, "corrected_delta_prob"] == pytest.approx(-0.6 + 0.05)
    assert ig.loc[1, "delta_acc"] == pytest.approx(0.0)
    assert ig.loc[0, "delta_acc"] == pytest.approx(-1.0)


def test_evaluations_of_another_test_set_are_refused():
    with pytest.raises(ValueError, match="another test set"):
        specificity_table(hand_evals(), Y[:4], ["1", "2", "3"])


def test_one_class_gives_no_specificity():
    evals = hand_evals()
    assert specificity_table(evals, np.zeros(6, dtype=int), ["1", "2", "3"]).empty


def ranking(tops: dict[int, list[int]], n_units: int = 4) -> pd.DataFrame:
    """A selection file (scope layer_type) whose class c ranks units `tops[c]` first."""
    parts = []
    for label, top in tops.items():
        order = top + [u for u in range(n_units) if u not in top]
        rank = np.argsort(order)
        parts.append(
            pd.DataFrame(
                {
                    "layer_type": "key",
                    "layer": 0,
                    "neuron": np.arange(n_units),
                    "label": label,
                    "group_ranking": pd.Series([None] * n_units, dtype="string"),
                    "score": -rank.astype(float),
                    "rank": rank,
                    "pool_size": n_units,
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def test_shared_units_are_counted_per_class():
    table = ranking({-1: [0, 1], 0: [0, 1], 1: [0, 2], 2: [0, 3]})
    shared = shared_units({("ig", "key"): table}, [50], shared_fraction=0.5)
    assert shared["n_selected_units"].tolist() == [2, 2, 2]
    assert shared["n_shared"].tolist() == [1, 1, 1]  # unit 0 is in all three top sets
    assert shared["n_specific"].tolist() == [1, 1, 1]


def test_class_rankings_per_class_or_random():
    table = ranking({-1: [0, 1], 0: [0, 1], 1: [2, 3]})
    per_class = class_rankings(table, "ig")
    assert sorted(per_class) == [0, 1]
    assert per_class[1].sort_values("rank")["neuron"].tolist()[:2] == [2, 3]
    assert list(class_rankings(table, "random")) == [-1]
    with pytest.raises(ValueError, match="per_class"):
        class_rankings(ranking({-1: [0, 1]}), "ig")


def test_summary_words_say_what_was_found():
    table = specificity_table(hand_evals(), Y, ["1", "2", "3"], n_boot=200, seed=0)
    text = specificity_section(table, "m")
    assert "class-specific knowledge neurons" in text
    assert "EC 1" in text and "random" in text.lower()
    bullets = class_findings(table)
    assert len(bullets) == 1 and "suppress ×0, top 10%" in bullets[0]
    # without random seeds: no test, and the section says so
    alone = hand_evals().iloc[:1]
    table = specificity_table(alone, Y, ["1", "2", "3"], n_boot=50, seed=0)
    assert "No random baseline" in specificity_section(table, "m")
    assert class_findings(table) == []


def test_a_model_at_chance_is_no_finding():
    evals = hand_evals()
    # the unchanged model right on 2 of 6 sequences: accuracy 1/3 = chance for 3 classes
    evals["base_correct"] = [[True, False, False, True, False, False]] * len(evals)
    table = specificity_table(evals, Y, ["1", "2", "3"], n_boot=200, seed=0)
    assert table["base_accuracy"].iloc[0] == pytest.approx(1 / 3)
    assert table["base_accuracy_ci_low"].iloc[0] <= 1 / 3
    text = specificity_section(table, "m")
    assert "at chance" in text and "Not a finding" in text
    assert class_findings(table) == []
    # a model right everywhere is not at chance
    table = specificity_table(hand_evals(), Y, ["1", "2", "3"], n_boot=200, seed=0)
    assert table["base_accuracy"].iloc[0] == 1.0 and "at chance" not in specificity_section(
        table, "m"
    )
