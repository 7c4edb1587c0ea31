import json

import numpy as np
import pytest
import torch

from kneurons.evaluation.masked import evaluation_record, predict_masked
from kneurons.evaluation.masking import ablated
from kneurons.model.predict import classification_metrics, predict_logits, prepare_batches


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


def _masks(units: int, n: int, seed: int = 0) -> list[dict]:
    """n different masks over key and ffn_in of layers 0 and 1 (about half the units each)."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        out.append(
            {
                ("key", 0): (torch.rand(units, generator=gen) > 0.5).float(),
                ("key", 1): (torch.rand(units, generator=gen) > 0.5).float(),
                ("ffn_in", 1): (torch.rand(4 * units, generator=gen) > 0.5).float(),
            }
        )
    out.append({("key", 0): torch.ones(units)})  # a mask that ablates nothing
    return out


@pytest.mark.parametrize("mode", ["zero", "mean"])
def test_several_masks_per_pass_give_each_mask_its_own_logits(tiny_model, tiny_tokens, mode):
    """Masks stacked in one pass compute exactly what one pass per mask computes."""
    cpu = torch.device("cpu")
    batches = prepare_batches(tiny_tokens, tiny_model.encoder.padding_idx, max_tokens=60)
    masks = _masks(32, 5)
    means = None
    if mode == "mean":
        gen = torch.Generator().manual_seed(1)
        means = {key: torch.randn(len(m), generator=gen) for key, m in masks[0].items()}
    stacked = predict_masked(tiny_model, batches, masks, cpu, max_tokens=10_000, means=means)
    assert len(stacked) == len(masks)
    for mask, logits in zip(masks, stacked, strict=True):
        with ablated(tiny_model, mask, means):
            alone = predict_logits(tiny_model, None, cpu, batches=batches)
        torch.testing.assert_close(logits, alone, rtol=1e-5, atol=1e-6)
    # the mask that ablates nothing is the plain model; different masks differ
    torch.testing.assert_close(stacked[-1], predict_logits(tiny_model, None, cpu, batches=batches))
    assert not torch.allclose(stacked[0], stacked[1])


@pytest.mark.parametrize("mode", ["zero", "mean", "amplify"])
def test_batch_first_masked_forward_agrees_with_fair_esm_hooks(
    tiny_model, tiny_tokens, mode, monkeypatch
):
    """An unhooked model runs its masks through the batch-first layers; a hooked one (an SAE
    spliced in, any caller's hook) through fair-esm's with hooks; both give the same logits to
    float rounding, every layer type masked, zero, mean and x2 masks, several per pass."""
    import kneurons.evaluation.masked as masked

    cpu = torch.device("cpu")
    batches = prepare_batches(tiny_tokens, tiny_model.encoder.padding_idx, max_tokens=60)
    gen = torch.Generator().manual_seed(2)
    widths = {"query": 32, "key": 32, "value": 32, "attn_out": 32, "ffn_in": 128, "ffn_out": 32}
    masks = []
    for _ in range(3):
        mask = {}
        for (layer_type, units), layer in zip(widths.items(), [0, 1, 0, 1, 0, 1], strict=True):
            bits = (torch.rand(units, generator=gen) > 0.5).float()
            mask[(layer_type, layer)] = bits * 2.0 + (1 - bits) if mode == "amplify" else bits
        masks.append(mask)
    means = None
    if mode == "mean":
        means = {key: torch.randn(len(m), generator=gen) for key, m in masks[0].items()}
    calls = []
    edited = masked._forward_edited
    monkeypatch.setattr(
        masked, "_forward_edited", lambda *a: calls.append(1) or edited(*a), raising=True
    )
    fast = predict_masked(tiny_model, batches, masks, cpu, max_tokens=10_000, means=means)
    assert len(calls) == len(batches)  # one pass per batch, all masks in it, batch first
    handle = tiny_model.encoder.layers[0].fc2.register_forward_hook(lambda *_: None)
    try:
        hooked = predict_masked(tiny_model, batches, masks, cpu, max_tokens=10_000, means=means)
    finally:
        handle.remove()
    assert len(calls) == len(batches)  # the hooked model took fair-esm's path
    for a, b in zip(fast, hooked, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(fast[0], fast[1])


def test_masks_per_pass_follow_the_token_budget(tiny_model, tiny_tokens):
    """A budget of one batch runs one mask per pass; the logits do not depend on it."""
    cpu = torch.device("cpu")
    batches = prepare_batches(tiny_tokens, tiny_model.encoder.padding_idx, max_tokens=60)
    masks = _masks(32, 4)

    class Count:
        n = 0

        def update(self, k):
            self.n += k

    one, many = Count(), Count()
    single = predict_masked(tiny_model, batches, masks, cpu, max_tokens=1, progress=one)
    stacked = predict_masked(tiny_model, batches, masks, cpu, max_tokens=10_000, progress=many)
    assert one.n == many.n == len(masks) * len(batches)
    for a, b in zip(single, stacked, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
