"""Start-up time: from launching `scripts/entrypoint.sh` to the first `/healthz` 200.

Two cases, each the median of 5 launches: an already-migrated DATA_DIR (a restart) and
a fresh one (the first start: every migration, generated secrets). Each launch is the
real entrypoint (backup if migrations are pending, migrate, stale-stream sweep, then
gunicorn gthread with its default workers and threads), polled every 20 ms, then stopped
with SIGTERM to its process group.

Baseline in the same run: one bare Django process start (`manage.py check`), which
every process of the entrypoint pays, and `manage.py prestart` (everything the
entrypoint does before gunicorn) on its own on the migrated DATA_DIR. Target: < 3 s.

Run from the repository root: `python bench/startup.py [--smoke] [--write]`.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _live import VENV_BIN, Parley
from common import parse_args, report, table, verdict

ROOT = Path(__file__).resolve().parent.parent
TARGET_S = 3.0


def launch(server: Parley) -> float:
    try:
        return server.start(wait_workers=False, poll=0.02)
    finally:
        server.stop()


def step_seconds(server: Parley, *args: str, repeat: int) -> float:
    """Median wall time of `python <args>` in the server's environment."""
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run(
            [str(VENV_BIN / "python"), *args],
            cwd=ROOT,
            env=server.env,
            check=True,
            capture_output=True,
            timeout=120,
        )
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def main() -> None:
    args = parse_args(
        __doc__.splitlines()[0],
        lambda p: (
            p.add_argument("--repeat", type=int, default=5),
            p.add_argument("--note", default="", help="a sentence added to the notes"),
        ),
    )
    repeat = 1 if args.smoke else args.repeat
    load_at_start = os.getloadavg()[0]

    fresh = []
    for _ in range(repeat):
        with Parley() as server:
            fresh.append(launch(server))

    migrated = []
    with Parley() as server:
        server.start()  # migrates the DATA_DIR once
        server.stop()
        for _ in range(repeat):
            migrated.append(launch(server))
        steps = [
            ("python -c pass (the interpreter alone)", ("-c", "pass")),
            ("manage.py check (one Django start: the baseline)", ("manage.py", "check")),
            (
                "manage.py prestart (the entrypoint's steps before gunicorn)",
                ("manage.py", "prestart"),
            ),
        ]
        step_times = [
            (label, step_seconds(server, *argv, repeat=max(1, repeat // 2 + 1)))
            for label, argv in steps
        ]
        workers, threads = server.workers, server.threads

    django_start = step_times[1][1]
    rows = [
        [
            "migrated DATA_DIR (restart)",
            len(migrated),
            statistics.median(migrated),
            min(migrated),
            max(migrated),
            f"{statistics.median(migrated) / django_start:.1f}x",
            "" if args.smoke else verdict(statistics.median(migrated) < TARGET_S, "< 3 s"),
        ],
        [
            "fresh DATA_DIR (first start)",
            len(fresh),
            statistics.median(fresh),
            min(fresh),
            max(fresh),
            f"{statistics.median(fresh) / django_start:.1f}x",
            "" if args.smoke else verdict(statistics.median(fresh) < TARGET_S, "< 3 s"),
        ],
    ]
    body = table(
        ["launch to /healthz 200", "runs", "median s", "min s", "max s", "vs one Django start", ""],
        rows,
    )
    body += "\n\n" + table(
        ["step on its own (migrated DATA_DIR)", "median s"],
        [[label, seconds] for label, seconds in step_times],
    )
    notes = (
        f"`python bench/startup.py{' --smoke' if args.smoke else ''}`: `scripts/entrypoint.sh` "
        f"with gunicorn gthread {workers} workers x {threads} threads, SQLite, file cache; "
        "/healthz polled every 20 ms from the launch; static files collected beforehand. "
        f"Load average at start: {load_at_start:.2f}. Open WebUI 0.12.4 (issue #6): 11-19 s."
    )
    if args.note:
        notes += f" {args.note}"
    report("Start-up time (bench/startup.py)", body, write=args.write, notes=notes)


if __name__ == "__main__":
    main()
