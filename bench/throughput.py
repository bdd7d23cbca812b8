"""Chat turns per second: 20 users sending and streaming as fast as they can.

A real Parley (`scripts/entrypoint.sh`, gunicorn gthread, its default workers x threads,
SQLite, file cache) relays the mock model (`models_registry.mock_llm`, its own process,
20-token answers, no delay). 20 threads, each a user with its own logged-in keep-alive
`requests` session and its own chat, POST a message to /chats/<id>/send/ with `Accept:
text/event-stream` and read the answer to its `done` event, again and again for 30 s
(the per-user rate limit is off: this measures the server, not the limit).

Baseline in the same run: the same 20 threads asking the mock directly (what this
machine's client and upstream manage without Parley in between). Afterwards the SQLite
file is read directly: every acknowledged turn (a `start` event) must have its user
message and a `complete` answer with exactly the streamed text. Target: >= 50 complete
turns/s, 0 errors, 0 "database is locked".

Run from the repository root: `python bench/throughput.py [--smoke] [--write]`.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _live import LOCKED, Parley, TurnResult, Upstream, run_turn, verify_turns
from common import parse_args, percentile, report, table, verdict
from streaming import direct

TOKENS = 20
TARGET_TURNS_PER_S = 50


def hammer(worker, users: int, seconds: float) -> tuple[list, float]:
    """Run ``worker(index, deadline, results)`` in ``users`` threads; (results, seconds)."""
    results: list = []
    barrier = threading.Barrier(users + 1)
    deadline_box: list[float] = []

    def run(index: int) -> None:
        barrier.wait()
        worker(index, deadline_box[0], results)

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(users)]
    for thread in threads:
        thread.start()
    started = time.perf_counter()
    deadline_box.append(started + seconds)
    barrier.wait()
    for thread in threads:
        thread.join(timeout=seconds + 120)
    return results, time.perf_counter() - started


def main() -> None:
    args = parse_args(
        __doc__.splitlines()[0],
        lambda p: (
            p.add_argument("--users", type=int, default=20),
            p.add_argument("--seconds", type=float, default=30),
            p.add_argument("--workers", type=int, default=None, help="WEB_CONCURRENCY"),
            p.add_argument("--threads", type=int, default=None, help="GUNICORN_THREADS"),
            p.add_argument("--note", default="", help="a sentence added to the notes"),
        ),
    )
    users = 2 if args.smoke else args.users
    seconds = 3 if args.smoke else args.seconds
    baseline_seconds = 2 if args.smoke else min(10, seconds)
    load_at_start = os.getloadavg()[0]

    with (
        Upstream(tokens=(TOKENS, TOKENS)) as upstream,
        Parley(workers=args.workers, threads=args.threads) as server,
    ):
        server.start()
        names = [f"user{i:02d}" for i in range(users)]
        info = server.setup(
            users=names,
            models={"mock": upstream.base_url},
            chats=[(name, "mock", 1) for name in names],
            messages_per_minute=0,
        )
        sessions = [server.login(name) for name in names]
        chats = [info["chats"][name][0] for name in names]

        # Baseline: the same threads straight at the mock.
        direct_sessions = [requests.Session() for _ in names]
        for index, http in enumerate(direct_sessions):  # connect one at a time first
            direct(http, upstream.base_url, f"warm-up {index}")

        baseline_errors: Counter[str] = Counter()

        def ask_mock(index: int, deadline: float, results: list) -> None:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                try:
                    _first, _total, chunks = direct(
                        direct_sessions[index], upstream.base_url, f"direct {index}"
                    )
                    results.append((chunks == TOKENS, time.perf_counter() - started))
                    if chunks != TOKENS:
                        baseline_errors[f"{chunks} chunks"] += 1
                except (requests.RequestException, RuntimeError) as exc:
                    results.append((False, time.perf_counter() - started))
                    baseline_errors[f"{type(exc).__name__}: {exc}"[:90]] += 1

        baseline, baseline_elapsed = hammer(ask_mock, users, baseline_seconds)

        # Warm-up: one turn per user (imports, tokenizer and pooled connections per worker).
        for index in range(users):
            assert run_turn(server, sessions[index], chats[index], "warm-up").ok

        def chat(index: int, deadline: float, results: list) -> None:
            sent = 0
            while time.perf_counter() < deadline:
                sent += 1
                text = f"Message {sent} from {names[index]}: how are the turns flowing?"
                results.append((text, run_turn(server, sessions[index], chats[index], text)))

        turns, elapsed = hammer(chat, users, seconds)
        locked = server.count_in_log(LOCKED)
        server.stop()  # every answer saved and every connection closed before reading
        lost, incomplete = verify_turns(server, turns)
        # The warm-up turns are in the chats too: each chat holds 2 rows per turn.
        rows = server.query("SELECT COUNT(*) FROM chat_message")[0][0]

    results: list[TurnResult] = [turn for _text, turn in turns]
    complete = [t for t in results if t.ok and t.deltas == TOKENS]
    errors = len(results) - len(complete)
    rate = len(complete) / elapsed
    base_ok = [total for ok, total in baseline if ok]
    base_rate = len(base_ok) / baseline_elapsed
    totals = [t.total for t in complete]
    firsts = [t.first_token for t in complete if t.first_token is not None]
    expected_rows = 2 * (len(results) + users)
    body = table(
        ["", "turns/s", "turns", "errors", "p50 turn ms", "p95 turn ms", "p50 first token ms"],
        [
            [
                "direct to the mock (baseline)",
                base_rate,
                len(baseline),
                len(baseline) - len(base_ok),
                percentile(base_ok, 50) * 1000,
                percentile(base_ok, 95) * 1000,
                "",
            ],
            [
                "through Parley",
                rate,
                len(results),
                errors,
                percentile(totals, 50) * 1000,
                percentile(totals, 95) * 1000,
                percentile(firsts, 50) * 1000,
            ],
        ],
    )
    checks = table(
        ["check", "value", "verdict"],
        [
            [
                "complete turns/s",
                f"{rate:.1f} ({rate / base_rate:.0%} of direct)",
                "" if args.smoke else verdict(rate >= TARGET_TURNS_PER_S, ">= 50 turns/s"),
            ],
            ["errors", errors, "" if args.smoke else verdict(errors == 0, "0")],
            ['"database is locked" in the server log', locked, verdict(locked == 0, "0")],
            ["acknowledged turns missing from the database", lost, verdict(lost == 0, "0")],
            [
                "answers not complete with the streamed text",
                incomplete,
                verdict(incomplete == 0, "0"),
            ],
            ["message rows (expected 2 per turn)", f"{rows} ({expected_rows})", ""],
        ],
    )
    kinds = Counter(t.error[:90] for t in results if not (t.ok and t.deltas == TOKENS))
    if kinds:
        checks += "\n\nErrors by kind: " + "; ".join(f"{n} x {k!r}" for k, n in kinds.items())
    if baseline_errors:
        checks += "\n\nBaseline errors (the mock, not Parley): " + "; ".join(
            f"{n} x {k!r}" for k, n in baseline_errors.items()
        )
    notes = (
        f"`python bench/throughput.py{' --smoke' if args.smoke else ''}`: {users} users "
        f"(threads, each its own logged-in keep-alive session and chat) for {seconds:g} s "
        f"({baseline_seconds:g} s for the baseline) against gunicorn gthread {server.workers} "
        f"workers x {server.threads} threads, SQLite (synchronous=FULL), file cache; "
        "mock_llm in its own process, "
        f"{TOKENS}-token answers, no delay; rate limit off. The load generator shares the "
        f"machine's cores with the server. Load average at start: {load_at_start:.2f}. "
        "Open WebUI 0.12.4 on a 2-core machine (issue #6): 9.9 turns/s with 5.3 % failing."
    )
    if args.note:
        notes += f" {args.note}"
    report(
        "Chat throughput, 20 users (bench/throughput.py)",
        f"{body}\n\n{checks}",
        write=args.write,
        notes=notes,
    )
    if lost or incomplete or locked or (errors and not args.smoke):
        sys.exit(1)


if __name__ == "__main__":
    main()
