from dataclasses import asdict

import pandas as pd
import pytest
import torch
from workflow_helpers import schema_defaults

from kneurons.model.batching import length_batches
from kneurons.model.classifier import Architecture, EsmClassifier, alphabet, build_random
from kneurons.model.train import TrainOptions, finetune

TIMING = ["seconds", "residues_per_second"]


def fresh_model():
    torch.manual_seed(0)
    return EsmClassifier(build_random(Architecture(2, 32, 4), seed=1), num_classes=2)


@pytest.fixture
def splits():
    # class 1 carries a tryptophan run; class 0 does not: learnable in a few epochs
    rows = []
    for i in range(24):
        base = "ACDEFGHIKLMNPQRSTVY"[i % 19] * 3 + "MKTAYIAKQRQISFVKSHFS"[: 10 + i % 7]
        rows.append({"sequence": base + ("WWWW" if i % 2 else "AAAA"), "label": i % 2})
    frame = pd.DataFrame(rows)
    return frame.iloc[:16].reset_index(drop=True), frame.iloc[16:].reset_index(drop=True)


OPTIONS = TrainOptions(epochs=4, lr=3e-3, head_lr=1e-2, max_tokens=256, seed=0)


def run(splits, log=lambda msg: None, **kwargs):
    train, val = splits
    return finetune(
        fresh_model(), alphabet(), train, val, OPTIONS, torch.device("cpu"), log=log, **kwargs
    )


def test_training_is_deterministic_and_learns(splits):
    model_a, history_a = run(splits)
    model_b, history_b = run(splits)
    pd.testing.assert_frame_equal(history_a.drop(columns=TIMING), history_b.drop(columns=TIMING))
    for key, value in model_a.state_dict().items():
        assert torch.equal(value, model_b.state_dict()[key]), key
    assert history_a["train_loss"].iloc[-1] < history_a["train_loss"].iloc[0]
    assert history_a["best"].sum() == 1


class Killed(Exception):
    pass


def killed_after_epoch_1(splits, resume, **kwargs):
    """Train with a resumable state and stop at epoch 2's log line: the state of epoch 1 is
    saved (epoch 2's save comes after its log line)."""

    def die(message):
        if message.startswith("epoch 2/"):
            raise Killed

    with pytest.raises(Killed):
        run(splits, log=die, resume_path=resume, **kwargs)


def test_interrupted_training_resumes_to_the_same_result(splits, tmp_path):
    reference_model, reference_history = run(splits)

    resume = tmp_path / "state.pt"

    killed_after_epoch_1(splits, resume)
    assert resume.exists()  # saved after epoch 1 (epoch 2's save comes after its log line)

    messages = []
    model, history = run(splits, log=messages.append, resume_path=resume)
    assert any(m.startswith("resuming after epoch 1") for m in messages)
    assert not resume.exists()  # removed once training completed
    pd.testing.assert_frame_equal(
        history.drop(columns=TIMING), reference_history.drop(columns=TIMING)
    )
    for key, value in model.state_dict().items():
        assert torch.equal(value, reference_model.state_dict()[key]), key


def test_resume_state_of_other_options_is_ignored(splits, tmp_path):
    resume = tmp_path / "state.pt"

    killed_after_epoch_1(splits, resume)
    train, val = splits
    messages = []
    other = TrainOptions(epochs=4, lr=1e-3, head_lr=1e-2, max_tokens=256, seed=0)
    finetune(
        fresh_model(),
        alphabet(),
        train,
        val,
        other,
        torch.device("cpu"),
        log=messages.append,
        resume_path=resume,
    )
    assert any("belongs to other options" in m for m in messages)
    assert not any(m.startswith("resuming") for m in messages)


def test_length_batches_respect_token_budget():
    lengths = [5, 50, 7, 48, 6, 100, 49]
    batches = length_batches(lengths, max_tokens=100)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for batch in batches:
        assert len(batch) == 1 or max(lengths[i] for i in batch) * len(batch) <= 100
    assert [5] in batches  # the 100-long item has a batch of its own


def test_option_defaults_are_the_schemas():
    config = schema_defaults()
    assert config["finetune"] == asdict(TrainOptions())


@pytest.mark.parametrize("change", ["code", "torch"])
def test_resume_state_of_other_code_or_torch_is_ignored(splits, tmp_path, monkeypatch, change):
    """Killed mid-training, the library (or torch) changed, rerun: the epochs the old code
    trained are not continued by the new one (issue 24)."""
    resume = tmp_path / "state.pt"
    code = {"kneurons/model/train.py": "a" * 64, "finetune.py": "b" * 64}

    killed_after_epoch_1(splits, resume, code=code)
    if change == "code":
        code = {**code, "kneurons/model/train.py": "c" * 64}  # train.py fixed between the runs
    else:
        monkeypatch.setattr(torch, "__version__", torch.__version__ + "+other")
    messages = []
    model, history = run(splits, log=messages.append, resume_path=resume, code=code)
    assert any("ignoring resume state" in m for m in messages), messages
    assert not any(m.startswith("resuming") for m in messages)
    monkeypatch.undo()
    reference_model, reference_history = run(splits)  # a clean run: the same model
    pd.testing.assert_frame_equal(
        history.drop(columns=TIMING), reference_history.drop(columns=TIMING)
    )
    for key, value in model.state_dict().items():
        assert torch.equal(value, reference_model.state_dict()[key]), key


def test_resume_state_of_the_same_code_is_continued(splits, tmp_path):
    resume = tmp_path / "state.pt"
    code = {"kneurons/model/train.py": "a" * 64}

    killed_after_epoch_1(splits, resume, code=code)
    messages = []
    run(splits, log=messages.append, resume_path=resume, code=dict(code))
    assert any(m.startswith("resuming after epoch 1") for m in messages), messages
