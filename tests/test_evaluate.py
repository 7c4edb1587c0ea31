import numpy as np
import pytest
import torch

from kneurons.evaluate import classification_metrics, predict_logits


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
