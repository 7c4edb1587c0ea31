import json

import numpy as np
import pytest
import torch

from kneurons.evaluate import (
    classification_metrics,
    evaluation_record,
    predict_logits,
    prepare_batches,
)
from kneurons.masking import ablated


def test_metrics_on_a_hand_checked_case():
    y_true = [0, 0, 1, 1, 2, 2]
    y_pred = [0, 1, 1, 1, 0, 0]
    m = classification_metrics(y_true, y_pred, ["1", "2", "3"])
    assert m["n"] == 6
    assert m["accuracy"] == pytest.approx(3 / 6)
    # F1: class 0: tp1 fp2 fn1 -> 2/5; class 1: tp2 fp1 fn0 -> 4/5; class 2: 0
    assert m["macro_f1"] == pytest.approx((0.4 + 0.8 + 0.0) / 3)
    assert m["per_class"]["1"] == {"n": 2, "accuracy": 0.5, "f1": pytest.approx(0.4)}
    assert m["per_class"]["3"]["accuracy"] == 0.0


def test_absent_class_has_nan_accuracy_and_zero_f1():
    m = classification_metrics([0, 0], [0, 0], ["1", "2"])
    assert np.isnan(m["per_class"]["2"]["accuracy"]) and m["per_class"]["2"]["f1"] == 0.0
    assert m["macro_f1"] == pytest.approx(0.5)


def test_predict_logits_keeps_input_order(tiny_model, tiny_tokens):
    logits = predict_logits(tiny_model, tiny_tokens, torch.device("cpu"), max_tokens=40)
    with torch.no_grad():
        one_by_one = torch.cat([tiny_model(t.unsqueeze(0)) for t in tiny_tokens])
    torch.testing.assert_close(logits, one_by_one, rtol=1e-5, atol=1e-5)


def test_prepared_batches_are_reused_across_masks(tiny_model, tiny_tokens):
    """Batches built once give the same logits as tokens, with and without a mask."""
    cpu = torch.device("cpu")
    batches = prepare_batches(tiny_tokens, tiny_model.encoder.padding_idx, max_tokens=40)
    assert sorted(i for idx, _ in batches for i in idx) == list(range(len(tiny_tokens)))
    plain = predict_logits(tiny_model, tiny_tokens, cpu, max_tokens=40)
    torch.testing.assert_close(predict_logits(tiny_model, None, cpu, batches=batches), plain)
    mask = torch.ones(32)
    mask[:16] = 0
    with ablated(tiny_model, {("key", 0): mask}):
        masked = predict_logits(tiny_model, None, cpu, batches=batches)
    assert not torch.allclose(masked, plain)
    torch.testing.assert_close(predict_logits(tiny_model, None, cpu, batches=batches), plain)


def test_evaluation_record_keeps_per_sequence_correctness():
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 3.0], [1.0, 0.0, 0.0]])
    rec = evaluation_record([0, 1, 1, 2], logits, ["1", "2", "3"])
    assert rec["correct"] == [True, True, False, False]
    assert rec["predicted"] == [0, 1, 2, 0]
    assert rec["accuracy"] == pytest.approx(0.5) and rec["n"] == 4
    assert json.loads(rec["per_class_accuracy"]) == {"1": 1.0, "2": 0.5, "3": 0.0}
