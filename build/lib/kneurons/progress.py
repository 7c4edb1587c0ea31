"""Progress lines for long loops: done, total, rate and ETA, logged at a steady interval.

A loop that runs for minutes (an epoch of fine-tuning on a CPU, scoring, a download) makes one
`Progress`, calls `update(n)` as work gets done and `done()` at the end. A line is logged at most
once per `interval` seconds, the first after `interval` seconds of work (a short loop logs only
its final line), e.g.

    fine-tuning epoch 1/4: 1,200/5,000 sequences (24.0%), 41.3 sequences/s, ETA 1 min 32 s
    fine-tuning epoch 1/4: done, 5,000 sequences in 2 min 01 s, 41.3 sequences/s

The rate is the mean over all the time since the `Progress` was made (steady, not the last few
updates), and the ETA is the work left at that rate. Without a total (None) there is no percent
and no ETA; `total` may also be set later, by a loop that learns it from its first response.
Lines go to `log` at level INFO (`log=None`: silent); jobs send module loggers to the rule's log
file (`kneurons.jobs.start_job`). `clock` (seconds, monotonic) is injectable for tests.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable


def format_duration(seconds: float) -> str:
    """'45 s', '3 min 05 s', '1 h 02 min' (whole seconds; minutes from one hour on)."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    minutes = (s + 30) // 60
    return f"{minutes // 60} h {minutes % 60:02d} min"


def format_rate(rate: float) -> str:
    """Items per second: '1,234' from 100 on, '41.3' from 1 on, '0.051' below."""
    if rate >= 100:
        return f"{rate:,.0f}"
    return f"{rate:.1f}" if rate >= 1 else f"{rate:.3f}"


class Progress:
    """Counts work done on `total` items (None: unknown) and logs it; see the module docstring."""

    def __init__(
        self,
        log: logging.Logger | None,
        what: str,
        total: int | None,
        unit: str = "items",
        interval: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.log = log
        self.what = what
        self.total = total
        self.unit = unit
        self.interval = interval
        self.clock = clock
        self.count = 0
        self.start = clock()
        self._next = self.start + interval
        self._finished = False

    def update(self, n: int = 1) -> None:
        """Add `n` items done; log a line if `interval` seconds have passed since the last."""
        self.count += n
        if self.log is None or self._finished:
            return
        now = self.clock()
        if now < self._next:
            return
        self._next = now + self.interval
        elapsed = now - self.start
        rate = self.count / elapsed if elapsed > 0 else 0.0
        text = f"{self.what}: {self.count:,}"
        if self.total:
            text += f"/{self.total:,} {self.unit} ({100 * self.count / self.total:.1f}%)"
        else:
            text += f" {self.unit}"
        text += f", {format_rate(rate)} {self.unit}/s"
        if self.total and rate > 0:
            text += f", ETA {format_duration(max(0, self.total - self.count) / rate)}"
        self.log.info("%s", text)

    def done(self) -> None:
        """Log the final line (items done, elapsed time, mean rate); later calls do nothing."""
        if self._finished:
            return
        self._finished = True
        if self.log is None:
            return
        elapsed = self.clock() - self.start
        count = f"{self.count:,}"
        if self.total is not None and self.total != self.count:
            count += f"/{self.total:,}"
        text = f"{self.what}: done, {count} {self.unit} in {format_duration(elapsed)}"
        if elapsed > 0:
            text += f", {format_rate(self.count / elapsed)} {self.unit}/s"
        self.log.info("%s", text)
