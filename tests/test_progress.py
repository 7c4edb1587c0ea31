import logging

import pandas as pd
import pytest
import torch

from kneurons.model.classifier import Architecture, EsmClassifier, alphabet, build_random
from kneurons.model.train import TrainOptions, finetune
from kneurons.progress import Progress, format_duration, format_rate
from kneurons.scoring.methods import (
    activation_scores,
    grad_x_activation_scores,
    integrated_gradients_scores,
)

LOGGER = "test.progress"


class Clock:
    """A fake monotonic clock: `clock.now` is advanced by hand."""

    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def lines(caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)

    def messages():
        return [r.getMessage() for r in caplog.records if r.name == LOGGER]

    return messages


def progress(what="fine-tuning epoch 1/4", total=5000, unit="sequences", **kwargs):
    clock = Clock()
    return Progress(logging.getLogger(LOGGER), what, total, unit, clock=clock, **kwargs), clock


def test_the_first_line_comes_after_the_interval_not_at_every_update(lines):
    p, clock = progress()
    for _ in range(29):
        clock.now += 1.0
        p.update(40)
    assert lines() == []
    clock.now += 1.0
    p.update(40)  # 30 s, 1,200 done: 40/s, 3,800 left -> 95 s
    assert lines() == [
        "fine-tuning epoch 1/4: 1,200/5,000 sequences (24.0%), 40.0 sequences/s, ETA 1 min 35 s"
    ]


def test_at_most_one_line_per_interval(lines):
    p, clock = progress(interval=10.0)
    for _ in range(100):  # 25 s in updates of 0.25 s: lines at 10 s and 20 s only
        clock.now += 0.25
        p.update(10)
    assert lines() == [
        "fine-tuning epoch 1/4: 400/5,000 sequences (8.0%), 40.0 sequences/s, ETA 1 min 55 s",
        "fine-tuning epoch 1/4: 800/5,000 sequences (16.0%), 40.0 sequences/s, ETA 1 min 45 s",
    ]


def test_the_rate_is_over_the_whole_elapsed_time(lines):
    p, clock = progress(total=1000, unit="examples", what="activation scores")
    clock.now += 30.0
    p.update(300)  # 10/s
    clock.now += 30.0
    p.update(0)  # a stall: 300 in 60 s, 5/s, not 0/s
    clock.now += 40.0
    p.update(500)  # 800 in 100 s: 8/s, 200 left -> 25 s
    assert lines() == [
        "activation scores: 300/1,000 examples (30.0%), 10.0 examples/s, ETA 1 min 10 s",
        "activation scores: 300/1,000 examples (30.0%), 5.0 examples/s, ETA 2 min 20 s",
        "activation scores: 800/1,000 examples (80.0%), 8.0 examples/s, ETA 25 s",
    ]


def test_without_a_total_no_percent_and_no_eta(lines):
    p, clock = progress(what="UniProt", total=None, unit="rows")
    clock.now += 31.0
    p.update(15500)
    clock.now += 9.0
    p.done()
    assert lines() == [
        "UniProt: 15,500 rows, 500 rows/s",
        "UniProt: done, 15,500 rows in 40 s, 388 rows/s",
    ]


def test_a_total_set_later_is_used(lines):
    p, clock = progress(what="UniProt class 3", total=None, unit="rows")
    p.total = 2000
    clock.now += 50.0
    p.update(500)
    assert lines() == ["UniProt class 3: 500/2,000 rows (25.0%), 10.0 rows/s, ETA 2 min 30 s"]


def test_done_logs_one_line_once(lines):
    p, clock = progress(total=48, unit="examples", what="integrated gradients")
    clock.now += 12.0
    p.update(48)  # before the interval: no line
    p.done()
    clock.now += 100.0
    p.done()
    p.update(1)  # after done: counted, never logged
    assert lines() == ["integrated gradients: done, 48 examples in 12 s, 4.0 examples/s"]


def test_done_says_when_the_total_was_not_reached(lines):
    p, clock = progress(total=10, unit="pages", what="download")
    clock.now += 0.5
    p.update(4)
    p.done()
    assert lines() == ["download: done, 4/10 pages in 0 s, 8.0 pages/s"]


def test_slow_and_fast_rates(lines):
    p, clock = progress(total=100, unit="examples", what="IG")
    clock.now += 40.0
    p.update(2)  # 0.05/s; 98 left -> 1960 s
    assert lines() == ["IG: 2/100 examples (2.0%), 0.050 examples/s, ETA 32 min 40 s"]
    assert format_rate(41.26) == "41.3"
    assert format_rate(12345.6) == "12,346"
    assert format_rate(0.0512) == "0.051"


def test_no_logger_is_silent(caplog):
    caplog.set_level(logging.DEBUG)
    clock = Clock()
    p = Progress(None, "silent", 10, clock=clock)
    clock.now += 100.0
    p.update(5)
    p.done()
    assert p.count == 5
    assert caplog.records == []


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.0, "0 s"),
        (0.4, "0 s"),
        (45.0, "45 s"),
        (59.4, "59 s"),
        (59.6, "1 min 00 s"),
        (185.0, "3 min 05 s"),
        (3599.0, "59 min 59 s"),
        (3600.0, "1 h 00 min"),
        (3720.0, "1 h 02 min"),
        (3749.0, "1 h 02 min"),
        (3750.0, "1 h 03 min"),
        (90000.0, "25 h 00 min"),
        (-3.0, "0 s"),
    ],
)
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


def test_fine_tuning_logs_its_progress(caplog, monkeypatch):
    """A real (tiny) fine-tuning: with interval 0 every batch logs a line, then one done line."""
    import kneurons.model.train

    monkeypatch.setattr(
        kneurons.model.train,
        "Progress",
        lambda *args, **kwargs: Progress(*args, **{**kwargs, "interval": 0.0}),
    )
    caplog.set_level(logging.INFO, logger="kneurons.model.train")
    torch.manual_seed(0)
    model = EsmClassifier(build_random(Architecture(1, 16, 2), seed=1), num_classes=2)
    frame = pd.DataFrame(
        {"sequence": ["MKTAYIAKQR" + "W" * (i % 2) * 4 for i in range(12)], "label": [0, 1] * 6}
    )
    options = TrainOptions(epochs=2, max_tokens=64, max_batch_size=4)
    finetune(model, alphabet(), frame, frame, options, torch.device("cpu"), log=lambda _: None)
    messages = [r.getMessage() for r in caplog.records if r.name == "kneurons.model.train"]
    first = [m for m in messages if m.startswith("fine-tuning epoch 1/2: ")]
    assert first[0].startswith("fine-tuning epoch 1/2: 4/12 sequences (33.3%), ")
    assert first[-1].startswith("fine-tuning epoch 1/2: done, 12 sequences in ")
    assert len(first) == 4  # three batches of 4, then done
    assert any(m.startswith("fine-tuning epoch 2/2: done, 12 sequences") for m in messages)


def test_scoring_logs_a_final_line_per_method(caplog, tiny_model, tiny_tokens):
    caplog.set_level(logging.INFO, logger="kneurons.scoring")
    labels = [i % 2 for i in range(len(tiny_tokens))]
    n = len(tiny_tokens)
    activation_scores(tiny_model, tiny_tokens, labels, "key", [1])
    grad_x_activation_scores(tiny_model, tiny_tokens, labels, "key", [1])
    integrated_gradients_scores(tiny_model, tiny_tokens, labels, ["key", "value"], [0], steps=4)
    done = [r.getMessage().split(" in ")[0] for r in caplog.records if ": done, " in r.getMessage()]
    assert done[:3] == [
        f"activation scores: done, {n} examples",
        f"gradient x activation: done, {n} examples",
        f"integrated gradients: done, {2 * n} (example, module) pairs",
    ]
    # adaptive refinements (if any) say so
    assert all(line.startswith("integrated gradients (refinement ") for line in done[3:])
