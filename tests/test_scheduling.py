"""kneurons.scheduling: Snakemake's scheduler keeps one re-evaluation timer, not one per pass."""

from __future__ import annotations

import threading
import time

from snakemake.scheduling.job_scheduler import JobScheduler

from kneurons.scheduling import single_reevaluation_timer


class Loop:
    """What `_schedule_reevalutation` touches of a scheduler: the semaphore its loop waits on."""

    def __init__(self):
        self._open_jobs = threading.Semaphore(0)


def wake_ups(loop: Loop, wait: float) -> int:
    time.sleep(wait)
    n = 0
    while loop._open_jobs.acquire(blocking=False):
        n += 1
    return n


def test_passes_fold_into_one_pending_timer_and_the_chain_goes_on():
    original = JobScheduler._schedule_reevalutation
    try:
        # Snakemake's own: every pass starts a timer, so five passes wake the loop five times
        loop = Loop()
        for _ in range(5):
            original(loop, 0.05)
        assert wake_ups(loop, 0.3) == 5

        assert single_reevaluation_timer()
        assert single_reevaluation_timer()  # a second call changes nothing
        patched = JobScheduler._schedule_reevalutation
        loop = Loop()
        for _ in range(5):
            patched(loop, 0.05)
        assert wake_ups(loop, 0.3) == 1
        # the pass that wake-up starts schedules the next one (the rate limiter still wakes it)
        patched(loop, 0.05)
        assert wake_ups(loop, 0.3) == 1
        # the timer does not keep the process alive at exit
        patched(loop, 10.0)
        timers = [t for t in threading.enumerate() if isinstance(t, threading.Timer)]
        assert timers and all(t.daemon for t in timers)
    finally:
        JobScheduler._schedule_reevalutation = original
