"""Class-specific targets: a hand-built model whose units each carry one class; on constructed
evaluations, the calls (specific, output push, off-target damage, sink collapse), chance as the
majority rate, alpha, the random correction, the refinement counts and the summary's words."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
import torch

from kneurons.classes.effects import effects_table
from kneurons.classes.figures import NO_SCORES, cell_digits, matrix_panel, plot_class_matrix
from kneurons.classes.masks import (
    per_sequence,
    scaled_fingerprint,
    scaled_masks,
    true_class_probability,
)
from kneurons.classes.rankings import (
    alternative_of_factor,
    class_eval_frame,
    class_rankings,
    operation_of,
    shared_units,
)
from kneurons.classes.report import class_findings, specificity_section
from kneurons.classes.stats import majority_rate, sink, specificity_table
from kneurons.evaluation.masked import predict_masked
from kneurons.evaluation.masking import mask_fingerprint, unit_masks
from kneurons.figures import pyplot, text_colour
from kneurons.model.batching import tokenize
from kneurons.model.classifier import Architecture, EsmClassifier, alphabet, build_random
from kneurons.model.predict import prepare_batches
from kneurons.vocab import format_retention

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
    assert format_retention(2.0) == "2" and format_retention(0.5) == "0.5"


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


# ---------------------------------------------------------------------------------------------
# The statistics on constructed evaluations: a "set" changes the logits of a 3-class model


CLASSES = ["1", "2", "3"]
N_PER_CLASS = 12
Y = np.repeat([0, 1, 2], N_PER_CLASS)


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def trained_logits(y=Y, knows=True, seed=0, noise=0.3) -> np.ndarray:
    """Logits of an unchanged model: class y's logit +3 (p ~ 0.9) when it knows the classes,
    and per-sequence noise either way."""
    z = np.random.default_rng(seed).normal(0.0, noise, size=(len(y), len(CLASSES)))
    if knows:
        z[np.arange(len(y)), y] += 3.0
    return z


def knowledge(c, shift, y=Y):
    """Units that hold class c's knowledge: class c's logit moves on class c's inputs only."""

    def change(z):
        z = z.copy()
        z[y == c, c] += shift
        return z

    return change


def push(c, shift, noise=0.0, seed=0):
    """Units that push the OUTPUT: class c's logit moves on every input alike (plus noise that
    does not depend on the class)."""

    def change(z):
        z = z.copy()
        z[:, c] += shift + np.random.default_rng(seed + c).normal(0.0, noise, len(z))
        return z

    return change


def damage_others(c, shift, y=Y):
    """Units that lower every OTHER class's true-class logit on its own inputs."""

    def change(z):
        z = z.copy()
        for e in range(len(CLASSES)):
            if e != c:
                z[y == e, e] += shift
        return z

    return change


def both(*changes):
    def change(z):
        for f in changes:
            z = f(z)
        return z

    return change


def per_sequence_columns(z: np.ndarray, y: np.ndarray, prefix: str = "") -> dict:
    p = softmax(z)
    predicted = z.argmax(1)
    return {
        f"{prefix}true_prob": p[np.arange(len(y)), y],
        f"{prefix}correct": predicted == y,
        f"{prefix}predicted": predicted,
        f"{prefix}probs": p.ravel(),
    }


def logit_row(method, label, z_base, z_changed, y=Y, factor=0.0, seed=None) -> dict:
    return {
        "model": "m",
        "method": method,
        "method_family": "random" if method.startswith("random") else method,
        "seed": seed,
        "layer_type": "key",
        "factor": factor,
        "operation": operation_of(factor),
        "retention": 10.0,
        "label": label,
        "selected_class": None if label < 0 else CLASSES[label],
        "n_selected": 3,
        "n_total": 30,
        **per_sequence_columns(z_changed, y),
        **per_sequence_columns(z_base, y, "base_"),
    }


def constructed(sets: dict, factor=0.0, y=Y, z=None, n_seeds=8, method="ig") -> pd.DataFrame:
    """Evaluations: class c's own units change the logits by sets[c]; each random seed adds
    small noise to every logit (random units of the same size)."""
    z = trained_logits(y) if z is None else z
    rows = [logit_row(method, c, z, change(z), y, factor) for c, change in sets.items()]
    for s in range(n_seeds):
        noise = np.random.default_rng(100 + s).normal(0.0, 0.15, size=z.shape)
        rows.append(logit_row(f"random-{s}", -1, z, z + noise, y, factor, seed=s))
    frame = class_eval_frame(rows)
    return frame


def table_of(evals, y=Y, **options) -> pd.DataFrame:
    options = {"n_boot": 300, "seed": 0, **options}
    return specificity_table(evals, y, CLASSES, **options)


def scored_rows(table: pd.DataFrame) -> pd.DataFrame:
    return table[table["method_family"] != "random"].set_index("label")


def test_a_genuinely_specific_set_is_called_specific():
    """Own class drops, the others untouched, p(c) drops only on class-c inputs."""
    for factor, shift in ((0.0, -4.0), (2.0, 1.5)):
        evals = constructed({c: knowledge(c, shift) for c in range(3)}, factor=factor)
        rows = scored_rows(table_of(evals))
        assert rows["effect_kind"].tolist() == ["specific"] * 3, rows["effect_kind"]
        assert rows["specific"].all()
        assert rows["own_beyond"].all() and rows["input_beyond"].all()
        assert rows["own_beyond_cross"].all() and not rows["off_beyond"].any()
        assert (rows["off_prob"] == 0).all() and (rows["cross_mean"] == 0).all()
        # suppressing: p(c) of class c's sequences falls; the log-odds by exactly the shift
        assert np.sign(rows["own_prob"]).tolist() == [np.sign(shift)] * 3
        assert rows["logodds_own_inputs"].to_numpy() == pytest.approx([shift] * 3)
        assert rows["logodds_other_inputs"].to_numpy() == pytest.approx([0, 0, 0])
        assert not rows["sink_collapse"].any()


def test_own_class_arithmetic_against_random():
    evals = constructed({c: knowledge(c, -4.0) for c in range(3)})
    table = table_of(evals)
    ig = scored_rows(table).loc[0]
    first = evals.iloc[0]
    true_delta = np.asarray(first["true_prob"]) - np.asarray(first["base_true_prob"])
    assert ig["own_prob"] == pytest.approx(true_delta[Y == 0].mean())
    randoms = table[(table["method_family"] == "random") & (table["label"] == 0)]
    assert len(table[table["method_family"] == "random"]) == 8 * 3  # one row per seed and class
    assert ig["own_random_mean"] == pytest.approx(randoms["own_prob"].mean())
    assert ig["own_delta"] == pytest.approx(ig["own_prob"] - randoms["own_prob"].mean())
    # the largest off-target drop of each seed, against which the set's own is tested
    assert ig["off_random_mean"] == pytest.approx(randoms["off_prob"].mean())
    assert (randoms["off_prob"] <= randoms["others_prob_mean"]).all()
    assert randoms["own_p"].isna().all() and (randoms["effect_kind"] == "random").all()


def test_damage_to_other_classes_alone_is_not_specificity():
    """Amplified units that leave their own class and lower the others: the old statistic
    (own minus the mean of the others) called this specific."""
    evals = constructed({c: damage_others(c, -2.0) for c in range(3)}, factor=2.0)
    rows = scored_rows(table_of(evals))
    assert (rows["own_prob"] == 0).all()
    assert (rows["own_prob"] - rows["others_prob_mean"] > 0.1).all()  # the old "specificity"
    assert not rows["specific"].any()
    assert rows["off_beyond"].all()
    assert (rows["effect_kind"] == "off-target").all()


def test_off_target_damage_needs_the_margin():
    sets = {c: both(knowledge(c, -4.0), damage_others(c, -0.7)) for c in range(3)}
    evals = constructed(sets)
    rows = scored_rows(table_of(evals))
    assert rows["off_beyond"].all() and rows["margin_met"].all()
    assert rows["specific"].all()
    # the own-class effect (~ -0.8) does not exceed the off-target drop (~ -0.1) by 0.9
    rows = scored_rows(table_of(evals, margin=0.9))
    assert (rows["effect_kind"] == "off-target").all() and not rows["specific"].any()


def test_a_sink_collapse_is_flagged():
    """Every class's units make the model answer class 3 whatever the input."""
    evals = constructed({c: push(2, 8.0) for c in range(3)})
    table = table_of(evals)
    rows = scored_rows(table)
    assert rows["sink_collapse"].all()
    assert (rows["sink_class"] == "3").all() and (rows["sink_share"] == 1.0).all()
    assert rows["sink_test_share"].to_numpy() == pytest.approx([1 / 3] * 3)
    assert (rows["effect_kind"] == "collapse").all() and not rows["specific"].any()
    assert not table["base_sink_collapse"].any()
    text = specificity_section(table, "m")
    assert "sink collapse for EC 1, EC 2" in text and "EC 3 for 100%" in text


def test_the_sink_rule():
    y = np.repeat([0, 1, 2, 3], 25)
    assert sink(np.full(100, 1), y, 4)["collapse"]
    assert not sink(np.r_[np.full(79, 1), np.zeros(21, int)], y, 4)["collapse"]
    # a class that is most of the test set anyway is no sink
    y = np.r_[np.zeros(60, int), np.ones(40, int)]
    assert not sink(np.r_[np.zeros(85, int), np.ones(15, int)], y, 2)["collapse"]


def test_a_pure_output_push_is_not_specific():
    """Class c's units lower class c's logit on every input alike: p(c) of class c's sequences
    falls far beyond random, yet the units know nothing of class-c sequences."""
    evals = constructed({c: push(c, -2.0) for c in range(3)})
    rows = scored_rows(table_of(evals))
    assert rows["own_beyond"].all() and rows["output_beyond"].all()
    assert rows["input_effect"].to_numpy() == pytest.approx([0, 0, 0])
    assert not rows["input_beyond"].any()
    assert (rows["effect_kind"] == "output").all() and not rows["specific"].any()
    # the push lowers p(c) of the other classes' sequences too
    assert (rows["pc_other_inputs"] < 0).all()


def test_a_label_permuted_run_calls_nothing_specific():
    """Labels independent of the sequences (model at chance), units that push the output away
    from their class with input-dependent noise: no set is specific, by the statistics alone
    (the calls are not merely replaced by the at-chance guard)."""
    z = trained_logits(knows=False, noise=1.0)  # answers vary, independent of the labels
    for factor in (0.0, 2.0):
        shift = -0.4 if factor == 0 else 0.4
        sets = {c: push(c, shift, noise=0.2) for c in range(3)}
        table = table_of(constructed(sets, factor=factor, z=z))
        rows = scored_rows(table)
        assert table["model_at_chance"].all()
        assert rows["own_beyond"].all()  # what the old statistic saw
        assert not rows["input_beyond"].any()
        assert set(rows["effect_kind"]) == {"output"}
        assert not rows["specific"].any()
        assert class_findings(table) == []
        text = specificity_section(table, "m")
        assert "at chance" in text and not re.search(r"class-specific for (all|\d+ of)", text)


def test_at_chance_no_row_is_specific():
    """The guard: a model at chance turns even a specific-looking set into no finding."""
    evals = constructed({c: knowledge(c, -4.0) for c in range(3)})
    predicted = np.where(np.arange(len(Y)) % 3 == 0, Y, (Y + 1) % 3)  # right on a third
    evals["base_correct"] = [predicted == Y] * len(evals)
    table = table_of(evals)
    assert table["model_at_chance"].all() and table["base_above_chance_p"].iloc[0] > 0.05
    rows = scored_rows(table)
    assert (rows["effect_kind"] == "at-chance").all() and not rows["specific"].any()
    assert class_findings(table) == []
    text = specificity_section(table, "m")
    assert "at chance" in text and "Not a finding" in text


def test_chance_is_the_majority_rate():
    y = np.repeat([0, 1, 2], [24, 12, 12])
    z = np.zeros((len(y), 3))
    z[:, 0] = 1.0  # always answers class 1: right on half the test set
    evals = constructed({c: knowledge(c, -1.0, y=y) for c in range(3)}, y=y, z=z)
    table = table_of(evals, y=y)
    assert table["chance"].iloc[0] == pytest.approx(0.5)
    assert table["base_accuracy"].iloc[0] == pytest.approx(0.5)
    assert table["majority_label"].iloc[0] == 0
    assert table["model_at_chance"].all() and not table["specific"].any()
    assert majority_rate(y) == (0, 0.5)


def test_alpha_is_honoured():
    evals = constructed({c: knowledge(c, -4.0) for c in range(3)})
    table = table_of(evals, alpha=0.05)
    assert table["specific"].sum() == 3 and (table["alpha"] == 0.05).all()
    strict = table_of(evals, alpha=float(table["own_q"].min()) / 2)
    assert not strict["own_beyond"].any() and not strict["specific"].any()
    assert set(scored_rows(strict)["effect_kind"]) <= {"none", "output", "off-target"}
    assert f"q ≤ {float(strict['alpha'].iloc[0]):g}" in specificity_section(strict, "m")
    # the Findings read the level the table was called at, whatever they are passed
    bullets = class_findings(strict, alpha=0.5)
    assert "no set of a class's own units is class-specific" in bullets[0]


def test_clusters_resample_whole_homology_clusters():
    evals = constructed({c: knowledge(c, -4.0) for c in range(3)})
    clusters = np.arange(len(Y)) // 2  # pairs of sequences of one class
    table = table_of(evals, clusters=clusters)
    assert table["specific"].sum() == 3


def test_effects_are_corrected_by_the_random_mean():
    evals = constructed({c: knowledge(c, -4.0) for c in range(3)})
    effects = effects_table(evals, Y, CLASSES)
    assert len(effects) == len(evals) * 3
    ig = effects[(effects["method"] == "ig") & (effects["label"] == 0)]
    ig = ig.set_index("evaluated_label")
    randoms = effects[(effects["method_family"] == "random") & (effects["evaluated_label"] == 0)]
    assert ig.loc[0, "delta_prob"] < -0.5 and ig.loc[1, "delta_prob"] == 0
    assert ig.loc[0, "corrected_delta_prob"] == pytest.approx(
        ig.loc[0, "delta_prob"] - randoms["delta_prob"].mean()
    )
    assert ig.loc[0, "delta_acc"] == pytest.approx(-1.0)
    # p(class 1) moves on class 1's sequences only: knowledge of the input, not a push
    assert ig.loc[0, "delta_selected_prob"] < -0.5
    assert ig.loc[1, "delta_selected_prob"] == 0 and ig.loc[2, "delta_selected_prob"] == 0
    assert ig.loc[1, "share_predicted"] > ig.loc[1, "base_share_predicted"]
    assert randoms["delta_selected_prob"].isna().all()


def test_evaluations_of_another_test_set_are_refused():
    evals = constructed({0: knowledge(0, -4.0)})
    with pytest.raises(ValueError, match="another test set"):
        specificity_table(evals, Y[:30], CLASSES)
    with pytest.raises(ValueError, match="rerun it"):
        specificity_table(evals.drop(columns="probs"), Y, CLASSES)


def test_one_class_gives_no_specificity():
    evals = constructed({0: knowledge(0, -4.0)})
    assert specificity_table(evals, np.zeros(len(Y), dtype=int), CLASSES).empty


def test_summary_words_say_what_was_found():
    sets = {0: knowledge(0, -4.0), 1: push(1, -2.0), 2: damage_others(2, -2.0)}
    table = table_of(constructed(sets))
    assert scored_rows(table)["effect_kind"].tolist() == ["specific", "output", "off-target"]
    text = specificity_section(table, "m")
    assert "class-specific knowledge neurons" in text
    for words in (
        "Own-class effect",
        "Largest off-target effect",
        "Input knowledge or output push",
        "Sink collapse",
        "one-sided",
        "one family per question",
        "class-specific for 1 of 3 classes (EC 1)",
        "output push (p(c) moved alike on every input) for EC 2",
        "off-target damage for EC 3 (largest drop of another class: EC 2 −0.3",
        "specific ✓",
    ):
        assert words in text, words
    bullets = class_findings(table)
    assert len(bullets) == 1 and "suppress ×0, top 10%" in bullets[0]
    assert "ig key (1 of 3 classes: EC 1" in bullets[0]
    # without random seeds: no test, and the section says so
    alone = constructed(sets, n_seeds=0)
    table = table_of(alone)
    assert (scored_rows(table)["effect_kind"] == "untested").all()
    assert "No random baseline" in specificity_section(table, "m")
    assert class_findings(table) == []


def test_the_matrix_figure_has_both_views(tmp_path):
    evals = constructed({c: knowledge(c, -4.0) for c in range(3)})
    effects = effects_table(evals, Y, CLASSES)
    plot_class_matrix(effects, tmp_path / "m.png", "ig", "key")
    assert (tmp_path / "m.png").stat().st_size > 0 and (tmp_path / "m.svg").stat().st_size > 0


def _cell_texts(ax) -> dict:
    """(row, column) -> (text, colour) of the numbers and labels written on a matrix panel."""
    out = {}
    for t in ax.texts:
        x, y = t.get_position()
        out[(round(y, 3), round(x, 3))] = (t.get_text(), t.get_color())
    return out


def test_matrix_numbers_are_white_on_dark_cells_and_black_on_light_ones():
    cmap = pyplot().get_cmap("RdBu_r")
    assert text_colour(cmap(0.0)) == "white"  # the dark navy end
    assert text_colour(cmap(1.0)) == "white"  # the dark red end
    assert text_colour(cmap(0.5)) == "black"  # near white
    assert text_colour((0.0, 0.0, 0.0, 1.0)) == "white"
    assert text_colour((1.0, 1.0, 0.0, 1.0)) == "black"  # yellow is light
    assert cell_digits(0.0029) == 4 and cell_digits(0.99) == 2 and cell_digits(14.8) == 2
    evals = constructed({c: knowledge(c, -4.0) for c in range(3)})
    part = effects_table(evals, Y, CLASSES)
    part = part[part["method"] == "ig"]
    limit = float(part["corrected_delta_prob"].abs().max())
    fig, ax = pyplot().subplots()
    matrix_panel(ax, part, "corrected_delta_prob", CLASSES, limit, set(CLASSES))
    cells = _cell_texts(ax)
    pyplot().close(fig)
    assert len(cells) == 9
    for c in range(3):
        text, colour = cells[(c, c)]  # the own class: strongly lowered, dark navy
        assert text.startswith("\u2212") and colour == "white", (text, colour)
    off = [cells[(r, c)] for r in range(3) for c in range(3) if r != c]
    assert all(colour == "black" for _, colour in off)  # about 0: near-white cells
    assert all(text[0] in "+\u22120" and "-" not in text for text, _ in off)
    assert "\u22120.00" not in [t for t, _ in cells.values()]  # a rounded zero has no sign


def test_a_class_without_scores_is_a_labelled_row(tmp_path, monkeypatch):
    evals = constructed({c: knowledge(c, -4.0) for c in range(2)})  # no units for EC 3
    effects = effects_table(evals, Y, CLASSES)
    assert "3" not in set(effects["selected_class"].dropna())
    figures = []
    monkeypatch.setattr("kneurons.figures.save_figure", lambda fig, path: figures.append(fig))
    plot_class_matrix(effects, tmp_path / "m.png", "ig", "key")
    (fig,) = figures
    panels = [ax for ax in fig.axes if ax.get_images()]
    assert len(panels) == 2  # the two views of one (factor, retention)
    for ax in panels:
        cells = _cell_texts(ax)
        assert cells[(2, 1)][0] == NO_SCORES  # the row of EC 3, in its middle
        assert not [k for k in cells if k[0] == 2 and k != (2, 1)]  # no numbers in it
        assert any(p.get_hatch() for p in ax.patches)
    notes = [t.get_text() for t in fig.texts]
    assert any(n.startswith("Hatched rows, EC 3: no scores") for n in notes), notes
    pyplot().close(fig)


def test_per_sequence_columns_of_a_real_model():
    model = hand_built_model()
    base, changed = run_masks(model, [scaled_masks(unit_selection([0]), 0.0)])
    columns = per_sequence(changed, LABELS)
    probs = columns["probs"].reshape(len(LABELS), 3)
    assert probs.dtype == np.float32
    assert probs[np.arange(6), LABELS] == pytest.approx(columns["true_prob"], abs=1e-6)
    assert (columns["predicted"] == changed.argmax(1).numpy()).all()
    assert (columns["correct"] == (columns["predicted"] == LABELS)).all()
