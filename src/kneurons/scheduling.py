"""A fix to Snakemake's local scheduler loop, applied by the Snakefile in the main process.

Snakemake 9 (`snakemake.scheduling.job_scheduler.JobScheduler`, up to at least 9.27) ends every
pass of its scheduling loop by starting a `threading.Timer` of `--max-jobs-per-timespan`'s
timespan (default 1 s) that wakes the loop once more; that pass starts another timer. Every
pass that something else started (a job finished, a job was submitted) so begins a chain of
wake-ups that lasts until the run ends: after n finished jobs the loop wakes about n times per
second, and each wake-up selects jobs again (checking the size of every input of every ready
job). Measured on the planted-motif config (config/synthetic.yaml, 296 jobs, 2 cores): 233
threads in the Snakemake process at job 280 and 54-60% of a core spent in the loop, taken from
the jobs running on the other threads. Upstream reports the symptom ("very slow on large
workflow", snakemake/snakemake#2354).

`single_reevaluation_timer` keeps one such timer pending at a time: the loop still wakes within
the timespan (the rate limiter's purpose), any number of earlier wake-ups fold into it, and the
timer is a daemon thread, so the process does not wait for it at exit. Nothing changes when the
scheduler no longer has the method or the semaphore it releases (another Snakemake version).
"""

from __future__ import annotations

import threading


def single_reevaluation_timer() -> bool:
    """Patch `JobScheduler._schedule_reevalutation` (module docstring). Returns whether it was
    patched (False: this Snakemake has no such method; nothing done)."""
    try:
        from snakemake.scheduling.job_scheduler import JobScheduler
    except ImportError:
        return False
    original = getattr(JobScheduler, "_schedule_reevalutation", None)
    if original is None or getattr(original, "single_timer", False):
        return original is not None

    lock = threading.Lock()

    def schedule_reevaluation(self, delay) -> None:
        def wake():
            with lock:  # cleared before the release: the pass it starts may schedule the next
                self._kneurons_pending = False
            self._open_jobs.release()

        with lock:
            if getattr(self, "_kneurons_pending", False):
                return
            self._kneurons_pending = True
        timer = threading.Timer(delay, wake)
        timer.daemon = True
        timer.start()

    schedule_reevaluation.single_timer = True
    JobScheduler._schedule_reevalutation = schedule_reevaluation
    return True
