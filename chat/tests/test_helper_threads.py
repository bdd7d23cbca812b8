"""The reusable helper threads that read upstream streams."""

from __future__ import annotations

import threading

from chat import helper_threads


def run_and_wait(job) -> None:
    done = threading.Event()

    def wrapped() -> None:
        try:
            job()
        finally:
            done.set()

    helper_threads.run_in_helper_thread(wrapped)
    assert done.wait(5)


def wait_until_idle(count: int) -> None:
    for _ in range(500):
        if helper_threads.idle_threads() >= count:
            return
        threading.Event().wait(0.01)
    raise AssertionError("the helper thread never went idle")


def test_a_finished_thread_is_reused_for_the_next_job():
    seen: list[int] = []
    run_and_wait(lambda: seen.append(threading.get_ident()))
    wait_until_idle(1)
    run_and_wait(lambda: seen.append(threading.get_ident()))
    assert seen[0] == seen[1]


def test_jobs_run_side_by_side_when_none_is_idle():
    release = threading.Event()
    started = threading.Barrier(3, timeout=5)

    def blocking() -> None:
        started.wait()
        release.wait(5)

    helper_threads.run_in_helper_thread(blocking)
    helper_threads.run_in_helper_thread(blocking)
    started.wait()  # both jobs run at once: neither queued behind the other
    release.set()


def test_a_failing_job_is_logged_and_the_thread_lives_on(caplog):
    def failing() -> None:
        raise RuntimeError("boom")

    seen: list[int] = []
    helper_threads.run_in_helper_thread(lambda: (seen.append(threading.get_ident()), failing()))
    for _ in range(500):
        if "a helper thread job failed" in caplog.text:
            break
        threading.Event().wait(0.01)
    assert "a helper thread job failed" in caplog.text
    wait_until_idle(1)
    run_and_wait(lambda: seen.append(threading.get_ident()))
    assert len(seen) == 2


def test_helper_threads_never_keep_the_process_alive():
    names: list[tuple[str, bool]] = []
    run_and_wait(
        lambda: names.append((threading.current_thread().name, threading.current_thread().daemon))
    )
    assert names == [("parley-helper", True)]
