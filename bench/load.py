"""50 simulated users for 60 s on the default server: errors, lost messages, latency, memory.

A real Parley (`scripts/entrypoint.sh`, gunicorn gthread, default WEB_CONCURRENCY=2 x
GUNICORN_THREADS=8, SQLite, file cache, default rate limit) relays the mock model
(`models_registry.mock_llm`, its own process) answering 30-80 tokens with 20-40 ms
between tokens, drawn per answer. Each simulated user (a thread with its own keep-alive
`requests` session) arrives at a random moment in the first 10 s, signs in through the
log-in form (POST /accounts/login/), then loops with think times of 0.5-2 s: open its
chat page, send a message and stream the answer to its `done` event, open the chat list
(/chats/), open /models/. No new loop starts after 60 s; running ones finish.

Baseline in the same run: one user doing the same loop alone on the idle server just
before. Memory: the summed VmRSS of the server's process group (gunicorn master and
workers) idle after start-up, and sampled every 0.5 s during the load. Afterwards the
SQLite file is read directly: every acknowledged message (a `start` event) must be there
and every answer `complete` with exactly the streamed text. Targets: 0 errors, 0
"database is locked", 0 lost; < 200 MiB idle and < 300 MiB at the peak.

Run from the repository root: `python bench/load.py [--smoke] [--write]`.
"""

from __future__ import annotations

import os
import random
import sys
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _live import (
    LOCKED,
    MIB,
    Parley,
    RssSampler,
    TurnResult,
    Upstream,
    run_turn,
    verify_turns,
)
from common import parse_args, percentile, report, table, verdict

PAGES = ("chat page", "chat list /chats/", "models /models/")
IDLE_TARGET_MIB = 200
PEAK_TARGET_MIB = 300


class Recorder:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pages: dict[str, list[float]] = defaultdict(list)
        self.page_starts: dict[str, list[float]] = defaultdict(list)
        self.turn_starts: list[float] = []
        self.signed_in_at: list[float] = []
        self.sign_ins: list[float] = []
        self.turns: list[tuple[str, TurnResult]] = []
        self.errors: Counter[str] = Counter()

    def error(self, kind: str) -> None:
        with self.lock:
            self.errors[kind[:100]] += 1


def get_page(server: Parley, http: requests.Session, name: str, path: str, rec: Recorder) -> None:
    started = time.perf_counter()
    try:
        response = http.get(server.url(path), timeout=30, allow_redirects=False)
        ok = response.status_code == 200 and len(response.content) > 0
    except requests.RequestException as exc:
        rec.error(f"GET {name}: {type(exc).__name__}")
        return
    elapsed = time.perf_counter() - started
    if not ok:
        rec.error(f"GET {name}: HTTP {response.status_code}")
        return
    with rec.lock:
        rec.pages[name].append(elapsed)
        rec.page_starts[name].append(started)


def user_loop(
    server: Parley,
    name: str,
    chat_id: int,
    deadline: float,
    rec: Recorder,
    rng: random.Random,
    *,
    arrive_within: float,
    think: tuple[float, float],
) -> None:
    time.sleep(rng.uniform(0, arrive_within))
    started = time.perf_counter()
    try:
        http = server.login(name)
    except (requests.RequestException, RuntimeError) as exc:
        rec.error(f"sign-in: {exc}")
        return
    with rec.lock:
        rec.sign_ins.append(time.perf_counter() - started)
        rec.signed_in_at.append(time.perf_counter())
    sent = 0
    while time.perf_counter() < deadline:
        get_page(server, http, PAGES[0], f"/chats/{chat_id}/", rec)
        time.sleep(rng.uniform(*think))
        sent += 1
        text = f"{name} asks question {sent}: what should I read about distributed systems?"
        turn_started = time.perf_counter()
        turn = run_turn(server, http, chat_id, text)
        with rec.lock:
            rec.turns.append((text, turn))
            rec.turn_starts.append(turn_started)
        if not turn.ok:
            rec.error(f"turn: {turn.error}")
        time.sleep(rng.uniform(*think))
        get_page(server, http, PAGES[1], "/chats/", rec)
        time.sleep(rng.uniform(*think))
        get_page(server, http, PAGES[2], "/models/", rec)
        time.sleep(rng.uniform(*think))


def run_users(
    server: Parley,
    names: list[str],
    chats: dict[str, list[int]],
    seconds: float,
    rec: Recorder,
    *,
    arrive_within: float,
    think: tuple[float, float],
    seed: int,
) -> float:
    deadline = time.perf_counter() + seconds
    threads = [
        threading.Thread(
            target=user_loop,
            args=(server, name, chats[name][0], deadline, rec, random.Random(seed + i)),  # noqa: S311
            kwargs={"arrive_within": arrive_within, "think": think},
            daemon=True,
        )
        for i, name in enumerate(names)
    ]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=seconds + 180)
    return time.perf_counter() - started


def ms(samples: list[float], p: float) -> float:
    return percentile(samples, p) * 1000


def main() -> None:
    args = parse_args(
        __doc__.splitlines()[0],
        lambda p: (
            p.add_argument("--users", type=int, default=50),
            p.add_argument("--seconds", type=float, default=60),
            p.add_argument("--workers", type=int, default=None, help="WEB_CONCURRENCY"),
            p.add_argument("--threads", type=int, default=None, help="GUNICORN_THREADS"),
            p.add_argument("--note", default="", help="a sentence added to the notes"),
            p.add_argument(
                "--server-env",
                action="append",
                default=[],
                metavar="NAME=VALUE",
                help="extra environment for the server (repeatable), e.g. MALLOC_ARENA_MAX=2",
            ),
        ),
    )
    server_env = dict(item.split("=", 1) for item in args.server_env)
    users = 2 if args.smoke else args.users
    seconds = 3 if args.smoke else args.seconds
    baseline_seconds = 2 if args.smoke else 15
    arrive_within = 0.5 if args.smoke else 10
    think = (0.1, 0.3) if args.smoke else (0.5, 2.0)
    load_at_start = os.getloadavg()[0]

    with (
        Upstream(delay_ms=(20, 40), tokens=(30, 80)) as upstream,
        Parley(workers=args.workers, threads=args.threads, extra_env=server_env) as server,
    ):
        server.start()
        names = [f"user{i:02d}" for i in range(users)]
        info = server.setup(
            users=[*names, "solo"],
            models={"mock": upstream.base_url},
            chats=[(name, "mock", 1) for name in [*names, "solo"]],
        )
        time.sleep(1)
        idle_rss, idle_pss = server.rss(), server.pss()
        idle_workers = [server.rss_of(pid) for pid in server.worker_pids()]

        # Warm-up, untimed: sign-ins and pages on several connections, so both workers
        # have imported and compiled what the pages need before anything is measured.
        chat_id = info["chats"]["solo"][0]
        for _ in range(2 * (server.workers or 1)):
            http = server.login("solo")
            for path in (f"/chats/{chat_id}/", "/chats/", "/models/"):
                http.get(server.url(path), timeout=30).raise_for_status()
            http.close()

        baseline = Recorder()
        run_users(
            server,
            ["solo"],
            info["chats"],
            baseline_seconds,
            baseline,
            arrive_within=0,
            think=(0.1, 0.3),
            seed=1,
        )
        rec = Recorder()
        with RssSampler(server, interval=0.5) as sampler:
            elapsed = run_users(
                server,
                names,
                info["chats"],
                seconds,
                rec,
                arrive_within=arrive_within,
                think=think,
                seed=1000,
            )
        after_rss, after_pss = server.rss(), server.pss()
        locked = server.count_in_log(LOCKED)
        server.stop()
        lost, incomplete = verify_turns(server, baseline.turns + rec.turns)

    errors = sum(rec.errors.values()) + sum(baseline.errors.values())
    turns = [t for _text, t in rec.turns]
    # "Settled": requests started once every user had signed in (no more log-in storm).
    settled = max(rec.signed_in_at, default=0.0)

    def ttft_of(recorder: Recorder, after: float = 0.0) -> list[float]:
        return [
            turn.first_token
            for (_text, turn), began in zip(recorder.turns, recorder.turn_starts, strict=True)
            if turn.ok and turn.first_token is not None and began >= after
        ]

    def pages_of(recorder: Recorder, names: tuple[str, ...], after: float = 0.0) -> list[float]:
        return [
            seconds
            for name in names
            for seconds, began in zip(recorder.pages[name], recorder.page_starts[name], strict=True)
            if began >= after
        ]

    measured = [((name,), name) for name in PAGES] + [(PAGES, "all pages")]
    series = [
        (label, pages_of(baseline, names), pages_of(rec, names), pages_of(rec, names, settled))
        for names, label in measured
    ]
    series.append(
        (
            "first token (send to first delta)",
            ttft_of(baseline),
            ttft_of(rec),
            ttft_of(rec, settled),
        )
    )
    series.append(("sign-in (log-in page + POST)", baseline.sign_ins, rec.sign_ins, []))
    rows = [
        [
            label,
            len(loaded),
            ms(alone, 50),
            ms(loaded, 50),
            ms(loaded, 95),
            f"{percentile(loaded, 50) / percentile(alone, 50):.1f}x",
            f"{ms(steady, 95):.1f}" if steady else "",
        ]
        for label, alone, loaded, steady in series
    ]
    latency = table(
        [
            "request",
            "count",
            "alone p50 ms",
            "under load p50 ms",
            "under load p95 ms",
            "p50 ratio",
            "p95 ms once all signed in",
        ],
        rows,
    )
    idle_mib, peak_mib = idle_rss / MIB, sampler.peak / MIB
    smoke = args.smoke
    checks = table(
        ["check", "value", "verdict"],
        [
            ["errors", errors, "" if smoke else verdict(errors == 0, "0")],
            ['"database is locked" in the server log', locked, verdict(locked == 0, "0")],
            ["acknowledged messages missing from the database", lost, verdict(lost == 0, "0")],
            [
                "answers not complete with the streamed text",
                incomplete,
                verdict(incomplete == 0, "0"),
            ],
            [
                f"server RSS idle (master + {server.workers} workers)",
                f"{idle_mib:.0f} MiB (workers {', '.join(f'{w / MIB:.0f}' for w in idle_workers)})",
                "" if smoke else verdict(idle_mib < IDLE_TARGET_MIB, "< 200 MiB"),
            ],
            [
                "server RSS peak under load",
                f"{peak_mib:.0f} MiB (largest worker {sampler.per_worker_peak / MIB:.0f})",
                "" if smoke else verdict(peak_mib < PEAK_TARGET_MIB, "< 300 MiB"),
            ],
            ["server RSS right after the load", f"{after_rss / MIB:.0f} MiB", ""],
            [
                "server PSS idle / peak / after (shared pages counted once)",
                f"{idle_pss / MIB:.0f} / {sampler.pss_peak / MIB:.0f} / {after_pss / MIB:.0f} MiB",
                "",
            ],
            [
                "turns completed / answers per second",
                f"{sum(t.ok for t in turns)} / {sum(t.ok for t in turns) / elapsed:.1f}",
                "",
            ],
        ],
    )
    if rec.errors or baseline.errors:
        kinds = (rec.errors + baseline.errors).most_common(8)
        checks += "\n\nErrors by kind: " + "; ".join(f"{n} x {k!r}" for k, n in kinds)
    notes = (
        f"`python bench/load.py{' --smoke' if smoke else ''}`: {users} users for {seconds:g} s "
        f"(arriving within {arrive_within:g} s, think times {think[0]:g}-{think[1]:g} s), "
        f"gunicorn gthread {server.workers} workers x {server.threads} threads, SQLite "
        "(synchronous=FULL), file cache, "
        "default rate limit; mock_llm in its own process, 30-80 tokens at 20-40 ms each. "
        f"'Alone': one user, same loop, {baseline_seconds:g} s on the idle server first. "
        f"The load generator shares the machine's cores. Load average at start: "
        f"{load_at_start:.2f}."
    )
    if server_env:
        notes += " Server environment: " + ", ".join(f"`{k}={v}`" for k, v in server_env.items())
    if args.note:
        notes += f" {args.note}"
    report(
        f"Load, {users} users (bench/load.py)",
        f"{latency}\n\n{checks}",
        write=args.write,
        notes=notes,
    )
    if lost or incomplete or locked or (errors and not smoke):
        sys.exit(1)


if __name__ == "__main__":
    main()
