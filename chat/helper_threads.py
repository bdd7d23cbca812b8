"""Reusable daemon threads for the upstream readers of streamed answers.

Starting a thread costs about 0.3 ms under load (the new thread must get the GIL to
say it started), paid on every message before its first token. Threads here are kept
for IDLE_SECONDS after their last job and reused. They are daemon threads, like the
one-off threads they replace: a process that exits never waits for an upstream that
stopped answering. There is no upper bound on their number, on purpose: each job is
one streaming answer, and queueing an answer behind another would stall it.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Callable

logger = logging.getLogger(__name__)

IDLE_SECONDS = 60.0

_lock = threading.Lock()
_jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
_idle = 0  # threads waiting for a job that no submitted job has claimed yet


def run_in_helper_thread(job: Callable[[], None]) -> None:
    """Run ``job`` in an idle helper thread, or a new one when none is idle."""
    global _idle
    with _lock:
        if _idle:
            _idle -= 1
            _jobs.put(job)
            return
    threading.Thread(target=_work, args=(job,), name="parley-helper", daemon=True).start()


def idle_threads() -> int:
    return _idle


def _work(job: Callable[[], None]) -> None:
    global _idle
    while True:
        try:
            job()
        except Exception:  # a job's bug must not kill the thread silently
            logger.exception("a helper thread job failed")
        del job  # do not keep the finished job's objects alive while idle
        with _lock:
            _idle += 1
        while True:
            try:
                job = _jobs.get(timeout=IDLE_SECONDS)
                break
            except queue.Empty:
                with _lock:
                    # Leave only when no submitted job is waiting for an idle thread.
                    if _idle > 0 and _jobs.empty():
                        _idle -= 1
                        return


def _forget_after_fork() -> None:
    # A forked child has none of its parent's threads: nobody would take queued jobs.
    global _lock, _jobs, _idle
    _lock = threading.Lock()
    _jobs = queue.SimpleQueue()
    _idle = 0


os.register_at_fork(after_in_child=_forget_after_fork)
